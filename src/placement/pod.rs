//! A Pod's own node constraints: `spec.nodeName`, `spec.nodeSelector` and the required terms of
//! `spec.affinity.nodeAffinity` (ORed; each term's expressions and fields ANDed), as the scheduler reads them.

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, PodSpec};

use super::NodeFacts;
use super::requirement::Requirement;
use super::scope::NAME_FIELD;

/// One required node-selector term. A term nadipam cannot read (an unknown operator or field) matches no
/// node, as in the scheduler; the apiserver refuses such a Pod anyway.
#[derive(Clone, Debug)]
struct Term {
    labels: Vec<Requirement>,
    fields: Vec<Requirement>,
    readable: bool,
}

impl Term {
    fn matches(&self, node: NodeFacts<'_>) -> bool {
        // An empty term matches no node (Kubernetes' rule).
        self.readable
            && !(self.labels.is_empty() && self.fields.is_empty())
            && self
                .labels
                .iter()
                .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self.fields.iter().all(|r| r.matches(Some(node.name)))
    }
}

/// Where a Pod asks to run.
#[derive(Clone, Debug, Default)]
pub(crate) struct PodConstraints {
    node_name: Option<String>,
    selector: Vec<Requirement>,
    /// `None`: no required node affinity.
    terms: Option<Vec<Term>>,
    shown: Vec<String>,
}

fn read(field: &str, list: Option<&Vec<NodeSelectorRequirement>>) -> Option<Vec<Requirement>> {
    list.into_iter()
        .flatten()
        .map(|r| {
            if field == "matchFields" && r.key != NAME_FIELD {
                return None;
            }
            Requirement::parse(
                field,
                &r.key,
                &r.operator,
                r.values.as_deref().unwrap_or_default(),
                true,
            )
            .ok()
        })
        .collect()
}

impl PodConstraints {
    pub(crate) fn of(spec: Option<&PodSpec>) -> PodConstraints {
        let Some(spec) = spec else {
            return PodConstraints::default();
        };
        let mut shown = Vec::new();
        let node_name = spec.node_name.clone().filter(|n| !n.is_empty());
        if let Some(n) = &node_name {
            shown.push(format!("spec.nodeName {n}"));
        }
        let selector: Vec<Requirement> = spec
            .node_selector
            .iter()
            .flatten()
            .map(|(k, v)| Requirement::equals(k, v))
            .collect();
        if !selector.is_empty() {
            let text: Vec<String> = selector.iter().map(ToString::to_string).collect();
            shown.push(format!("spec.nodeSelector {}", text.join(",")));
        }
        let required = spec
            .affinity
            .as_ref()
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|n| {
                n.required_during_scheduling_ignored_during_execution
                    .as_ref()
            });
        let terms = required.map(|r| {
            r.node_selector_terms
                .iter()
                .map(|t| {
                    let labels = read("matchExpressions", t.match_expressions.as_ref());
                    let fields = read("matchFields", t.match_fields.as_ref());
                    Term {
                        readable: labels.is_some() && fields.is_some(),
                        labels: labels.unwrap_or_default(),
                        fields: fields.unwrap_or_default(),
                    }
                })
                .collect::<Vec<Term>>()
        });
        if let Some(terms) = &terms {
            let text: Vec<String> = terms
                .iter()
                .map(|t| {
                    let parts: Vec<String> = t
                        .labels
                        .iter()
                        .map(ToString::to_string)
                        .chain(t.fields.iter().map(|f| f.to_string()))
                        .collect();
                    parts.join(",")
                })
                .collect();
            shown.push(format!("required node affinity {}", text.join(" or ")));
        }
        PodConstraints {
            node_name,
            selector,
            terms,
            shown,
        }
    }

    pub(crate) fn can_run_on(&self, node: NodeFacts<'_>) -> bool {
        self.node_name.as_deref().is_none_or(|n| n == node.name)
            && self
                .selector
                .iter()
                .all(|r| r.matches(node.labels.get(&r.key).map(String::as_str)))
            && self
                .terms
                .as_ref()
                .is_none_or(|terms| terms.iter().any(|t| t.matches(node)))
    }
}

/// `spec.nodeName n1; spec.nodeSelector disk=ssd; required node affinity rack=a or metadata.name=n3`.
impl std::fmt::Display for PodConstraints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.shown.is_empty() {
            return f.write_str("no node constraint of its own");
        }
        f.write_str(&self.shown.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(v: serde_json::Value) -> PodSpec {
        let mut v = v;
        v["containers"] = serde_json::json!([]);
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn on(c: &PodConstraints, name: &str, l: &BTreeMap<String, String>) -> bool {
        c.can_run_on(NodeFacts { name, labels: l })
    }

    #[test]
    fn an_unconstrained_pod_runs_anywhere() {
        let c = PodConstraints::of(Some(&spec(serde_json::json!({}))));
        assert!(on(&c, "x", &labels(&[])));
        assert_eq!(c.to_string(), "no node constraint of its own");
    }

    #[test]
    fn node_name_and_node_selector() {
        let c = PodConstraints::of(Some(&spec(serde_json::json!({
            "nodeName": "n1", "nodeSelector": {"disk": "ssd"}}))));
        assert!(on(&c, "n1", &labels(&[("disk", "ssd")])));
        assert!(!on(&c, "n2", &labels(&[("disk", "ssd")])));
        assert!(!on(&c, "n1", &labels(&[("disk", "hdd")])));
        assert_eq!(
            c.to_string(),
            "spec.nodeName n1; spec.nodeSelector disk=ssd"
        );
    }

    #[test]
    fn required_terms_are_ored_and_their_parts_anded() {
        let c = PodConstraints::of(Some(&spec(
            serde_json::json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [
                    {"key": "rack", "operator": "In", "values": ["a", "b"]},
                    {"key": "cpus", "operator": "Gt", "values": ["8"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]},
                {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["z1"]},
                                      {"key": "old", "operator": "DoesNotExist"},
                                      {"key": "mem", "operator": "Lt", "values": ["4"]},
                                      {"key": "nic", "operator": "Exists"}]}
            ]}}}}),
        )));
        assert!(on(&c, "n1", &labels(&[("rack", "a"), ("cpus", "16")])));
        assert!(!on(&c, "n1", &labels(&[("rack", "a"), ("cpus", "8")])));
        assert!(!on(&c, "n1", &labels(&[("rack", "c"), ("cpus", "16")])));
        assert!(on(&c, "n9", &labels(&[])), "matchFields metadata.name");
        assert!(on(&c, "n2", &labels(&[("mem", "2"), ("nic", "")])));
        assert!(!on(
            &c,
            "n2",
            &labels(&[("mem", "2"), ("nic", ""), ("old", "1")])
        ));
        assert!(!on(
            &c,
            "n2",
            &labels(&[("mem", "2"), ("nic", ""), ("zone", "z1")])
        ));
        assert!(!on(&c, "n2", &labels(&[("mem", "2")])));
        assert_eq!(
            c.to_string(),
            "required node affinity rack in (a,b),cpus>8 or metadata.name=n9 or \
             zone notin (z1),!old,mem<4,nic"
        );
    }

    #[test]
    fn unreadable_or_empty_terms_match_nothing() {
        let c = PodConstraints::of(Some(&spec(
            serde_json::json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "rack", "operator": "Near", "values": ["a"]}]},
                {"matchFields": [{"key": "metadata.uid", "operator": "In", "values": ["u"]}]},
                {}
            ]}}}}),
        )));
        assert!(!on(&c, "n1", &labels(&[("rack", "a")])));
    }
}
