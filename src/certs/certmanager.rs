//! `--cert-mode=cert-manager`: the server applies the cert-manager objects for its serving certificate itself
//! (for installs without the Helm chart, which creates the same objects from templates), then serves the
//! Secret cert-manager writes and publishes its `ca.crt` into `caBundle`.
//!
//! Without `--cert-manager-issuer` it bootstraps a private CA the way cert-manager documents it: a self-signed
//! Issuer signs a CA Certificate, whose Secret backs a CA Issuer that signs the serving Certificate.

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use super::error::CertError;
use super::sans;
use super::settings::Settings;
use crate::api::{
    CaIssuer, Certificate, CertificateSpec, Issuer, IssuerRef, IssuerSpec, SelfSignedIssuer,
};
use crate::duration::show;

const MANAGER: &str = "nadipam";

/// The objects to apply, in order: the CA chain (unless an issuer is given) and the serving Certificate.
pub struct CertManager {
    pub issuers: Vec<Issuer>,
    pub certificates: Vec<Certificate>,
}

impl CertManager {
    pub fn objects(s: &Settings) -> Result<CertManager, CertError> {
        let names = sans::for_service(&s.service, &s.namespace, &s.extra_sans)?;
        let (ips, dns): (Vec<String>, Vec<String>) = names
            .into_iter()
            .partition(|n| n.parse::<std::net::IpAddr>().is_ok());
        let renew_before = s.renew_before.unwrap_or(s.serving_validity / 3);
        let mut issuers = Vec::new();
        let mut certificates = Vec::new();
        let issuer_ref = match &s.issuer {
            Some(text) => parse_issuer(text)?,
            None => {
                let selfsigned = format!("{}-selfsigned", s.secret);
                let ca = format!("{}-ca", s.secret);
                issuers.push(Issuer::new(
                    &selfsigned,
                    IssuerSpec {
                        self_signed: Some(SelfSignedIssuer {}),
                        ca: None,
                    },
                ));
                certificates.push(Certificate::new(
                    &ca,
                    CertificateSpec {
                        secret_name: ca.clone(),
                        common_name: Some(format!("{}-ca", s.service)),
                        issuer_ref: IssuerRef {
                            name: selfsigned,
                            kind: Some("Issuer".into()),
                            group: Some("cert-manager.io".into()),
                        },
                        duration: Some(show(s.ca_validity)),
                        renew_before: Some(show(s.ca_validity / 3)),
                        is_ca: Some(true),
                        ..CertificateSpec::default()
                    },
                ));
                issuers.push(Issuer::new(
                    &ca,
                    IssuerSpec {
                        self_signed: None,
                        ca: Some(CaIssuer {
                            secret_name: ca.clone(),
                        }),
                    },
                ));
                IssuerRef {
                    name: ca,
                    kind: Some("Issuer".into()),
                    group: Some("cert-manager.io".into()),
                }
            }
        };
        certificates.push(Certificate::new(
            &s.secret,
            CertificateSpec {
                secret_name: s.secret.clone(),
                common_name: dns.get(2).cloned(),
                dns_names: dns,
                ip_addresses: ips,
                issuer_ref,
                duration: Some(show(s.serving_validity)),
                renew_before: Some(show(renew_before)),
                is_ca: None,
            },
        ));
        for i in &mut issuers {
            i.meta_mut().namespace = Some(s.namespace.clone());
        }
        for c in &mut certificates {
            c.meta_mut().namespace = Some(s.namespace.clone());
        }
        Ok(CertManager {
            issuers,
            certificates,
        })
    }

