//! The IPPool and Subnet webhooks' view of a node selector: one nadipam cannot read is refused (in
//! `check_pool` / `check_subnet`), one that matches no Node is warned about at `kubectl apply`.

use crate::cache::{Cache, node_facts};
use crate::placement::{NodeFacts, NodeScope};

/// The warning for a node scope no Node matches: Pods cannot get the object's addresses until one does.
pub(crate) fn no_node_warning(
    kind: &str,
    name: &str,
    scope: &NodeScope,
    nodes: &[NodeFacts<'_>],
) -> Option<String> {
    if nodes.iter().any(|n| scope.matches(*n)) {
        return None;
    }
    Some(format!(
        "{kind} {name}: {scope} matches no Node: Pods cannot get its addresses until a Node does; label the \
         nodes or change the selector"
    ))
}

/// [`no_node_warning`] against the cached Nodes, when the object has a readable scope.
pub(crate) fn warn_unmatched(
    cache: &Cache,
    kind: &str,
    name: &str,
    scope: Option<NodeScope>,
) -> Option<String> {
    let scope = scope?;
    let nodes = cache.nodes.state();
    let facts: Vec<NodeFacts<'_>> = nodes.iter().filter_map(|n| node_facts(n)).collect();
    no_node_warning(kind, name, &scope, &facts)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

    use super::*;

    #[test]
    fn warns_only_when_no_node_matches() {
        let sel: LabelSelector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"rack": "a"}})).unwrap();
        let scope = NodeScope::of(&[("spec.nodeSelector", Some(&sel))], &[], "")
            .unwrap()
            .unwrap();
        let b: BTreeMap<String, String> = [("rack".to_string(), "b".to_string())].into();
        let a: BTreeMap<String, String> = [("rack".to_string(), "a".to_string())].into();
        let only_b = [NodeFacts {
            name: "n2",
            labels: &b,
        }];
        assert_eq!(
            no_node_warning("IPPool", "rack-a", &scope, &only_b).as_deref(),
            Some(
                "IPPool rack-a: spec.nodeSelector rack=a matches no Node: Pods cannot get its addresses until a \
                 Node does; label the nodes or change the selector"
            )
        );
        let both = [
            only_b[0],
            NodeFacts {
                name: "n1",
                labels: &a,
            },
        ];
        assert_eq!(no_node_warning("IPPool", "rack-a", &scope, &both), None);
    }
}
