//! The webhook configurations nadipam registers, built in one place so the Helm chart, the self-managed
//! certificate path and the test bed all register exactly the same rules.

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MatchCondition, MutatingWebhook, MutatingWebhookConfiguration, RuleWithOperations,
    ServiceReference, ValidatingWebhook, ValidatingWebhookConfiguration, WebhookClientConfig,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};

use super::paths;
use crate::certs::Targets;

pub const MUTATING_NAME: &str = "nadipam-mutating";
pub const VALIDATING_NAME: &str = "nadipam-validating";

/// The configurations [`Registration`] writes for `suffix`, as the certificate code keeps their `caBundle`.
pub fn targets(suffix: &str) -> Targets {
    Targets {
        mutating: format!("{MUTATING_NAME}{suffix}"),
        validating: format!("{VALIDATING_NAME}{suffix}"),
    }
}

/// Where the apiserver reaches the webhook.
#[derive(Clone, Debug)]
pub enum Endpoint {
    /// In a cluster: a Service in front of the server replicas.
    Service {
        namespace: String,
        name: String,
        port: i32,
    },
    /// The test bed and out-of-cluster runs: a URL base such as `https://127.0.0.1:8443`.
    Url(String),
}

/// The CEL text of [`POD_MATCH`], a macro so [`POD_MATCH_DEFAULT_NETWORK`] can extend it with `concat!`.
macro_rules! asks_for_multus_network {
    () => {
        "has(object.metadata.annotations) && \
    ('k8s.v1.cni.cncf.io/networks' in object.metadata.annotations || \
     'v1.multus-cni.io/default-network' in object.metadata.annotations || \
     'nadipam.io/reservation' in object.metadata.annotations)"
    };
}

/// The CEL condition that sends a Pod to the mutating webhook only when it asks for a Multus network, or
/// carries a reservation token (a copied manifest: refused unless the token is its own); every other Pod
/// never reaches nadipam, which is what makes `failurePolicy: Fail` safe.
pub const POD_MATCH: &str = asks_for_multus_network!();

/// With a cluster default network (`--default-network`), every Pod that does not use the host's network
/// (Multus leaves those alone) is sent too: Multus puts it on that network, so nadipam allocates for it.
/// kube-system and nadipam's namespace stay out through the namespaceSelector.
pub const POD_MATCH_DEFAULT_NETWORK: &str = concat!(
    "(",
    asks_for_multus_network!(),
    ") || !has(object.spec.hostNetwork) || !object.spec.hostNetwork"
);

/// NADs reach the webhook only when they might be nadipam's (`scope::judge` decides precisely): no config
/// (file-backed, refused only where a Subnet or IPPool names the NAD), or a config mentioning one of
/// nadipam's IPAM types. CEL cannot parse JSON, so the match is on substrings; a NAD that slips past (an
/// escaped type name) is still judged by Pod admission.
pub const NAD_MATCH: &str = "!has(object.spec) || !has(object.spec.config) || \
    object.spec.config.trim() == '' || \
    object.spec.config.contains('nadipam') || object.spec.config.contains('kube-ovn')";

/// Pod UPDATEs reach the guard only when a reservation token is added, or the Pod was admitted by nadipam and
/// one of its `*.kubernetes.io/` annotations, its reservation token or its reservation label changes, so other
/// label, ownerReference, status and Multus `network-status` updates never depend on nadipam being up.
pub const POD_UPDATE_MATCH: &str = "(has(object.metadata.annotations) && \
    'nadipam.io/reservation' in object.metadata.annotations && \
    (!has(oldObject.metadata.annotations) || !('nadipam.io/reservation' in oldObject.metadata.annotations))) || \
    has(oldObject.metadata.annotations) && \
    'nadipam.io/reservation' in oldObject.metadata.annotations && \
    (!has(object.metadata.annotations) || \
     oldObject.metadata.annotations.exists(k, (k == 'nadipam.io/reservation' || k.contains('.kubernetes.io/')) && \
       (!(k in object.metadata.annotations) || object.metadata.annotations[k] != oldObject.metadata.annotations[k])) || \
     object.metadata.annotations.exists(k, k.contains('.kubernetes.io/') && !(k in oldObject.metadata.annotations))) || \
    has(oldObject.metadata.labels) && 'nadipam.io/reservation' in oldObject.metadata.labels && \
    (!has(object.metadata.labels) || !('nadipam.io/reservation' in object.metadata.labels) || \
     object.metadata.labels['nadipam.io/reservation'] != oldObject.metadata.labels['nadipam.io/reservation'])";

