//! `pod <name>`: a Pod's addresses per network, from its leases (found by the token it carries and by the
//! IPAMClaims it is labelled with) and its result annotations. An address the annotations give that no lease
//! holds is shown too, with no lease: the address is not reserved and may be handed to another Pod.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde::Serialize;

use super::Outcome;
use super::cli::{Format, PodArgs};
use super::error::Error;
use super::fetch::{get, list};
use super::output::format;
use super::table::Row;
use crate::annotations::keys::{self, IP_ADDRESS, LOGICAL_SWITCH, provider_key, split_request_key};
use crate::annotations::read_result;
use crate::api::{IPLease, claims_of_labels, token_selector};

/// One attachment of the Pod: the addresses of one network interface.
#[derive(Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Attachment {
    pub network: Option<String>,
    pub interface: Option<String>,
    pub ips: Vec<String>,
    pub mac: Option<String>,
    pub subnet: Option<String>,
    pub pool: Option<String>,
    pub leases: Vec<String>,
    pub provider: String,
    pub gateways: Vec<String>,
    pub claim: Option<String>,
}

impl Row for Attachment {
    const HEADERS: &'static [&'static str] = &[
        "NETWORK",
        "INTERFACE",
        "IP",
        "MAC",
        "SUBNET",
        "POOL",
        "LEASES",
    ];
    const WIDE: &'static [&'static str] = &["PROVIDER", "GATEWAY", "CLAIM"];

    fn cells(&self) -> Vec<Option<String>> {
        vec![
            self.network.clone(),
            self.interface.clone(),
            Some(self.ips.join(",")),
            self.mac.clone(),
            self.subnet.clone(),
            self.pool.clone(),
            Some(self.leases.join(",")),
            Some(self.provider.clone()),
            Some(self.gateways.join(",")),
            self.claim.clone(),
        ]
    }
}

/// The NAD a provider names: `<nad>.<ns>` and `<nad>.<ns>.ovn` are `ns/nad` (a namespace has no dot).
fn provider_network(provider: &str) -> Option<String> {
    let p = provider.strip_suffix(".ovn").unwrap_or(provider);
    p.rsplit_once('.').map(|(nad, ns)| format!("{ns}/{nad}"))
}

/// The Pod's attachments from its `annotations` and `leases`, ordered by network and interface.
pub(crate) fn attachments(
    annotations: &BTreeMap<String, String>,
    leases: &[IPLease],
) -> Vec<Attachment> {
    let mut groups: BTreeMap<(String, Option<String>, String), Vec<&IPLease>> = BTreeMap::new();
    for l in leases {
        let s = &l.spec;
        groups
            .entry((s.network.clone(), s.interface.clone(), s.provider.clone()))
            .or_default()
            .push(l);
    }
    let mut covered: BTreeSet<(String, String)> = BTreeSet::new();
    let mut out = Vec::new();
    for ((network, interface, provider), mut group) in groups {
        // IPv4 first, as the annotations write a pair.
        group.sort_by_key(|l| (l.spec.ip.contains(':'), l.spec.ip.clone()));
        let result = read_result(annotations, &provider, interface.as_deref())
            .ok()
            .flatten();
        for l in &group {
            covered.insert((provider.clone(), l.spec.ip.clone()));
        }
        let first = group.first().map(|l| &l.spec);
        out.push(Attachment {
            network: Some(network),
            interface,
            ips: group.iter().map(|l| l.spec.ip.clone()).collect(),
            mac: first
                .and_then(|s| s.mac.clone())
                .or_else(|| result.as_ref().and_then(|r| r.mac.map(|m| m.to_string()))),
            subnet: first.map(|s| s.subnet.clone()),
            pool: first.and_then(|s| s.pool.clone()),
            leases: group.iter().map(|l| l.name_any()).collect(),
            gateways: gateways(result.as_ref()),
            claim: first.and_then(|s| s.claim.clone()),
            provider,
        });
    }
    // Addresses the annotations give that no lease holds.
    for key in annotations.keys() {
        let Some(k) = split_request_key(key).filter(|k| k.field == IP_ADDRESS) else {
            continue;
        };
        let Ok(Some(result)) = read_result(annotations, k.provider, k.ifname) else {
            continue;
        };
        let ips: Vec<String> = result.ip.addrs().map(|ip| ip.to_string()).collect();
        if ips
            .iter()
            .all(|ip| covered.contains(&(k.provider.to_string(), ip.clone())))
        {
            continue;
        }
        for ip in &ips {
            covered.insert((k.provider.to_string(), ip.clone()));
        }
        out.push(Attachment {
            network: provider_network(k.provider),
            interface: k.ifname.map(str::to_string),
            ips,
            mac: result.mac.map(|m| m.to_string()),
            subnet: annotations
                .get(&provider_key(k.provider, LOGICAL_SWITCH))
                .cloned(),
            gateways: gateways(Some(&result)),
            provider: k.provider.to_string(),
            ..Attachment::default()
        });
    }
    out.sort_by(|a, b| (&a.network, &a.interface).cmp(&(&b.network, &b.interface)));
    out
}

