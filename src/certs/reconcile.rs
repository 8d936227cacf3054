//! One self-managed round: read the Secret, decide, write the step decided. A write that loses to another
//! replica (AlreadyExists on create, Conflict on replace) is not an error: the round re-reads and decides
//! again from the winner's Secret, which usually means adopting it.

use std::collections::BTreeMap;

use jiff::Timestamp;
use jiff::tz::Offset;

use super::error::CertError;
use super::issue;
use super::material::Material;
use super::policy::{
    CA_ROTATED_AT, Decision, Facts, Policy, ROTATE_ANNOTATION, SERVING_ISSUED_AT, decide,
};
use super::publish::{self, Targets};
use super::store::{Store, Written};

/// How many times in a row a write may lose to another replica before the round is given up.
const ATTEMPTS: usize = 5;

type Notes = Vec<(&'static str, Option<String>)>;

/// Reads, decides and writes until the Secret needs nothing more this round; returns its material.
pub(crate) async fn round(
    client: &kube::Client,
    store: &Store,
    policy: &Policy,
    targets: &Targets,
) -> Result<Material, CertError> {
    for _ in 0..ATTEMPTS {
        let secret = store.get().await?;
        let now = Timestamp::now();
        let annotations = secret
            .as_ref()
            .and_then(|s| s.metadata.annotations.clone())
            .unwrap_or_default();
        let parsed = secret
            .as_ref()
            .map(|s| Material::parse(s.data.as_ref().unwrap_or(&BTreeMap::new())));
        let (decision, material) = match parsed {
            None => (decide(None, false, now, policy), None),
            Some(Err(source)) => {
                let e = CertError::Unusable {
                    secret: store.id(),
                    source,
                };
                (Decision::Fresh(format!("{e}; replacing it")), None)
            }
            Some(Ok(m)) => {
                let facts = Facts::of(&m, &annotations);
                let published = match facts.serving_issuer {
                    Some(i) if i > 0 => {
                        publish::trusted_everywhere(client, targets, &m.signer().der).await?
                    }
                    _ => true,
                };
                (decide(Some(&facts), published, now, policy), Some(m))
            }
        };
        let Some((next, notes)) = step(store, policy, &decision, material.as_ref(), now)? else {
            if let Some(m) = material {
                return Ok(m);
            }
            continue;
        };
        let body = store.build(secret.as_ref(), &next, &notes);
        let written = match &secret {
            Some(_) => store.replace(&body).await?,
            None => store.create(&body).await?,
        };
        match written {
            Written::Stored => {
                log_step(&store.id(), &decision, &next);
                return Ok(next);
            }
            Written::Lost => tracing::info!(
                secret = %store.id(),
                "another replica wrote the Secret first; adopting its content"
            ),
        }
    }
    Err(CertError::Contended {
        secret: store.id(),
        attempts: ATTEMPTS,
    })
}

/// The material and annotations a decision writes; `None` for [`Decision::Keep`].
fn step(
    store: &Store,
    p: &Policy,
    decision: &Decision,
    current: Option<&Material>,
    now: Timestamp,
) -> Result<Option<(Material, Notes)>, CertError> {
    // RFC 3339 with a +00:00 offset, as the annotations have always been written.
    let stamp = Some(now.display_with_offset(Offset::UTC).to_string());
    let clear = (ROTATE_ANNOTATION, None);
    let current = match (current, decision) {
        (_, Decision::Keep) => return Ok(None),
        (Some(c), d) if !matches!(d, Decision::Fresh(_)) => c,
        _ => {
            let m = issue::fresh(now, p.ca_validity, &p.sans, p.serving_validity)?;
            let notes = vec![
                (CA_ROTATED_AT, stamp.clone()),
                (SERVING_ISSUED_AT, stamp),
                clear,
            ];
            return Ok(Some((m, notes)));
        }
    };
    let mut m = current.clone();
    let notes = match decision {
        Decision::RotateCa(_) => {
            let ca = issue::ca(now, p.ca_validity)?;
            m.cas.retain(|c| c.not_after > now);
            m.cas.insert(0, ca.cert);
            m.ca_key = ca.key;
            vec![(CA_ROTATED_AT, stamp), clear]
        }
        Decision::IssueServing { sans, .. } => {
            let (cert, key) = issue::serving(m.signer(), &m.ca_key, sans, now, p.serving_validity)?;
            m.serving = cert;
            m.serving_key = key;
            vec![(SERVING_ISSUED_AT, stamp), clear]
        }
        Decision::Prune { keep, .. } => {
            let retired: Vec<_> = keep
                .iter()
                .filter_map(|&i| m.cas.get(i + 1).cloned())
                .collect();
            m.cas.truncate(1);
            m.cas.extend(retired);
            vec![clear]
        }
        Decision::ClearForce { value } => {
            tracing::warn!(
                secret = %store.id(),
                "annotation {ROTATE_ANNOTATION}={value:?} is neither \"ca\" nor \"serving\"; removing it"
            );
            vec![clear]
        }
        Decision::Keep | Decision::Fresh(_) => return Ok(None),
    };
    Ok(Some((m, notes)))
}

fn log_step(secret: &str, d: &Decision, m: &Material) {
    let (what, why) = match d {
        Decision::Fresh(why) => ("created a CA and a serving certificate", why.as_str()),
        Decision::RotateCa(why) => (
            "rotated the CA; the serving certificate follows once every webhook trusts it",
            why.as_str(),
        ),
        Decision::IssueServing { why, .. } => ("issued a new serving certificate", why.as_str()),
        Decision::Prune { why, .. } => ("pruned retired CAs from the bundle", why.as_str()),
        Decision::ClearForce { .. } => ("removed the rotate annotation", ""),
        Decision::Keep => return,
    };
    tracing::info!(
        %secret,
        reason = why,
        cas = m.cas.len(),
        serving_expires = %m.serving.not_after,
        "{what}"
    );
}