/// Workloads are validated only when their Pod template asks for a Multus network.
const TEMPLATE_MATCH: &str = "has(object.spec.template) && has(object.spec.template.metadata) && \
    has(object.spec.template.metadata.annotations) && \
    ('k8s.v1.cni.cncf.io/networks' in object.spec.template.metadata.annotations || \
     'v1.multus-cni.io/default-network' in object.spec.template.metadata.annotations)";
const CRONJOB_MATCH: &str = "has(object.spec.jobTemplate) && has(object.spec.jobTemplate.spec.template.metadata) && \
    has(object.spec.jobTemplate.spec.template.metadata.annotations) && \
    ('k8s.v1.cni.cncf.io/networks' in object.spec.jobTemplate.spec.template.metadata.annotations || \
     'v1.multus-cni.io/default-network' in object.spec.jobTemplate.spec.template.metadata.annotations)";

/// Inputs shared by every webhook entry.
#[derive(Clone, Debug)]
pub struct Registration {
    pub endpoint: Endpoint,
    /// PEM of the CA that signed the serving certificate; empty when cert-manager injects it.
    pub ca_bundle: Vec<u8>,
    /// Namespaces whose Pods are never sent (kube-system and nadipam's own are always added).
    pub exclude_namespaces: Vec<String>,
    /// Name suffix, so parallel test beds or releases don't overwrite each other.
    pub suffix: String,
    pub timeout_seconds: i32,
    /// A cluster default network is set (`--default-network`): Pods without Multus annotations are sent too.
    pub default_network: bool,
}

impl Registration {
    fn client_config(&self, path: &str) -> WebhookClientConfig {
        let ca = (!self.ca_bundle.is_empty()).then(|| ByteString(self.ca_bundle.clone()));
        match &self.endpoint {
            Endpoint::Service {
                namespace,
                name,
                port,
            } => WebhookClientConfig {
                service: Some(ServiceReference {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    path: Some(path.to_string()),
                    port: Some(*port),
                }),
                ca_bundle: ca,
                url: None,
            },
            Endpoint::Url(base) => WebhookClientConfig {
                url: Some(format!("{}{}", base.trim_end_matches('/'), path)),
                ca_bundle: ca,
                service: None,
            },
        }
    }

