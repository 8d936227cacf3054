//! The required node-affinity terms that keep a Pod on the nodes where its addresses are valid.
//!
//! Required terms are ORed and a term's parts ANDed, so a scope is added to every term (or becomes the only
//! term). Node affinity names one node per `matchFields` requirement, so a scope listing node names turns
//! each term into one term per name. A term that already carries a scope is left alone: admission is
//! reinvoked when a later webhook changes the Pod, and must not add a second copy.

use k8s_openapi::api::core::v1::{
    Affinity, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm,
};

use super::scope::{NAME_FIELD, NodeScope};

fn name_is(name: &str) -> NodeSelectorRequirement {
    NodeSelectorRequirement {
        key: NAME_FIELD.to_string(),
        operator: "In".to_string(),
        values: Some(vec![name.to_string()]),
    }
}

/// Whether `term` already requires everything `scope` requires.
fn carries(term: &NodeSelectorTerm, scope: &NodeScope) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    scope.expressions().iter().all(|e| exprs.contains(e))
        && (scope.names().is_empty() || scope.names().iter().any(|n| fields.contains(&name_is(n))))
}

/// `term` AND `scope`: one term, or one per node name.
fn and(term: &NodeSelectorTerm, scope: &NodeScope) -> Vec<NodeSelectorTerm> {
    let mut base = term.clone();
    let exprs = base.match_expressions.get_or_insert_with(Vec::new);
    for e in scope.expressions() {
        if !exprs.contains(&e) {
            exprs.push(e);
        }
    }
    if exprs.is_empty() {
        base.match_expressions = None;
    }
    if scope.names().is_empty() {
        return vec![base];
    }
    scope
        .names()
        .iter()
        .map(|n| {
            let mut t = base.clone();
            t.match_fields.get_or_insert_with(Vec::new).push(name_is(n));
            t
        })
        .collect()
}

/// The Pod's affinity with every scope required; `None` when it requires them already.
pub(crate) fn with_scopes(affinity: Option<&Affinity>, scopes: &[&NodeScope]) -> Option<Affinity> {
    let mut out = affinity.cloned().unwrap_or_default();
    let node = out.node_affinity.get_or_insert_with(NodeAffinity::default);
    let required = node
        .required_during_scheduling_ignored_during_execution
        .get_or_insert_with(NodeSelector::default);
    let mut changed = false;
    for scope in scopes {
        if required.node_selector_terms.is_empty() {
            required
                .node_selector_terms
                .push(NodeSelectorTerm::default());
        }
        if required
            .node_selector_terms
            .iter()
            .all(|t| carries(t, scope))
        {
            continue;
        }
        changed = true;
        required.node_selector_terms = required
            .node_selector_terms
            .iter()
            .flat_map(|t| {
                if carries(t, scope) {
                    vec![t.clone()]
                } else {
                    and(t, scope)
                }
            })
            .collect();
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
    use serde_json::json;

    use super::*;

    fn scope(labels: serde_json::Value, names: &[&str]) -> NodeScope {
        let sel: LabelSelector = serde_json::from_value(json!({ "matchLabels": labels })).unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        NodeScope::of(
            &[("spec.nodeSelector", Some(&sel))],
            &names,
            "spec.nodeName",
        )
        .unwrap()
        .unwrap()
    }

    fn affinity(v: serde_json::Value) -> Affinity {
        serde_json::from_value(v).unwrap()
    }

    fn terms(a: &Affinity) -> serde_json::Value {
        serde_json::to_value(a).unwrap()["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
            ["nodeSelectorTerms"]
            .clone()
    }

    #[test]
    fn a_pod_without_affinity_gets_one_term() {
        let rack = scope(json!({"rack": "a"}), &[]);
        let got = with_scopes(None, &[&rack]).unwrap();
        assert_eq!(
            terms(&got),
            json!([{"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}]}])
        );
        // Reinvoked: the Pod now carries the term.
        assert_eq!(with_scopes(Some(&got), &[&rack]), None);
    }

    #[test]
    fn every_existing_term_gets_the_scope_and_other_affinity_is_kept() {
        let rack = scope(json!({"rack": "a"}), &[]);
        let before = affinity(json!({
        "podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"topologyKey": "kubernetes.io/hostname", "labelSelector": {"matchLabels": {"app": "x"}}}]},
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}],
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]},
                {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]}
            ]}}}));
        let got = with_scopes(Some(&before), &[&rack]).unwrap();
        assert_eq!(
            terms(&got),
            json!([
                {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]},
                                      {"key": "rack", "operator": "In", "values": ["a"]}]},
                {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n9"]}]}
            ])
        );
        assert_eq!(got.pod_anti_affinity, before.pod_anti_affinity);
        assert_eq!(
            got.node_affinity
                .as_ref()
                .unwrap()
                .preferred_during_scheduling_ignored_during_execution,
            before
                .node_affinity
                .as_ref()
                .unwrap()
                .preferred_during_scheduling_ignored_during_execution
        );
        assert_eq!(with_scopes(Some(&got), &[&rack]), None);
    }

    #[test]
    fn node_names_become_one_term_each_and_two_scopes_both_apply() {
        let names = scope(json!({}), &["n1", "n2"]);
        let rack = scope(json!({"rack": "a"}), &[]);
        let got = with_scopes(None, &[&names, &rack]).unwrap();
        assert_eq!(
            terms(&got),
            json!([
                {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n1"]}]},
                {"matchExpressions": [{"key": "rack", "operator": "In", "values": ["a"]}],
                 "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n2"]}]}
            ])
        );
        assert_eq!(with_scopes(Some(&got), &[&names, &rack]), None);
        assert_eq!(with_scopes(Some(&got), &[&rack]), None);
    }
}
