//! Who may use an IPPool: a label selector over a Pod's or a Namespace's labels (SpiderIPPool's `podAffinity`
//! and `namespaceAffinity`). The same requirements as node scopes, matched against another object's labels.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::error::SelectorError;
use super::requirement::Requirement;

/// A checked label selector; absent (`None` from [`LabelScope::of`]) selects everything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct LabelScope {
    requirements: Vec<Requirement>,
    /// As written, for messages: `spec.podAffinity app=db`.
    shown: String,
}

impl LabelScope {
    /// The selector at `field`; `None` when unset or empty (Kubernetes: an empty selector selects all).
    pub(crate) fn of(
        field: &str,
        selector: Option<&LabelSelector>,
    ) -> Result<Option<LabelScope>, SelectorError> {
        let Some(selector) = selector else {
            return Ok(None);
        };
        let mut requirements = Vec::new();
        for (k, v) in selector.match_labels.iter().flatten() {
            if k.is_empty() {
                return Err(SelectorError::EmptyKey {
                    field: format!("{field}.matchLabels"),
                });
            }
            requirements.push(Requirement::equals(k, v));
        }
        for (i, e) in selector.match_expressions.iter().flatten().enumerate() {
            requirements.push(Requirement::parse(
                &format!("{field}.matchExpressions[{i}]"),
                &e.key,
                &e.operator,
                e.values.as_deref().unwrap_or_default(),
                false,
            )?);
        }
        if requirements.is_empty() {
            return Ok(None);
        }
        let text: Vec<String> = requirements.iter().map(ToString::to_string).collect();
        Ok(Some(LabelScope {
            requirements,
            shown: format!("{field} {}", text.join(",")),
        }))
    }

    /// The checked requirements (a node scope ANDs those of its selectors).
    pub(crate) fn into_requirements(self) -> Vec<Requirement> {
        self.requirements
    }

    pub(crate) fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements
            .iter()
            .all(|r| r.matches(labels.get(&r.key).map(String::as_str)))
    }
}

impl fmt::Display for LabelScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn selector(v: serde_json::Value) -> LabelSelector {
        serde_json::from_value(v).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn matches_labels_and_expressions_anded() {
        let s = LabelScope::of(
            "spec.podAffinity",
            Some(&selector(serde_json::json!({"matchLabels": {"app": "db"},
                "matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["test"]}]}))),
        )
        .unwrap()
        .unwrap();
        assert_eq!(s.to_string(), "spec.podAffinity app=db,tier notin (test)");
        assert!(s.matches(&labels(&[("app", "db")])));
        assert!(s.matches(&labels(&[("app", "db"), ("tier", "prod")])));
        assert!(!s.matches(&labels(&[("app", "db"), ("tier", "test")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        assert!(!s.matches(&labels(&[])));
    }

    #[test]
    fn empty_selects_all_and_bad_ones_name_their_field() {
        assert!(LabelScope::of("spec.podAffinity", None).unwrap().is_none());
        assert!(
            LabelScope::of("spec.podAffinity", Some(&selector(serde_json::json!({}))))
                .unwrap()
                .is_none()
        );
        let e = LabelScope::of(
            "spec.namespaceAffinity",
            Some(&selector(serde_json::json!({"matchExpressions": [
                {"key": "team", "operator": "Gt", "values": ["1"]}]}))),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "spec.namespaceAffinity.matchExpressions[0]: operator Gt is not one of In, NotIn, Exists, DoesNotExist"
        );
    }
}
