//! The certificate flags of the self-managed and cert-manager modes, checked together: a combination that
//! cannot rotate safely is refused at start with a message naming the flag, rather than discovered at the
//! first rotation.

use std::time::Duration;

use super::error::CertError;
use super::policy::Policy;
use super::publish::Targets;
use super::sans;
use crate::duration::show;

/// What the self-managed and cert-manager modes are configured with (the server's `--cert-*` flags).
#[derive(Clone, Debug)]
pub struct Settings {
    /// Namespace of the Secret (nadipam's own).
    pub namespace: String,
    pub secret: String,
    /// The Service in front of the replicas; its DNS names become SANs.
    pub service: String,
    /// More SANs (DNS names or IP addresses), e.g. 127.0.0.1 for a server reached by URL.
    pub extra_sans: Vec<String>,
    pub serving_validity: Duration,
    /// Default: a third of `serving_validity`.
    pub renew_before: Option<Duration>,
    pub ca_validity: Duration,
    /// How often the Secret is read.
    pub poll: Duration,
    /// Self-managed: how long a change needs to reach every replica and apiserver.
    pub propagation: Duration,
    /// cert-manager: `Issuer/<name>` or `ClusterIssuer/<name>` to sign with; `None` bootstraps a private CA.
    pub issuer: Option<String>,
    /// The webhook configurations whose `caBundle` is kept current.
    pub targets: Targets,
}

impl Settings {
    /// Checks the flags together and derives the rotation policy.
    pub(crate) fn policy(&self) -> Result<Policy, CertError> {
        let sans = sans::for_service(&self.service, &self.namespace, &self.extra_sans)?;
        let renew_before = self.renew_before.unwrap_or(self.serving_validity / 3);
        if renew_before >= self.serving_validity {
            return Err(CertError::Flag {
                flag: "--cert-renew-before",
                value: show(renew_before),
                problem: format!(
                    "must be shorter than --cert-validity ({})",
                    show(self.serving_validity)
                ),
            });
        }
        if self.ca_validity < self.serving_validity * 3 {
            return Err(CertError::Flag {
                flag: "--ca-validity",
                value: show(self.ca_validity),
                problem: format!(
                    "must be at least 3 × --cert-validity ({}): the CA is replaced at two thirds of its life and must outlive every serving certificate it signed",
                    show(self.serving_validity * 3)
                ),
            });
        }
        if self.propagation < self.poll * 2 {
            return Err(CertError::Flag {
                flag: "--cert-propagation-delay",
                value: show(self.propagation),
                problem: format!(
                    "must be at least twice --cert-poll-interval ({}): replicas see a change of the Secret only when they poll",
                    show(self.poll * 2)
                ),
            });
        }
        Ok(Policy {
            sans,
            serving_validity: self.serving_validity,
            renew_before,
            ca_validity: self.ca_validity,
            propagation: self.propagation,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings {
            namespace: "nadipam-system".into(),
            secret: "tls".into(),
            service: "nadipam-webhook".into(),
            extra_sans: vec!["127.0.0.1".into()],
            serving_validity: Duration::from_secs(365 * 86_400),
            renew_before: None,
            ca_validity: Duration::from_secs(5 * 365 * 86_400),
            poll: Duration::from_secs(10),
            propagation: Duration::from_secs(60),
            issuer: None,
            targets: Targets {
                mutating: "nadipam-mutating".into(),
                validating: "nadipam-validating".into(),
            },
        }
    }

    #[test]
    fn defaults_make_a_policy_with_every_service_name() {
        let p = settings().policy().unwrap();
        assert_eq!(
            p.sans,
            [
                "nadipam-webhook",
                "nadipam-webhook.nadipam-system",
                "nadipam-webhook.nadipam-system.svc",
                "nadipam-webhook.nadipam-system.svc.cluster.local",
                "127.0.0.1"
            ]
        );
        assert_eq!(p.renew_before, Duration::from_secs(365 * 86_400 / 3));
    }

    #[test]
    fn flag_combinations_that_cannot_work_are_refused() {
        let err = |edit: &dyn Fn(&mut Settings)| {
            let mut s = settings();
            edit(&mut s);
            s.policy().unwrap_err().to_string()
        };
        assert_eq!(
            err(&|s| s.renew_before = Some(Duration::from_secs(365 * 86_400))),
            "--cert-renew-before 8760h: must be shorter than --cert-validity (8760h)"
        );
        assert_eq!(
            err(&|s| s.ca_validity = Duration::from_secs(2 * 365 * 86_400)),
            "--ca-validity 17520h: must be at least 3 × --cert-validity (26280h): the CA is replaced at two thirds of its life and must outlive every serving certificate it signed"
        );
        assert_eq!(
            err(&|s| s.propagation = Duration::from_secs(15)),
            "--cert-propagation-delay 15s: must be at least twice --cert-poll-interval (20s): replicas see a change of the Secret only when they poll"
        );
    }
}
