//! cert-manager's `Certificate` and `Issuer` (`cert-manager.io/v1`), reduced to the fields nadipam reads and
//! writes when cert-manager issues the webhook's serving certificate. cert-manager owns these CRDs, so no schema
//! is generated for them; fields nadipam does not model are ignored on read and left alone on write.

use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// The certificate nadipam asks cert-manager for.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Certificate",
    namespaced,
    schema = "disabled",
    status = "CertificateStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct CertificateSpec {
    /// Secret cert-manager writes `tls.crt`, `tls.key` and `ca.crt` into.
    pub secret_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_names: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ip_addresses: Vec<String>,
    pub issuer_ref: IssuerRef,
    /// Go duration, e.g. `2160h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    /// Go duration, e.g. `360h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renew_before: Option<String>,
    /// True for the CA certificate of a self-signed bootstrap chain.
    #[serde(default, rename = "isCA", skip_serializing_if = "Option::is_none")]
    pub is_ca: Option<bool>,
}

/// Which issuer signs a Certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerRef {
    pub name: String,
    /// `Issuer` (default) or `ClusterIssuer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// `cert-manager.io` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// What cert-manager reports about a Certificate.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertManagerCondition>,
    /// RFC 3339 time the current certificate expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub not_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renewal_time: Option<String>,
}

/// cert-manager's condition; its `reason`/`message` may be absent, unlike `meta/v1.Condition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertManagerCondition {
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// A namespaced issuer: self-signed (to bootstrap a CA) or backed by a CA key pair in a Secret.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[kube(
    group = "cert-manager.io",
    version = "v1",
    kind = "Issuer",
    namespaced,
    schema = "disabled",
    status = "IssuerStatus",
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct IssuerSpec {
    /// Present (as `{}`) for a self-signed issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_signed: Option<SelfSignedIssuer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<CaIssuer>,
}

/// cert-manager's `selfSigned: {}`; nadipam sets no options.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelfSignedIssuer {}

/// A CA issuer signs with the key pair in `secretName`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CaIssuer {
    pub secret_name: String,
}

/// What cert-manager reports about an Issuer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuerStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<CertManagerCondition>,
}

/// True when the `Ready` condition is `True` (for either kind's conditions).
pub fn is_ready(conditions: &[CertManagerCondition]) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[cfg(test)]
mod tests {
    use kube::core::Resource;

    use super::*;

    #[test]
    fn certificate_round_trips_cert_manager_yaml() {
        let yaml = r#"
apiVersion: cert-manager.io/v1
kind: Certificate
metadata:
  name: nadipam-webhook
  namespace: kube-system
spec:
  secretName: nadipam-webhook-tls
  dnsNames: [nadipam-webhook.kube-system.svc]
  ipAddresses: [127.0.0.1]
  issuerRef: {name: nadipam-ca, kind: Issuer}
  duration: 2160h
  renewBefore: 360h
  privateKey: {algorithm: ECDSA}
status:
  conditions:
  - {type: Ready, status: "True", lastTransitionTime: "2025-01-01T00:00:00Z"}
  notAfter: "2025-04-01T00:00:00Z"
"#;
        let c: Certificate = serde_saphyr::from_str(yaml).unwrap();
        assert_eq!(c.spec.secret_name, "nadipam-webhook-tls");
        assert_eq!(c.spec.ip_addresses, ["127.0.0.1"]);
        assert_eq!(c.spec.issuer_ref.kind.as_deref(), Some("Issuer"));
        assert_eq!(c.spec.renew_before.as_deref(), Some("360h"));
        let status = c.status.as_ref().unwrap();
        assert!(is_ready(&status.conditions));
        let v = serde_json::to_value(&c).unwrap();
        assert_eq!(v["apiVersion"], "cert-manager.io/v1");
        assert_eq!(v["spec"]["issuerRef"]["name"], "nadipam-ca");
        assert!(v["spec"].get("isCA").is_none() && v["spec"].get("commonName").is_none());
        assert_eq!(Certificate::plural(&()), "certificates");
    }

    #[test]
    fn issuer_kinds() {
        let s = Issuer::new(
            "selfsigned",
            IssuerSpec {
                self_signed: Some(SelfSignedIssuer {}),
                ca: None,
            },
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["spec"], serde_json::json!({"selfSigned": {}}));
        let ca: Issuer = serde_saphyr::from_str(
            "apiVersion: cert-manager.io/v1\nkind: Issuer\nmetadata: {name: ca, namespace: x}\nspec:\n  ca: {secretName: nadipam-ca}\n",
        )
        .unwrap();
        assert_eq!(ca.spec.ca.unwrap().secret_name, "nadipam-ca");
        assert!(!is_ready(&[]));
        assert_eq!(Issuer::plural(&()), "issuers");
    }
}