    /// Server-side applies every object (idempotent; every replica may do it).
    pub async fn apply(&self, client: &Client, namespace: &str) -> Result<(), CertError> {
        let params = PatchParams::apply(MANAGER).force();
        let issuers = Api::<Issuer>::namespaced(client.clone(), namespace);
        for i in &self.issuers {
            issuers
                .patch(&i.name_any(), &params, &Patch::Apply(i))
                .await
                .map_err(CertError::api(format!(
                    "applying cert-manager Issuer {namespace}/{}",
                    i.name_any()
                )))?;
        }
        let certs = Api::<Certificate>::namespaced(client.clone(), namespace);
        for c in &self.certificates {
            certs
                .patch(&c.name_any(), &params, &Patch::Apply(c))
                .await
                .map_err(CertError::api(format!(
                    "applying cert-manager Certificate {namespace}/{}",
                    c.name_any()
                )))?;
        }
        Ok(())
    }
}

fn parse_issuer(text: &str) -> Result<IssuerRef, CertError> {
    let bad = || CertError::Flag {
        flag: "--cert-manager-issuer",
        value: format!("{text:?}"),
        problem: "must be Issuer/<name> (in nadipam's namespace) or ClusterIssuer/<name>".into(),
    };
    let (kind, name) = text.split_once('/').ok_or_else(bad)?;
    if !matches!(kind, "Issuer" | "ClusterIssuer") || name.is_empty() || name.contains('/') {
        return Err(bad());
    }
    Ok(IssuerRef {
        name: name.to_string(),
        kind: Some(kind.to_string()),
        group: Some("cert-manager.io".into()),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settings() -> Settings {
        Settings {
            namespace: "sys".into(),
            secret: "hook-tls".into(),
            service: "hook".into(),
            extra_sans: vec!["127.0.0.1".into()],
            serving_validity: Duration::from_secs(8760 * 3600),
            renew_before: None,
            ca_validity: Duration::from_secs(5 * 8760 * 3600),
            poll: Duration::from_secs(10),
            propagation: Duration::from_secs(60),
            issuer: None,
            targets: crate::certs::Targets {
                mutating: "nadipam-mutating".into(),
                validating: "nadipam-validating".into(),
            },
        }
    }

    #[test]
    fn bootstraps_a_private_ca_chain() {
        let o = CertManager::objects(&settings()).unwrap();
        let names: Vec<String> = o.issuers.iter().map(|i| i.name_any()).collect();
        assert_eq!(names, ["hook-tls-selfsigned", "hook-tls-ca"]);
        let serving = serde_json::to_value(&o.certificates[1]).unwrap();
        assert_eq!(
            serving,
            serde_json::json!({
                "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
                "metadata": {"name": "hook-tls", "namespace": "sys"},
                "spec": {
                    "secretName": "hook-tls",
                    "commonName": "hook.sys.svc",
                    "dnsNames": ["hook", "hook.sys", "hook.sys.svc", "hook.sys.svc.cluster.local"],
                    "ipAddresses": ["127.0.0.1"],
                    "issuerRef": {"name": "hook-tls-ca", "kind": "Issuer", "group": "cert-manager.io"},
                    "duration": "8760h", "renewBefore": "2920h"
                }
            })
        );
        let ca = serde_json::to_value(&o.certificates[0]).unwrap();
        assert_eq!(ca["spec"]["isCA"], true);
        assert_eq!(ca["spec"]["issuerRef"]["name"], "hook-tls-selfsigned");
    }

    #[test]
    fn a_given_issuer_is_used_alone_and_a_bad_one_is_refused() {
        let mut s = settings();
        s.issuer = Some("ClusterIssuer/corp-ca".into());
        let o = CertManager::objects(&s).unwrap();
        assert!(o.issuers.is_empty());
        assert_eq!(o.certificates.len(), 1);
        assert_eq!(o.certificates[0].spec.issuer_ref.name, "corp-ca");
        s.issuer = Some("corp-ca".into());
        assert_eq!(
            CertManager::objects(&s).err().unwrap().to_string(),
            "--cert-manager-issuer \"corp-ca\": must be Issuer/<name> (in nadipam's namespace) or ClusterIssuer/<name>"
        );
    }
}
