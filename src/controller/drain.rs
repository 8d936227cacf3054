//! A disabled IPPool's `Disabled` condition: whether it is still draining (leases taken from it remain, and how
//! many) or drained (it can be deleted). What `kubectl get nipp <pool> -o yaml` shows an operator moving
//! workloads off a pool.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use crate::api::{IPPool, IPPoolStatus};

const DISABLED: &str = "Disabled";

/// `status` with the pool's `Disabled` condition set (only while `spec.disable` is true; removed otherwise).
/// The transition time is kept while the reason stays.
pub(crate) fn with_pool_disabled(
    mut status: IPPoolStatus,
    pool: &IPPool,
    now: Timestamp,
) -> IPPoolStatus {
    let previous = status
        .conditions
        .iter()
        .find(|c| c.type_ == DISABLED)
        .cloned();
    status.conditions.retain(|c| c.type_ != DISABLED);
    if !pool.is_disabled() {
        return status;
    }
    let name = pool.name_any();
    let held = status.allocated_ip_count;
    let (reason, message) = if held > 0 {
        (
            "Draining",
            format!(
                "no new addresses are given; {held} address{} still held: move their Pods to another IPPool \
                 (kubectl get ipleases -l nadipam.io/pool={name} lists them)",
                if held == 1 { " is" } else { "es are" }
            ),
        )
    } else {
        (
            "Drained",
            "no new addresses are given and none is held: the pool can be deleted".to_string(),
        )
    };
    let since = match previous {
        Some(c) if c.reason == reason => c.last_transition_time,
        _ => Time(now),
    };
    status.conditions.push(Condition {
        type_: DISABLED.to_string(),
        status: "True".to_string(),
        reason: reason.to_string(),
        message,
        last_transition_time: since,
        observed_generation: pool.metadata.generation,
    });
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(disable: Option<bool>) -> IPPool {
        let mut p: IPPool = serde_json::from_value(serde_json::json!({
            "apiVersion": "nadipam.io/v1", "kind": "IPPool", "metadata": {"name": "old", "generation": 2},
            "spec": {"subnet": "s", "ips": ["10.0.0.10"]}
        }))
        .unwrap();
        p.spec.disable = disable;
        p
    }

    fn held(n: i64) -> IPPoolStatus {
        IPPoolStatus {
            total_ip_count: 10,
            allocated_ip_count: n,
            ..IPPoolStatus::default()
        }
    }

    #[test]
    fn a_disabled_pool_drains_then_is_drained() {
        let t1 = Timestamp::from_second(1000).unwrap();
        let t2 = Timestamp::from_second(2000).unwrap();
        let st = with_pool_disabled(held(3), &pool(Some(true)), t1);
        let c = &st.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("Disabled", "True", "Draining")
        );
        assert_eq!(
            c.message,
            "no new addresses are given; 3 addresses are still held: move their Pods to another IPPool (kubectl get \
             ipleases -l nadipam.io/pool=old lists them)"
        );
        assert_eq!(c.observed_generation, Some(2));
        // Still draining: the transition time stays.
        let mut again = held(1);
        again.conditions = st.conditions.clone();
        let st2 = with_pool_disabled(again, &pool(Some(true)), t2);
        assert_eq!(st2.conditions[0].last_transition_time, Time(t1));
        assert!(
            st2.conditions[0]
                .message
                .contains("1 address is still held")
        );
        let mut none = held(0);
        none.conditions = st2.conditions.clone();
        let drained = with_pool_disabled(none, &pool(Some(true)), t2);
        assert_eq!(drained.conditions[0].reason, "Drained");
        assert_eq!(drained.conditions[0].last_transition_time, Time(t2));
        // Enabled again: the condition goes, others stay.
        let mut back = held(0);
        back.conditions = drained.conditions.clone();
        back.conditions.push(Condition {
            type_: "NodesMatched".into(),
            ..drained.conditions[0].clone()
        });
        let enabled = with_pool_disabled(back, &pool(Some(false)), t2);
        assert_eq!(enabled.conditions.len(), 1);
        assert_eq!(enabled.conditions[0].type_, "NodesMatched");
        assert!(
            with_pool_disabled(held(0), &pool(None), t1)
                .conditions
                .is_empty()
        );
    }
}
