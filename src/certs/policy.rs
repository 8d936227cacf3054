//! When to rotate what: a pure function of the Secret's facts, the clock and the flags, so every replica reaches
//! the same decision from the same Secret and the order of steps is unit-tested without a cluster.
//!
//! The order keeps every admission request working while certificates change:
//!
//! 1. **CA rotation** adds a new CA in front of the bundle and keeps serving the old certificate. Replicas
//!    publish the two-CA bundle into `caBundle`.
//! 2. Once the signing CA is in every webhook's `caBundle` and the propagation delay has passed since step 1,
//!    the **serving certificate** is re-issued by the new CA. A replica still serving the old one is still
//!    trusted (the old CA is in the bundle).
//! 3. Once the propagation delay has passed since that re-issue (every replica serves the new certificate),
//!    the retired CAs are **pruned** from the bundle.
//!
//! A serving rotation within one CA needs no ordering: old and new certificates are both trusted.

use std::collections::BTreeSet;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use super::material::Material;

/// Annotation on the Secret that asks for a rotation now: `ca` or `serving`. Removed by the replica that
/// performs it.
pub const ROTATE_ANNOTATION: &str = "nadipam.io/rotate";
/// When the signing CA was put in front of the bundle (RFC 3339).
pub(crate) const CA_ROTATED_AT: &str = "nadipam.io/ca-rotated-at";
/// When the serving certificate was issued (RFC 3339).
pub(crate) const SERVING_ISSUED_AT: &str = "nadipam.io/serving-issued-at";

/// What the flags ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Policy {
    /// SANs the serving certificate must carry.
    pub sans: Vec<String>,
    pub serving_validity: Duration,
    /// Re-issue the serving certificate this long before it expires.
    pub renew_before: Duration,
    pub ca_validity: Duration,
    /// How long every replica and the apiserver need to see a change of the Secret or of `caBundle`.
    pub propagation: Duration,
}

/// The fraction of its life after which a CA is replaced (the serving certificate's point is
/// `renew_before`, by default the same two thirds).
const CA_RENEW_NUM: i64 = 2;
const CA_RENEW_DEN: i64 = 3;

/// The facts rotation decides from, read from a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    pub signer: Window,
    /// Validity of the retired CAs, in bundle order.
    pub retired: Vec<Window>,
    pub serving: Window,
    pub serving_sans: BTreeSet<String>,
    /// Which CA of the bundle signed the serving certificate (0 is the signer).
    pub serving_issuer: Option<usize>,
    pub ca_rotated_at: Option<Timestamp>,
    pub serving_issued_at: Option<Timestamp>,
    /// The rotate annotation's value.
    pub force: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Window {
    pub not_before: Timestamp,
    pub not_after: Timestamp,
}

impl Facts {
    pub(crate) fn of(
        m: &Material,
        annotations: &std::collections::BTreeMap<String, String>,
    ) -> Facts {
        let window = |c: &super::material::Cert| Window {
            not_before: c.not_before,
            not_after: c.not_after,
        };
        let time = |k: &str| annotations.get(k).and_then(|v| v.parse::<Timestamp>().ok());
        Facts {
            signer: window(m.signer()),
            retired: m.cas[1..].iter().map(window).collect(),
            serving: window(&m.serving),
            serving_sans: m.serving.sans.clone(),
            serving_issuer: m.serving_issuer(),
            ca_rotated_at: time(CA_ROTATED_AT),
            serving_issued_at: time(SERVING_ISSUED_AT),
            force: annotations.get(ROTATE_ANNOTATION).cloned(),
        }
    }
}

