//! One requirement of a label or node selector, with the operators' Kubernetes semantics.

use std::fmt;

use super::error::SelectorError;

/// A selector operator. Label selectors have the first four; node selectors also Gt and Lt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

impl Op {
    fn parse(text: &str, numeric: bool) -> Option<Op> {
        Some(match text {
            "In" => Op::In,
            "NotIn" => Op::NotIn,
            "Exists" => Op::Exists,
            "DoesNotExist" => Op::DoesNotExist,
            "Gt" if numeric => Op::Gt,
            "Lt" if numeric => Op::Lt,
            _ => return None,
        })
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Op::In => "In",
            Op::NotIn => "NotIn",
            Op::Exists => "Exists",
            Op::DoesNotExist => "DoesNotExist",
            Op::Gt => "Gt",
            Op::Lt => "Lt",
        }
    }
}

/// `key operator values`, checked: In/NotIn have values, Exists/DoesNotExist none, Gt/Lt one integer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Requirement {
    pub key: String,
    pub op: Op,
    pub values: Vec<String>,
}

impl Requirement {
    /// Checks one written requirement; `numeric` allows Gt and Lt (node selectors only). `field` names it in
    /// errors.
    pub(crate) fn parse(
        field: &str,
        key: &str,
        operator: &str,
        values: &[String],
        numeric: bool,
    ) -> Result<Requirement, SelectorError> {
        let valid = if numeric {
            "In, NotIn, Exists, DoesNotExist, Gt, Lt"
        } else {
            "In, NotIn, Exists, DoesNotExist"
        };
        let op = Op::parse(operator, numeric).ok_or_else(|| SelectorError::Operator {
            field: field.to_string(),
            operator: operator.to_string(),
            valid,
        })?;
        if key.is_empty() {
            return Err(SelectorError::EmptyKey {
                field: field.to_string(),
            });
        }
        match op {
            Op::In | Op::NotIn if values.is_empty() => Err(SelectorError::NoValues {
                field: field.to_string(),
                operator: operator.to_string(),
            }),
            Op::Exists | Op::DoesNotExist if !values.is_empty() => Err(SelectorError::Values {
                field: field.to_string(),
                operator: operator.to_string(),
                count: values.len(),
            }),
            Op::Gt | Op::Lt if values.len() != 1 || values[0].parse::<i64>().is_err() => {
                Err(SelectorError::Integer {
                    field: field.to_string(),
                    operator: operator.to_string(),
                    found: format!("[{}]", values.join(", ")),
                })
            }
            _ => Ok(Requirement {
                key: key.to_string(),
                op,
                values: values.to_vec(),
            }),
        }
    }

    /// `key In [value]`: a matchLabels entry or a Pod's nodeSelector entry.
    pub(crate) fn equals(key: &str, value: &str) -> Requirement {
        Requirement {
            key: key.to_string(),
            op: Op::In,
            values: vec![value.to_string()],
        }
    }

    /// Whether a label (or field) with this value, `None` when absent, satisfies the requirement.
    pub(crate) fn matches(&self, value: Option<&str>) -> bool {
        let number = |v: &str| v.parse::<i64>().ok();
        let bound = || self.values.first().and_then(|b| number(b));
        match (self.op, value) {
            (Op::In, Some(v)) => self.values.iter().any(|x| x == v),
            (Op::In, None) => false,
            (Op::NotIn, Some(v)) => self.values.iter().all(|x| x != v),
            (Op::NotIn, None) => true,
            (Op::Exists, v) => v.is_some(),
            (Op::DoesNotExist, v) => v.is_none(),
            (Op::Gt, Some(v)) => matches!((number(v), bound()), (Some(v), Some(b)) if v > b),
            (Op::Lt, Some(v)) => matches!((number(v), bound()), (Some(v), Some(b)) if v < b),
            (Op::Gt | Op::Lt, None) => false,
        }
    }
}

/// kubectl's selector spelling: `k=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`, `k>5`, `k<5`.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (k, v) = (&self.key, self.values.join(","));
        match self.op {
            Op::In if self.values.len() == 1 => write!(f, "{k}={v}"),
            Op::In => write!(f, "{k} in ({v})"),
            Op::NotIn => write!(f, "{k} notin ({v})"),
            Op::Exists => write!(f, "{k}"),
            Op::DoesNotExist => write!(f, "!{k}"),
            Op::Gt => write!(f, "{k}>{v}"),
            Op::Lt => write!(f, "{k}<{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(op: &str, values: &[&str]) -> Result<Requirement, SelectorError> {
        let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
        Requirement::parse("f", "k", op, &values, true)
    }

    #[test]
    fn operators_follow_kubernetes() {
        let in_ = req("In", &["a", "b"]).unwrap();
        assert!(in_.matches(Some("a")) && !in_.matches(Some("c")) && !in_.matches(None));
        let not_in = req("NotIn", &["a"]).unwrap();
        assert!(!not_in.matches(Some("a")) && not_in.matches(Some("b")) && not_in.matches(None));
        let exists = req("Exists", &[]).unwrap();
        assert!(exists.matches(Some("")) && !exists.matches(None));
        let absent = req("DoesNotExist", &[]).unwrap();
        assert!(!absent.matches(Some("x")) && absent.matches(None));
        let gt = req("Gt", &["5"]).unwrap();
        assert!(gt.matches(Some("6")) && !gt.matches(Some("5")) && !gt.matches(Some("x")));
        assert!(!gt.matches(None));
        let lt = req("Lt", &["5"]).unwrap();
        assert!(lt.matches(Some("-1")) && !lt.matches(Some("5")) && !lt.matches(None));
    }

    #[test]
    fn malformed_requirements_name_the_field() {
        assert_eq!(
            req("In", &[]).unwrap_err().to_string(),
            "f: operator In needs at least one value in values"
        );
        assert_eq!(
            req("Exists", &["a"]).unwrap_err().to_string(),
            "f: operator Exists takes no values (found 1)"
        );
        assert_eq!(
            req("Gt", &["x"]).unwrap_err().to_string(),
            "f: operator Gt needs exactly one integer value (found [x])"
        );
        assert_eq!(
            req("in", &["a"]).unwrap_err().to_string(),
            "f: operator in is not one of In, NotIn, Exists, DoesNotExist, Gt, Lt"
        );
        let label = Requirement::parse("g", "k", "Gt", &["1".into()], false).unwrap_err();
        assert_eq!(
            label.to_string(),
            "g: operator Gt is not one of In, NotIn, Exists, DoesNotExist"
        );
        assert_eq!(
            Requirement::parse("g", "", "Exists", &[], false)
                .unwrap_err()
                .to_string(),
            "g: the key is empty; name a node label, e.g. topology.kubernetes.io/zone"
        );
    }

    #[test]
    fn spelled_as_kubectl_does() {
        let shown: Vec<String> = [
            req("In", &["a"]),
            req("In", &["a", "b"]),
            req("NotIn", &["a"]),
            req("Exists", &[]),
            req("DoesNotExist", &[]),
            req("Gt", &["5"]),
            req("Lt", &["5"]),
        ]
        .into_iter()
        .map(|r| r.unwrap().to_string())
        .collect();
        assert_eq!(
            shown,
            ["k=a", "k in (a,b)", "k notin (a)", "k", "!k", "k>5", "k<5"]
        );
    }
}
