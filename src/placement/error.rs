//! A node or label selector nadipam cannot evaluate, named by its field.

/// The field path is part of the message, e.g. `spec.nodeSelector.matchExpressions[0]`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    #[error("{field}: operator {operator} is not one of {valid}")]
    Operator {
        field: String,
        operator: String,
        valid: &'static str,
    },
    #[error("{field}: operator {operator} needs at least one value in values")]
    NoValues { field: String, operator: String },
    #[error("{field}: operator {operator} takes no values (found {count})")]
    Values {
        field: String,
        operator: String,
        count: usize,
    },
    #[error("{field}: operator {operator} needs exactly one integer value (found {found})")]
    Integer {
        field: String,
        operator: String,
        found: String,
    },
    #[error("{field}: the key is empty; name a node label, e.g. topology.kubernetes.io/zone")]
    EmptyKey { field: String },
}
