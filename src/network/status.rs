//! A Network's status from what one reconcile found: the NAD and Subnet names, the device, and one Ready
//! condition whose reason and message say what is missing. Pure, so each verdict is unit-tested.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::{Network, NetworkStatus};

const READY: &str = "Ready";

/// Why the network is (not) usable: the Ready condition's reason and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub ready: bool,
    pub reason: &'static str,
    pub message: String,
}

impl Verdict {
    pub(crate) fn ready(message: String) -> Verdict {
        Verdict {
            ready: true,
            reason: "Ready",
            message,
        }
    }

    pub(crate) fn not_ready(reason: &'static str, message: String) -> Verdict {
        Verdict {
            ready: false,
            reason,
            message,
        }
    }
}

/// The status to write: `nad` and `subnet` as found (None when they do not exist or are not this network's).
/// The Ready condition keeps its lastTransitionTime while its status stays the same.
pub(crate) fn status(
    net: &Network,
    nad: Option<String>,
    subnet: Option<String>,
    verdict: &Verdict,
    now: Timestamp,
) -> NetworkStatus {
    let previous = net.status.as_ref();
    let cond_status = if verdict.ready { "True" } else { "False" };
    let since = previous
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == READY))
        .filter(|c| c.status == cond_status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let mut conditions = vec![Condition {
        type_: READY.to_string(),
        status: cond_status.to_string(),
        reason: verdict.reason.to_string(),
        message: verdict.message.clone(),
        last_transition_time: since,
        observed_generation: net.metadata.generation,
    }];
    if let Some(prev) = previous {
        conditions.extend(prev.conditions.iter().filter(|c| c.type_ != READY).cloned());
    }
    NetworkStatus {
        nad,
        subnet,
        device: net.spec.device(),
        observed_generation: net.metadata.generation,
        conditions,
    }
}

/// The message of a Ready network.
pub(crate) fn ready_message(net: &Network, subnet: &str) -> String {
    format!(
        "NetworkAttachmentDefinition {} is generated; Pods on it get addresses from Subnet {subnet}",
        net.key()
    )
}

/// True when `net` carries a status for its current generation: a difference between the NAD and the spec
/// is then a hand edit of the NAD, not a change of the Network.
pub(crate) fn spec_seen(net: &Network) -> bool {
    net.status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .is_some_and(|g| Some(g) == net.metadata.generation)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(generation: i64, status: Option<NetworkStatus>) -> Network {
        let mut n: Network = serde_saphyr::from_str(
            "apiVersion: nadipam.io/v1\nkind: Network\nmetadata: {name: ovs-conf, namespace: kube-system}\n\
             spec: {cniType: ovs, ovs: {bridge: br1}}\n",
        )
        .unwrap();
        n.metadata.generation = Some(generation);
        n.status = status;
        n
    }

    #[test]
    fn ready_status_names_nad_subnet_and_device() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let n = net(3, None);
        let v = Verdict::ready(ready_message(&n, "ovs-conf.kube-system"));
        let s = status(
            &n,
            Some("ovs-conf".into()),
            Some("ovs-conf.kube-system".into()),
            &v,
            t0,
        );
        assert_eq!(s.nad.as_deref(), Some("ovs-conf"));
        assert_eq!(s.subnet.as_deref(), Some("ovs-conf.kube-system"));
        assert_eq!(s.device.as_deref(), Some("br1"));
        assert_eq!(s.observed_generation, Some(3));
        let c = &s.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Ready", "True", "Ready")
        );
        assert_eq!(
            c.message,
            "NetworkAttachmentDefinition kube-system/ovs-conf is generated; Pods on it get addresses from Subnet \
             ovs-conf.kube-system"
        );
        assert_eq!(c.last_transition_time, Time(t0));
    }

    #[test]
    fn transition_time_moves_only_with_the_status() {
        let t0 = Timestamp::from_second(1_000).unwrap();
        let t1 = Timestamp::from_second(2_000).unwrap();
        let v = Verdict::ready("ok".into());
        let first = status(&net(1, None), None, None, &v, t0);
        let again = status(&net(2, Some(first.clone())), None, None, &v, t1);
        assert_eq!(again.conditions[0].last_transition_time, Time(t0));
        let bad = Verdict::not_ready("SubnetNotFound", "missing".into());
        let flipped = status(&net(2, Some(first)), None, None, &bad, t1);
        assert_eq!(flipped.conditions[0].last_transition_time, Time(t1));
        assert_eq!(flipped.conditions[0].status, "False");
        assert_eq!(flipped.conditions[0].reason, "SubnetNotFound");
    }

    #[test]
    fn a_hand_edit_is_told_from_a_spec_change() {
        assert!(!spec_seen(&net(1, None)));
        let seen = NetworkStatus {
            observed_generation: Some(1),
            ..NetworkStatus::default()
        };
        assert!(spec_seen(&net(1, Some(seen.clone()))));
        assert!(!spec_seen(&net(2, Some(seen))));
    }
}