    fn namespace_selector(&self) -> LabelSelector {
        let mut values = vec!["kube-system".to_string()];
        values.extend(self.exclude_namespaces.iter().cloned());
        values.sort();
        values.dedup();
        LabelSelector {
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "kubernetes.io/metadata.name".to_string(),
                operator: "NotIn".to_string(),
                values: Some(values),
            }]),
            match_labels: None,
        }
    }

    fn meta(&self, base: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(format!("{base}{}", self.suffix)),
            ..Default::default()
        }
    }

    pub fn mutating(&self) -> MutatingWebhookConfiguration {
        MutatingWebhookConfiguration {
            metadata: self.meta(MUTATING_NAME),
            webhooks: Some(vec![MutatingWebhook {
                name: "pods.nadipam.io".to_string(),
                admission_review_versions: vec!["v1".to_string()],
                client_config: self.client_config(paths::MUTATE_PODS),
                rules: Some(vec![rule("", "v1", "pods", &["CREATE"])]),
                match_conditions: Some(vec![if self.default_network {
                    MatchCondition {
                        name: "on-a-multus-network".to_string(),
                        expression: POD_MATCH_DEFAULT_NETWORK.to_string(),
                    }
                } else {
                    MatchCondition {
                        name: "asks-for-multus-network".to_string(),
                        expression: POD_MATCH.to_string(),
                    }
                }]),
                failure_policy: Some("Fail".to_string()),
                side_effects: "NoneOnDryRun".to_string(),
                reinvocation_policy: Some("IfNeeded".to_string()),
                timeout_seconds: Some(self.timeout_seconds),
                namespace_selector: Some(self.namespace_selector()),
                match_policy: Some("Equivalent".to_string()),
                object_selector: None,
            }]),
        }
    }

    pub fn validating(&self) -> ValidatingWebhookConfiguration {
        let entry =
            |name: &str, path: &str, rules: Vec<RuleWithOperations>, cond: Option<(&str, &str)>| {
                ValidatingWebhook {
                    name: name.to_string(),
                    admission_review_versions: vec!["v1".to_string()],
                    client_config: self.client_config(path),
                    rules: Some(rules),
                    match_conditions: cond.map(|(n, e)| {
                        vec![MatchCondition {
                            name: n.to_string(),
                            expression: e.to_string(),
                        }]
                    }),
                    failure_policy: Some("Fail".to_string()),
                    side_effects: "None".to_string(),
                    timeout_seconds: Some(self.timeout_seconds),
                    namespace_selector: None,
                    match_policy: Some("Equivalent".to_string()),
                    object_selector: None,
                }
            };
        let cu = &["CREATE", "UPDATE"];
        let cud = &["CREATE", "UPDATE", "DELETE"];
        ValidatingWebhookConfiguration {
            metadata: self.meta(VALIDATING_NAME),
            webhooks: Some(vec![
                ValidatingWebhook {
                    namespace_selector: Some(self.namespace_selector()),
                    ..entry(
                        "pods.nadipam.io",
                        paths::VALIDATE_PODS,
                        vec![rule("", "v1", "pods", &["UPDATE"])],
                        Some(("allocated-pod-annotations-change", POD_UPDATE_MATCH)),
                    )
                },
                // Ignore: a NAD is only data until a Pod uses it, and Pod admission (Fail) judges every
                // nadipam NAD again (`scope::judge`: config, provider). So while nadipam is down NADs can
                // still be written, Multus and Spiderpool installs included; a bad one is caught on use.
                ValidatingWebhook {
                    failure_policy: Some("Ignore".to_string()),
                    ..entry(
                        "nads.nadipam.io",
                        paths::VALIDATE_NADS,
                        vec![rule(
                            "k8s.cni.cncf.io",
                            "v1",
                            "network-attachment-definitions",
                            cu,
                        )],
                        Some(("might-be-nadipams", NAD_MATCH)),
                    )
                },
                entry(
                    "subnets.nadipam.io",
                    paths::VALIDATE_SUBNETS,
                    vec![rule("nadipam.io", "v1", "subnets", cud)],
                    None,
                ),
                entry(
                    "ippools.nadipam.io",
                    paths::VALIDATE_IPPOOLS,
                    vec![rule("nadipam.io", "v1", "ippools", cud)],
                    None,
                ),
                entry(
                    "networks.nadipam.io",
                    paths::VALIDATE_NETWORKS,
                    vec![rule("nadipam.io", "v1", "networks", cu)],
                    None,
                ),
                entry(
                    "workloads.nadipam.io",
                    paths::VALIDATE_WORKLOADS,
                    vec![
                        rule("apps", "v1", "deployments", cu),
                        rule("apps", "v1", "statefulsets", cu),
                        rule("apps", "v1", "daemonsets", cu),
                        rule("apps", "v1", "replicasets", cu),
                        rule("batch", "v1", "jobs", cu),
                    ],
                    Some(("template-asks-for-multus-network", TEMPLATE_MATCH)),
                ),
                entry(
                    "cronjobs.nadipam.io",
                    paths::VALIDATE_WORKLOADS,
                    vec![rule("batch", "v1", "cronjobs", cu)],
                    Some(("template-asks-for-multus-network", CRONJOB_MATCH)),
                ),
            ]),
        }
    }
}

fn rule(group: &str, version: &str, resource: &str, ops: &[&str]) -> RuleWithOperations {
    RuleWithOperations {
        api_groups: Some(vec![group.to_string()]),
        api_versions: Some(vec![version.to_string()]),
        resources: Some(vec![resource.to_string()]),
        operations: Some(ops.iter().map(|s| s.to_string()).collect()),
        scope: Some("*".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_follow_the_registration() {
        let reg = Registration {
            endpoint: Endpoint::Url("https://x".into()),
            ca_bundle: vec![],
            exclude_namespaces: vec![],
            suffix: "-a".into(),
            timeout_seconds: 10,
            default_network: false,
        };
        let t = targets("-a");
        assert_eq!(Some(t.mutating), reg.mutating().metadata.name);
        assert_eq!(Some(t.validating), reg.validating().metadata.name);
    }
}