fn gateways(result: Option<&crate::annotations::ParsedResult>) -> Vec<String> {
    result
        .map(|r| {
            r.addresses
                .iter()
                .filter_map(|a| a.gateway)
                .map(|g| g.to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) async fn run(
    client: &Client,
    namespace: &str,
    args: &PodArgs,
    output: Format,
) -> Result<Outcome, Error> {
    let name = &args.name;
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = get(&api, name, &format!("reading pod {namespace}/{name}"))
        .await?
        .ok_or_else(|| Error::NotFound {
            what: format!("pod {namespace}/{name}"),
            hint: format!("; list the namespace's Pods with kubectl get pods -n {namespace}"),
        })?;
    let mut tokens: Vec<String> = pod
        .annotations()
        .get(keys::RESERVATION)
        .cloned()
        .into_iter()
        .collect();
    tokens.extend(claims_of_labels(pod.labels()).map(|(_, uid)| uid.to_string()));
    let leases_api: Api<IPLease> = Api::all(client.clone());
    let mut leases = Vec::new();
    for token in tokens {
        let selector = token_selector(&token);
        let doing = format!("listing IPLeases with label {selector}");
        leases.extend(
            list(
                &leases_api,
                ListParams::default().labels(&selector),
                &doing,
                false,
            )
            .await?,
        );
    }
    let rows = attachments(pod.annotations(), &leases);
    let mut outcome = Outcome::print(format(&rows, output)?);
    if rows.is_empty() {
        outcome.notes.push(format!(
            "pod {namespace}/{name} has no addresses from nadipam: it carries no {} annotation and no leases \
             (its networks are not nadipam's, or it was created before nadipam's webhook served)",
            keys::RESERVATION
        ));
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{LeasePhase, OwnerKind};
    use crate::controller::decide::tests::lease;
    use crate::kubectl::table::render;

    fn leased(ip: &str, interface: Option<&str>) -> IPLease {
        let mut l = lease(OwnerKind::Pod, LeasePhase::Reserved, None, None);
        l.metadata.name = Some(format!("s.{}", ip.replace(':', "-")));
        l.spec.ip = ip.into();
        l.spec.interface = interface.map(Into::into);
        l.spec.mac = Some("02:00:00:00:00:05".into());
        l
    }

    #[test]
    fn attachments_join_leases_and_annotations() {
        let ann: BTreeMap<String, String> = [
            ("n.ns.kubernetes.io/allocated", "true"),
            ("n.ns.kubernetes.io/ip_address", "10.0.0.5,fd00::5"),
            ("n.ns.kubernetes.io/ip_address.net1", "10.0.0.5,fd00::5"),
            ("n.ns.kubernetes.io/mac_address", "02:00:00:00:00:05"),
            ("n.ns.kubernetes.io/cidr", "10.0.0.0/24,fd00::/64"),
            ("n.ns.kubernetes.io/gateway", "10.0.0.1,fd00::1"),
            ("n.ns.kubernetes.io/logical_switch", "s"),
            // An address no lease holds any more.
            ("m.ns.kubernetes.io/allocated", "true"),
            ("m.ns.kubernetes.io/ip_address", "10.9.0.7"),
            ("m.ns.kubernetes.io/cidr", "10.9.0.0/24"),
            ("m.ns.kubernetes.io/logical_switch", "m"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let rows = attachments(
            &ann,
            &[
                leased("fd00::5", Some("net1")),
                leased("10.0.0.5", Some("net1")),
            ],
        );
        assert_eq!(
            render(&rows, true),
            "NETWORK   INTERFACE   IP                 MAC                 SUBNET   POOL     LEASES                 PROVIDER   GATEWAY            CLAIM\n\
             ns/m      <none>      10.9.0.7           <none>              m        <none>   <none>                 m.ns       <none>             <none>\n\
             ns/n      net1        10.0.0.5,fd00::5   02:00:00:00:00:05   s        <none>   s.10.0.0.5,s.fd00--5   n.ns       10.0.0.1,fd00::1   <none>\n"
        );
        assert!(attachments(&BTreeMap::new(), &[]).is_empty());
    }

    #[test]
    fn providers_name_their_network() {
        assert_eq!(
            provider_network("macvlan.default").as_deref(),
            Some("default/macvlan")
        );
        assert_eq!(
            provider_network("attach.net.default.ovn").as_deref(),
            Some("default/attach.net")
        );
        assert_eq!(provider_network("ovn"), None);
    }
}
