//! The nodes an IPPool's or Subnet's addresses are valid on: label selectors (`spec.nodeSelector`,
//! SpiderIPPool's `spec.nodeAffinity`) and a node-name list (SpiderIPPool's `spec.nodeName`), all ANDed.

use k8s_openapi::api::core::v1::NodeSelectorRequirement;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::NodeFacts;
use super::error::SelectorError;
use super::labels::LabelScope;
use super::requirement::{Op, Requirement};

/// The node field a node-name list becomes in node affinity.
pub(crate) const NAME_FIELD: &str = "metadata.name";

/// A checked node scope. Absent (`None` from [`NodeScope::of`]) means every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeScope {
    labels: Vec<Requirement>,
    /// Node names; empty allows any name.
    names: Vec<String>,
    /// As the object wrote it, for messages: `spec.nodeSelector rack=a`.
    shown: String,
}

impl NodeScope {
    /// The scope of the label selectors (each with its field path) and node names; `None` when they allow
    /// every node (unset, or an empty selector, which in Kubernetes selects everything).
    pub(crate) fn of(
        selectors: &[(&str, Option<&LabelSelector>)],
        names: &[String],
        names_field: &str,
    ) -> Result<Option<NodeScope>, SelectorError> {
        let mut labels = Vec::new();
        let mut shown = Vec::new();
        for (field, selector) in selectors {
            if let Some(scope) = LabelScope::of(field, *selector)? {
                shown.push(scope.to_string());
                labels.extend(scope.into_requirements());
            }
        }
        let names: Vec<String> = names.iter().filter(|n| !n.is_empty()).cloned().collect();
        if !names.is_empty() {
            shown.push(format!("{names_field} {}", names.join(",")));
        }
        Ok((!shown.is_empty()).then(|| NodeScope {
            labels,
            names,
            shown: shown.join("; "),
        }))
    }

    pub(crate) fn matches(&self, node: NodeFacts<'_>) -> bool {
        (self.names.is_empty() || self.names.iter().any(|n| n == node.name))
            && self
                .labels
                .iter()
                .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
    }

    /// The label requirements as node-affinity match expressions.
    pub(crate) fn expressions(&self) -> Vec<NodeSelectorRequirement> {
        self.labels
            .iter()
            .map(|r| NodeSelectorRequirement {
                key: r.key.clone(),
                operator: r.op.as_str().to_string(),
                values: match r.op {
                    Op::Exists | Op::DoesNotExist => None,
                    _ => Some(r.values.clone()),
                },
            })
            .collect()
    }

    /// The node names (empty: any). Node affinity takes one name per `matchFields` requirement.
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }
}

impl std::fmt::Display for NodeScope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn selector(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn node<'a>(name: &'a str, labels: &'a BTreeMap<String, String>) -> NodeFacts<'a> {
        NodeFacts { name, labels }
    }

    #[test]
    fn selectors_and_names_are_anded() {
        let sel = selector(serde_json::json!({
            "matchLabels": {"rack": "a"},
            "matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]
        }));
        let spider = selector(serde_json::json!({"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["z1", "z2"]}]}));
        let scope = NodeScope::of(
            &[
                ("spec.nodeSelector", Some(&sel)),
                ("spec.nodeAffinity", Some(&spider)),
            ],
            &["n1".to_string(), "n2".to_string()],
            "spec.nodeName",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            scope.to_string(),
            "spec.nodeSelector rack=a,!gpu; spec.nodeAffinity zone in (z1,z2); spec.nodeName n1,n2"
        );
        let good: BTreeMap<String, String> = [("rack", "a"), ("zone", "z2")]
            .map(|(k, v)| (k.into(), v.into()))
            .into();
        assert!(scope.matches(node("n1", &good)));
        assert!(!scope.matches(node("n3", &good)), "a name outside nodeName");
        let mut gpu = good.clone();
        gpu.insert("gpu".into(), "1".into());
        assert!(!scope.matches(node("n1", &gpu)));
        let mut other = good.clone();
        other.insert("zone".into(), "z3".into());
        assert!(!scope.matches(node("n2", &other)));
        assert_eq!(
            serde_json::to_value(scope.expressions()).unwrap(),
            serde_json::json!([
                {"key": "rack", "operator": "In", "values": ["a"]},
                {"key": "gpu", "operator": "DoesNotExist"},
                {"key": "zone", "operator": "In", "values": ["z1", "z2"]}
            ])
        );
    }

    #[test]
    fn empty_selectors_allow_every_node() {
        let empty = LabelSelector::default();
        assert_eq!(
            NodeScope::of(
                &[("spec.nodeSelector", Some(&empty)), ("x", None)],
                &[],
                "n"
            ),
            Ok(None)
        );
    }

    #[test]
    fn a_bad_expression_names_its_field() {
        let sel = selector(serde_json::json!({"matchExpressions": [
            {"key": "rack", "operator": "Exists"}, {"key": "rack", "operator": "In", "values": []}]}));
        assert_eq!(
            NodeScope::of(&[("spec.nodeSelector", Some(&sel))], &[], "n")
                .unwrap_err()
                .to_string(),
            "spec.nodeSelector.matchExpressions[1]: operator In needs at least one value in values"
        );
    }
}