/// The one step to take now. After a step is written the next poll decides again, so a chain of steps
/// (rotate CA, re-issue, prune) unfolds one write at a time, each visible to every replica.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    Keep,
    /// New CA and serving certificate, replacing whatever was there.
    Fresh(String),
    /// New CA in front of the bundle; the serving certificate stays.
    RotateCa(String),
    /// New serving certificate from the signing CA for these SANs.
    IssueServing {
        why: String,
        sans: Vec<String>,
    },
    /// Keep only these retired CAs (indices into `Facts::retired`).
    Prune {
        keep: Vec<usize>,
        why: String,
    },
    /// Remove a rotate annotation whose value means nothing.
    ClearForce {
        value: String,
    },
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    let d = SignedDuration::from_secs(i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// `published`: the signing CA is in every webhook's `caBundle` (only asked when the serving certificate is
/// not yet signed by it).
pub(crate) fn decide(
    facts: Option<&Facts>,
    published: bool,
    now: Timestamp,
    p: &Policy,
) -> Decision {
    let Some(f) = facts else {
        return Decision::Fresh("the Secret does not exist".into());
    };
    let wanted_only = || p.sans.clone();
    match f.force.as_deref() {
        Some("ca") => return Decision::RotateCa(format!("{ROTATE_ANNOTATION}=ca asks for it")),
        Some("serving") => {
            return Decision::IssueServing {
                why: format!("{ROTATE_ANNOTATION}=serving asks for it"),
                sans: wanted_only(),
            };
        }
        Some(other) => {
            return Decision::ClearForce {
                value: other.to_string(),
            };
        }
        None => {}
    }
    if now >= f.signer.not_after {
        return Decision::Fresh(format!("the CA expired at {}", f.signer.not_after));
    }
    let ca_life = f.signer.not_after.duration_since(f.signer.not_before);
    let ca_renew_at = f.signer.not_before + ca_life * CA_RENEW_NUM as i32 / CA_RENEW_DEN as i32;
    if now >= ca_renew_at {
        return Decision::RotateCa(format!(
            "the CA is past two thirds of its life ({ca_renew_at})"
        ));
    }
    if now >= f.serving.not_after {
        return Decision::IssueServing {
            why: format!("the serving certificate expired at {}", f.serving.not_after),
            sans: wanted_only(),
        };
    }
    match f.serving_issuer {
        None => {
            return Decision::IssueServing {
                why: "the serving certificate is signed by no CA of ca.crt".into(),
                sans: wanted_only(),
            };
        }
        Some(0) => {}
        Some(_) => {
            let since = f.ca_rotated_at.unwrap_or(f.signer.not_before);
            if published && now >= add(since, p.propagation) {
                return Decision::IssueServing {
                    why: "moving the serving certificate to the new CA, which every webhook trusts now"
                        .into(),
                    sans: wanted_only(),
                };
            }
            // Waiting for the new CA to reach every caBundle; the old certificate is still trusted.
            return Decision::Keep;
        }
    }
    let missing: Vec<&String> = p
        .sans
        .iter()
        .filter(|s| !f.serving_sans.contains(*s))
        .collect();
    if !missing.is_empty() {
        // Keep the names it had: during a rollout older replicas may still be configured for them.
        let mut sans: Vec<String> = p.sans.clone();
        sans.extend(
            f.serving_sans
                .iter()
                .filter(|s| !p.sans.contains(s))
                .cloned(),
        );
        return Decision::IssueServing {
            why: format!(
                "the serving certificate lacks SANs {}",
                missing
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            sans,
        };
    }
    let renew_at = f.serving.not_after - SignedDuration::from_secs(p.renew_before.as_secs() as i64);
    if now >= renew_at {
        return Decision::IssueServing {
            why: format!("the serving certificate is due for renewal ({renew_at})"),
            sans: wanted_only(),
        };
    }
    if !f.retired.is_empty() {
        let settled = f
            .serving_issued_at
            .is_some_and(|t| now >= add(t, p.propagation));
        let keep: Vec<usize> = if settled {
            Vec::new()
        } else {
            (0..f.retired.len())
                .filter(|&i| now < f.retired[i].not_after)
                .collect()
        };
        if keep.len() < f.retired.len() {
            return Decision::Prune {
                why: if settled {
                    "every replica serves a certificate of the new CA".into()
                } else {
                    "retired CAs expired".into()
                },
                keep,
            };
        }
    }
    Decision::Keep
}

#[cfg(test)]
mod tests {
    use super::*;

    const H: i64 = 3600;

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_second(1_750_000_000 + secs).unwrap()
    }

    fn policy() -> Policy {
        Policy {
            sans: vec!["svc.ns.svc".into()],
            serving_validity: Duration::from_secs(30 * H as u64),
            renew_before: Duration::from_secs(10 * H as u64),
            ca_validity: Duration::from_secs(300 * H as u64),
            propagation: Duration::from_secs(60),
        }
    }

    /// A CA issued at 0 for 300 h, a serving certificate issued at 0 for 30 h.
    fn facts() -> Facts {
        Facts {
            signer: Window {
                not_before: t(0),
                not_after: t(300 * H),
            },
            retired: vec![],
            serving: Window {
                not_before: t(0),
                not_after: t(30 * H),
            },
            serving_sans: BTreeSet::from(["svc.ns.svc".to_string()]),
            serving_issuer: Some(0),
            ca_rotated_at: Some(t(0)),
            serving_issued_at: Some(t(0)),
            force: None,
        }
    }

    #[test]
    fn absent_secret_is_created() {
        assert_eq!(
            decide(None, false, t(0), &policy()),
            Decision::Fresh("the Secret does not exist".into())
        );
    }

    #[test]
    fn nothing_to_do_while_valid() {
        assert_eq!(
            decide(Some(&facts()), true, t(H), &policy()),
            Decision::Keep
        );
    }

    #[test]
    fn serving_is_renewed_before_expiry_and_after_it() {
        let d = decide(Some(&facts()), true, t(20 * H), &policy());
        assert!(
            matches!(&d, Decision::IssueServing { why, .. } if why.starts_with("the serving certificate is due for renewal")),
            "{d:?}"
        );
        let d = decide(Some(&facts()), true, t(31 * H), &policy());
        assert!(
            matches!(&d, Decision::IssueServing { why, .. } if why.starts_with("the serving certificate expired")),
            "{d:?}"
        );
    }

    #[test]
    fn ca_is_rotated_at_two_thirds_and_replaced_when_expired() {
        let d = decide(Some(&facts()), true, t(200 * H), &policy());
        assert!(matches!(d, Decision::RotateCa(_)), "{d:?}");
        let d = decide(Some(&facts()), true, t(199 * H), &policy());
        assert!(!matches!(d, Decision::RotateCa(_)), "{d:?}");
        let d = decide(Some(&facts()), true, t(300 * H), &policy());
        assert!(matches!(d, Decision::Fresh(_)), "{d:?}");
    }

    #[test]
    fn after_a_ca_rotation_the_serving_certificate_waits_for_publication_and_propagation() {
        let mut f = facts();
        f.retired = vec![f.signer];
        f.signer = Window {
            not_before: t(100),
            not_after: t(400 * H),
        };
        f.ca_rotated_at = Some(t(100));
        f.serving_issuer = Some(1);
        let p = policy();
        assert_eq!(decide(Some(&f), false, t(200), &p), Decision::Keep);
        assert_eq!(decide(Some(&f), true, t(159), &p), Decision::Keep);
        let d = decide(Some(&f), true, t(160), &p);
        assert!(
            matches!(&d, Decision::IssueServing { why, .. } if why.starts_with("moving the serving certificate to the new CA")),
            "{d:?}"
        );
        // Re-issued at 160: the old CA stays until every replica had time to pick the new certificate up.
        f.serving_issuer = Some(0);
        f.serving_issued_at = Some(t(160));
        assert_eq!(decide(Some(&f), true, t(219), &p), Decision::Keep);
        assert_eq!(
            decide(Some(&f), true, t(220), &p),
            Decision::Prune {
                keep: vec![],
                why: "every replica serves a certificate of the new CA".into()
            }
        );
    }

    #[test]
    fn expired_retired_cas_are_pruned_even_without_a_timestamp() {
        let mut f = facts();
        f.serving_issued_at = None;
        f.retired = vec![
            Window {
                not_before: t(0),
                not_after: t(2 * H),
            },
            Window {
                not_before: t(0),
                not_after: t(100 * H),
            },
        ];
        assert_eq!(decide(Some(&f), true, t(H), &policy()), Decision::Keep);
        assert_eq!(
            decide(Some(&f), true, t(3 * H), &policy()),
            Decision::Prune {
                keep: vec![1],
                why: "retired CAs expired".into()
            }
        );
    }

    #[test]
    fn missing_sans_are_added_and_existing_ones_kept() {
        let mut p = policy();
        p.sans.push("127.0.0.1".into());
        let mut f = facts();
        f.serving_sans.insert("old.ns.svc".into());
        assert_eq!(
            decide(Some(&f), true, t(H), &p),
            Decision::IssueServing {
                why: "the serving certificate lacks SANs 127.0.0.1".into(),
                sans: vec!["svc.ns.svc".into(), "127.0.0.1".into(), "old.ns.svc".into()],
            }
        );
        // An extra SAN is not a reason to re-issue.
        assert_eq!(decide(Some(&f), true, t(H), &policy()), Decision::Keep);
    }

    #[test]
    fn the_annotation_forces_a_rotation_and_a_bad_value_is_cleared() {
        let mut f = facts();
        f.force = Some("ca".into());
        assert_eq!(
            decide(Some(&f), true, t(H), &policy()),
            Decision::RotateCa("nadipam.io/rotate=ca asks for it".into())
        );
        f.force = Some("serving".into());
        assert!(matches!(
            decide(Some(&f), true, t(H), &policy()),
            Decision::IssueServing { .. }
        ));
        f.force = Some("both".into());
        assert_eq!(
            decide(Some(&f), true, t(H), &policy()),
            Decision::ClearForce {
                value: "both".into()
            }
        );
    }

    #[test]
    fn a_serving_certificate_of_an_unknown_ca_is_replaced() {
        let mut f = facts();
        f.serving_issuer = None;
        assert!(matches!(
            decide(Some(&f), false, t(H), &policy()),
            Decision::IssueServing { .. }
        ));
    }
}
