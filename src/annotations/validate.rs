//! Syntax check of every request annotation at once, for objects whose NADs are not looked up (workload
//! templates, dry runs): what can be refused without the API server is refused here.

use std::collections::{BTreeMap, BTreeSet};

use super::address::parse_pair;
use super::attachment::{AttachmentRequest, attachments};
use super::error::{AnnotationError, Shown};
use super::keys::{MAC_ADDRESS, split_request_key};
use super::lookup::value;
use super::names::is_ifname;
use super::provider::{check_provider, parse_mac, provider_request};
use super::spider::spider_pools;

/// Parses the Multus and Spiderpool annotations and every `<provider>.kubernetes.io/` request key present
/// (including per-interface variants), returning the attachments on success.
pub fn validate(
    annotations: &BTreeMap<String, String>,
    pod_namespace: &str,
) -> Result<Vec<AttachmentRequest>, AnnotationError> {
    let list = attachments(annotations, pod_namespace)?;
    spider_pools(annotations)?;
    let mut providers = BTreeSet::new();
    for key in annotations.keys() {
        let Some(k) = split_request_key(key) else {
            continue;
        };
        check_provider(k.provider).map_err(|_| AnnotationError::Invalid {
            key: key.as_str().into(),
            value: Shown::new(k.provider),
            problem: "is not a valid provider (expected <nad>.<namespace>, <nad>.<namespace>.ovn or ovn, a DNS-1123 subdomain)".into(),
        })?;
        providers.insert(k.provider);
        if let Some(ifname) = k.ifname
            && !is_ifname(ifname)
        {
            return Err(AnnotationError::Interface {
                key: key.as_str().into(),
                value: Shown::new(ifname),
            });
        }
        if k.ifname.is_some()
            && let Some(v) = value(annotations, key)?
        {
            if k.field == MAC_ADDRESS {
                parse_mac(key, v)?;
            } else {
                parse_pair(key, v)?;
            }
        }
    }
    for p in providers {
        provider_request(annotations, p, None)?;
    }
    Ok(list)
}
