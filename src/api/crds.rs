//! The CustomResourceDefinitions nadipam owns, exactly as installed (`crdgen` writes these to manifests/crds/).

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use serde::Serialize;
use serde_json::Value;
use serde_saphyr::{SerializeError, SerializerOptions};

use super::{IPLease, IPPool, Network, Subnet};

/// Our CRDs with the file name each is stored under, in a fixed order.
///
/// Descriptions are reflowed: doc comments wrap at the source line width, and `kubectl explain` would print those
/// line breaks as written, so single newlines inside a paragraph become spaces.
pub fn crds() -> Vec<(&'static str, CustomResourceDefinition)> {
    vec![
        ("subnets.nadipam.io.yaml", reflow(Subnet::crd())),
        ("ippools.nadipam.io.yaml", reflow(IPPool::crd())),
        ("ipleases.nadipam.io.yaml", reflow(IPLease::crd())),
        ("networks.nadipam.io.yaml", reflow(Network::crd())),
    ]
}

/// One CRD as YAML, the way crdgen writes it.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, SerializeError> {
    manifest_yaml(crd)
}

/// A generated manifest as YAML: every string on one line (no folded block scalars), so the committed
/// manifests change line by line with the code.
pub fn manifest_yaml<T: Serialize>(value: &T) -> Result<String, SerializeError> {
    let mut options = SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
}

fn reflow(crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let Ok(mut value) = serde_json::to_value(&crd) else {
        return crd;
    };
    reflow_descriptions(&mut value);
    serde_json::from_value(value).unwrap_or(crd)
}

fn reflow_descriptions(v: &mut Value) {
    match v {
        Value::Object(map) => {
            for (k, child) in map.iter_mut() {
                match child {
                    Value::String(s) if k == "description" => *s = reflow_text(s),
                    _ => reflow_descriptions(child),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(reflow_descriptions),
        _ => {}
    }
}

/// Joins the lines of each paragraph with spaces; paragraphs stay separated by a blank line.
fn reflow_text(s: &str) -> String {
    s.split("\n\n")
        .map(|para| para.lines().map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reflows_paragraphs() {
        assert_eq!(reflow_text("a b\nc\n\nd\ne"), "a b c\n\nd e");
        assert_eq!(reflow_text("one line"), "one line");
    }

    #[test]
    fn names_and_scopes() {
        let crds = crds();
        let names: Vec<_> = crds
            .iter()
            .map(|(_, c)| c.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "subnets.nadipam.io",
                "ippools.nadipam.io",
                "ipleases.nadipam.io",
                "networks.nadipam.io"
            ]
        );
        for (file, crd) in &crds {
            assert_eq!(
                *file,
                format!("{}.yaml", crd.metadata.name.as_deref().unwrap())
            );
            let scope = if file.starts_with("networks") {
                "Namespaced"
            } else {
                "Cluster"
            };
            assert_eq!(crd.spec.scope, scope, "{file}");
            assert_eq!(crd.spec.group, "nadipam.io");
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&["nadipam".to_string()][..])
            );
            let json = serde_json::to_string(crd).unwrap();
            assert!(
                !json.replace("\\n\\n", "").contains("\\n"),
                "unreflowed description in {file}"
            );
        }
        let short: Vec<_> = crds
            .iter()
            .map(|(_, c)| c.spec.names.short_names.clone().unwrap())
            .collect();
        assert_eq!(
            short,
            [vec!["nsub"], vec!["nipp"], vec!["nlease"], vec!["nnet"]]
        );
    }
}
