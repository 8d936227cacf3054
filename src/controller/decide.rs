//! What to do with one lease, given what is known about its Pod and StatefulSet. Pure: the reconciler
//! gathers the facts (from the caches, then again from live reads before anything is deleted) and acts.

use std::fmt;
use std::time::Duration;

use crate::api::{IPLease, LeasePhase, OwnerKind};

use super::facts::{ClaimFacts, PodFacts, SetFacts};
use super::owners::set_member;

/// What is known about a lease's surroundings.
#[derive(Clone, Debug, Default)]
pub(crate) struct Observed {
    /// The Pod the lease names (`spec.podName`), or for a lease without a name, the Pod carrying its token.
    pub pod: Option<PodFacts>,
    /// For a StatefulSet lease: its StatefulSet, `None` when it does not exist.
    pub set: Option<SetFacts>,
    /// A Pod carrying the lease's token was deleted recently: its name.
    pub pod_deleted: Option<String>,
    /// Time since the lease was created.
    pub age: Duration,
    /// For a claim's lease: its IPAMClaim.
    pub claim: ClaimFacts,
}

/// The settings a decision depends on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rules {
    /// How long a reservation may wait for its Pod.
    pub reclaim_after: Duration,
    /// Record the holder on each lease (`--bind-leases`). Off, a lease whose Pod carries its token is left as
    /// the webhook wrote it: the token already proves the holder, and every rule below reads it.
    pub bind: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Nothing to do until something changes.
    Keep,
    /// Look again after this long (a reservation still inside its reclaim window).
    RecheckIn(Duration),
    /// Record the Pod as the holder: podName, podUid, phase Bound.
    Bind(PodFacts),
    /// The holder is gone or done: delete the lease.
    Release(Release),
    /// The Pod never appeared: delete the reservation.
    Reclaim { age: Duration },
}

impl Decision {
    /// Decisions that delete the lease; they are confirmed with live reads first.
    pub(crate) fn deletes(&self) -> bool {
        matches!(self, Decision::Release(_) | Decision::Reclaim { .. })
    }
}

/// Why a lease is released.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    PodDeleted {
        namespace: String,
        pod: String,
    },
    PodFinished {
        namespace: String,
        pod: String,
        phase: String,
    },
    SetDeleted {
        namespace: String,
        set: String,
    },
    ScaledDown {
        namespace: String,
        set: String,
        ordinal: u32,
        replicas: i32,
    },
    ClaimDeleted {
        namespace: String,
        claim: String,
    },
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Release::PodDeleted { namespace, pod } => {
                write!(f, "pod {namespace}/{pod} no longer exists")
            }
            Release::PodFinished {
                namespace,
                pod,
                phase,
            } => write!(f, "pod {namespace}/{pod} has finished (phase {phase})"),
            Release::SetDeleted { namespace, set } => {
                write!(f, "statefulset {namespace}/{set} no longer exists")
            }
            Release::ScaledDown {
                namespace,
                set,
                ordinal,
                replicas,
            } => write!(
                f,
                "statefulset {namespace}/{set} has {replicas} replicas and no longer runs ordinal {ordinal}"
            ),
            Release::ClaimDeleted { namespace, claim } => write!(
                f,
                "ipamclaim {namespace}/{claim} no longer exists and no Pod uses its addresses"
            ),
        }
    }
}

/// The decision for `lease`. A StatefulSet lease survives its Pod (the re-created Pod of the same name reuses
/// it) and goes only when its StatefulSet is deleted or scaled below its ordinal; every other lease lives as
/// long as the Pod carrying its token runs.
pub(crate) fn decide(lease: &IPLease, seen: &Observed, rules: &Rules) -> Decision {
    if lease.metadata.deletion_timestamp.is_some() {
        return Decision::Keep;
    }
    let spec = &lease.spec;
    if spec.owner_kind == OwnerKind::IPAMClaim {
        return decide_claim(lease, &seen.claim);
    }
    let member = set_member(lease);
    if let Some(pod) = &seen.pod {
        let carries = pod.token.as_deref() == Some(spec.token.as_str());
        let bound_to = spec.phase == LeasePhase::Bound && spec.pod_uid.as_deref() == Some(&pod.uid);
        if carries || bound_to {
            if let (None, Some(phase)) = (&member, &pod.finished) {
                return Decision::Release(Release::PodFinished {
                    namespace: pod.namespace.clone(),
                    pod: pod.name.clone(),
                    phase: phase.clone(),
                });
            }
            return if bound_to || !rules.bind {
                Decision::Keep
            } else {
                Decision::Bind(pod.clone())
            };
        }
    }
    let namespace = spec.pod_namespace.clone();
    if let Some((set, ordinal)) = member {
        // A Pod of the ordinal's name still exists but does not carry this lease's token: an admission took
        // the lease over for a Pod that was never stored, or is being stored now. Whichever incarnation ends
        // up holding the address, it is in use: never release it while a Pod of that name exists.
        if seen.pod.is_some() {
            return Decision::Keep;
        }
        return match seen.set {
            None => Decision::Release(Release::SetDeleted { namespace, set }),
            Some(f) if !f.keeps(ordinal) => Decision::Release(Release::ScaledDown {
                namespace,
                set,
                ordinal,
                replicas: f.replicas,
            }),
            Some(_) => Decision::Keep,
        };
    }
    let gone = || {
        Decision::Release(Release::PodDeleted {
            namespace: namespace.clone(),
            pod: spec
                .pod_name
                .clone()
                .or_else(|| seen.pod_deleted.clone())
                .unwrap_or_else(|| format!("<reservation {}>", spec.token)),
        })
    };
    match spec.phase {
        LeasePhase::Bound => gone(),
        LeasePhase::Reserved if seen.pod_deleted.is_some() => gone(),
        LeasePhase::Reserved if seen.age >= rules.reclaim_after => {
            Decision::Reclaim { age: seen.age }
        }
        LeasePhase::Reserved => Decision::RecheckIn(rules.reclaim_after - seen.age),
    }
}

/// A claim's lease lives while its IPAMClaim does, whichever Pods come and go. A deleted claim's addresses stay
/// until no Pod uses them (a VM being deleted may still run): the release is deferred, not refused.
fn decide_claim(lease: &IPLease, claim: &ClaimFacts) -> Decision {
    if claim.exists || !claim.users.is_empty() {
        return Decision::Keep;
    }
    Decision::Release(Release::ClaimDeleted {
        namespace: lease.spec.pod_namespace.clone(),
        claim: lease.spec.claim.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::{IPLeaseSpec, OwnerKind};

    const TTL: Duration = Duration::from_secs(70);
    /// Binding on (`--bind-leases`), as most cases below were written for.
    const RULES: Rules = Rules {
        reclaim_after: TTL,
        bind: true,
    };
    /// The default: no bind.
    const TOKEN_ONLY: Rules = Rules {
        reclaim_after: TTL,
        bind: false,
    };

    /// A lease of subnet `s` at 10.0.0.5, token `t1`; shared with the other controller tests.
    pub(crate) fn lease(
        owner: OwnerKind,
        phase: LeasePhase,
        pod: Option<&str>,
        uid: Option<&str>,
    ) -> IPLease {
        IPLease::new(
            "s.10.0.0.5",
            IPLeaseSpec {
                subnet: "s".into(),
                ip: "10.0.0.5".into(),
                mac: None,
                provider: "n.ns".into(),
                interface: None,
                pod_namespace: "ns".into(),
                pod_name: pod.map(str::to_string),
                pod_uid: uid.map(str::to_string),
                phase,
                token: "t1".into(),
                owner_kind: owner,
                claim: None,
                pool: None,
                network: "ns/n".into(),
            },
        )
    }

    fn pod(name: &str, uid: &str, token: Option<&str>, finished: Option<&str>) -> PodFacts {
        PodFacts {
            namespace: "ns".into(),
            name: name.into(),
            uid: uid.into(),
            token: token.map(str::to_string),
            finished: finished.map(str::to_string),
        }
    }

    fn seen(pod: Option<PodFacts>) -> Observed {
        Observed {
            pod,
            ..Observed::default()
        }
    }

    use LeasePhase::{Bound, Reserved};
    use OwnerKind::{Pod as PodOwned, StatefulSet};

    #[test]
    fn a_claims_lease_lives_with_the_claim_then_with_its_pods() {
        let mut l = lease(OwnerKind::IPAMClaim, Reserved, None, None);
        l.spec.claim = Some("vm-a".into());
        let claim = |exists: bool, users: &[&str]| Observed {
            // A Pod gone, a reservation past its window: neither matters to a claim's lease.
            pod_deleted: Some("virt-launcher-vm-a-x".into()),
            age: TTL * 100,
            claim: ClaimFacts {
                exists,
                users: users.iter().map(|u| u.to_string()).collect(),
            },
            ..Observed::default()
        };
        for rules in [RULES, TOKEN_ONLY] {
            assert_eq!(decide(&l, &claim(true, &[]), &rules), Decision::Keep);
            assert_eq!(
                decide(&l, &claim(false, &["ns/virt-launcher-vm-a-y"]), &rules),
                Decision::Keep,
                "deferred while a Pod uses the addresses"
            );
            let d = decide(&l, &claim(false, &[]), &rules);
            assert_eq!(
                d,
                Decision::Release(Release::ClaimDeleted {
                    namespace: "ns".into(),
                    claim: "vm-a".into()
                })
            );
            let Decision::Release(why) = d else {
                unreachable!()
            };
            assert_eq!(
                why.to_string(),
                "ipamclaim ns/vm-a no longer exists and no Pod uses its addresses"
            );
        }
    }

    #[test]
    fn reserved_lease_binds_to_the_pod_carrying_its_token() {
        let l = lease(PodOwned, Reserved, None, None);
        let p = pod("web-abc", "u1", Some("t1"), None);
        assert_eq!(
            decide(&l, &seen(Some(p.clone())), &RULES),
            Decision::Bind(p)
        );
        let bound = lease(PodOwned, Bound, Some("web-abc"), Some("u1"));
        let p = pod("web-abc", "u1", Some("t1"), None);
        assert_eq!(decide(&bound, &seen(Some(p)), &RULES), Decision::Keep);
    }

    #[test]
    fn without_binds_the_token_alone_holds_the_lease() {
        let l = lease(PodOwned, Reserved, None, None);
        let p = pod("web-abc", "u1", Some("t1"), None);
        // Held, however old: never bound, never reclaimed while the Pod carries the token.
        let held = Observed {
            pod: Some(p.clone()),
            age: TTL * 100,
            ..Observed::default()
        };
        assert_eq!(decide(&l, &held, &TOKEN_ONLY), Decision::Keep);
        // The Pod deleted: released at once, naming the Pod the cache saw.
        let gone = Observed {
            pod_deleted: Some("web-abc".into()),
            ..Observed::default()
        };
        assert_eq!(
            decide(&l, &gone, &TOKEN_ONLY),
            Decision::Release(Release::PodDeleted {
                namespace: "ns".into(),
                pod: "web-abc".into()
            })
        );
        // Finished: released at once.
        let done = seen(Some(pod("web-abc", "u1", Some("t1"), Some("Succeeded"))));
        assert!(matches!(
            decide(&l, &done, &TOKEN_ONLY),
            Decision::Release(Release::PodFinished { .. })
        ));
        // A StatefulSet Pod carrying the token keeps its lease, bound or not.
        let set = lease(StatefulSet, Reserved, Some("web-0"), None);
        let member = seen(Some(pod("web-0", "u2", Some("t1"), None)));
        assert_eq!(decide(&set, &member, &TOKEN_ONLY), Decision::Keep);
        // A lease bound by an earlier version (or with --bind-leases) still goes with its Pod's UID.
        let bound = lease(PodOwned, Bound, Some("web-abc"), Some("u1"));
        assert!(decide(&bound, &seen(None), &TOKEN_ONLY).deletes());
    }

    #[test]
    fn finished_pods_release_at_once() {
        let l = lease(PodOwned, Bound, Some("job-x"), Some("u1"));
        let p = pod("job-x", "u1", Some("t1"), Some("Succeeded"));
        let d = decide(&l, &seen(Some(p)), &RULES);
        assert_eq!(
            d,
            Decision::Release(Release::PodFinished {
                namespace: "ns".into(),
                pod: "job-x".into(),
                phase: "Succeeded".into()
            })
        );
        assert!(d.deletes());
        // Still Reserved (finished before the controller bound it): released too.
        let l = lease(PodOwned, Reserved, None, None);
        let p = pod("job-y", "u2", Some("t1"), Some("Failed"));
        assert!(matches!(
            decide(&l, &seen(Some(p)), &RULES),
            Decision::Release(Release::PodFinished { .. })
        ));
    }

    #[test]
    fn bound_lease_goes_with_its_pod() {
        let l = lease(PodOwned, Bound, Some("web-abc"), Some("u1"));
        let gone = Decision::Release(Release::PodDeleted {
            namespace: "ns".into(),
            pod: "web-abc".into(),
        });
        assert_eq!(decide(&l, &seen(None), &RULES), gone);
        // A new Pod with the same name is not the holder.
        let other = pod("web-abc", "u2", Some("t2"), None);
        assert_eq!(decide(&l, &seen(Some(other)), &RULES), gone);
        // The holder whose annotation was edited away still holds the lease.
        let edited = pod("web-abc", "u1", None, None);
        assert_eq!(decide(&l, &seen(Some(edited)), &RULES), Decision::Keep);
    }

    #[test]
    fn reservations_wait_for_their_pod_then_are_reclaimed() {
        let l = lease(PodOwned, Reserved, None, None);
        let mut s = seen(None);
        s.age = Duration::from_secs(10);
        assert_eq!(
            decide(&l, &s, &RULES),
            Decision::RecheckIn(Duration::from_secs(60))
        );
        s.age = TTL;
        assert_eq!(decide(&l, &s, &RULES), Decision::Reclaim { age: TTL });
        // Its Pod came and went before it was bound: no need to wait.
        s.age = Duration::from_secs(1);
        s.pod_deleted = Some("web-abc".into());
        assert_eq!(
            decide(&l, &s, &RULES),
            Decision::Release(Release::PodDeleted {
                namespace: "ns".into(),
                pod: "web-abc".into()
            })
        );
        // Another Pod with the lease's name (a retried bare Pod) does not save it.
        let l = lease(PodOwned, Reserved, Some("x"), None);
        let s = Observed {
            pod: Some(pod("x", "u9", Some("t2"), None)),
            age: TTL + Duration::from_secs(1),
            ..Observed::default()
        };
        assert!(matches!(decide(&l, &s, &RULES), Decision::Reclaim { .. }));
    }

    #[test]
    fn statefulset_leases_outlive_their_pods() {
        let set = SetFacts {
            replicas: 3,
            start: 0,
        };
        let l = lease(StatefulSet, Bound, Some("web-1"), Some("u1"));
        let s = Observed {
            set: Some(set),
            age: TTL * 10,
            ..Observed::default()
        };
        assert_eq!(
            decide(&l, &s, &RULES),
            Decision::Keep,
            "pod deleted, set keeps ordinal 1"
        );
        // The re-created Pod (new token, patched onto the lease by the webhook) binds it again.
        let mut moved = lease(StatefulSet, Reserved, Some("web-1"), None);
        moved.spec.token = "t2".into();
        let p = pod("web-1", "u2", Some("t2"), None);
        let s2 = Observed {
            pod: Some(p.clone()),
            set: Some(set),
            ..Observed::default()
        };
        assert_eq!(decide(&moved, &s2, &RULES), Decision::Bind(p));
        // A finished StatefulSet Pod keeps its address: the StatefulSet re-creates it.
        let done = pod("web-1", "u1", Some("t1"), Some("Failed"));
        let s3 = Observed {
            pod: Some(done),
            set: Some(set),
            ..Observed::default()
        };
        assert_eq!(decide(&l, &s3, &RULES), Decision::Keep);
        // Reserved and never bound, Pod missing: still kept while the StatefulSet wants the ordinal.
        let r = lease(StatefulSet, Reserved, Some("web-2"), None);
        assert_eq!(decide(&r, &s, &RULES), Decision::Keep);
    }

    #[test]
    fn statefulset_leases_go_when_scaled_down_or_deleted() {
        let l = lease(StatefulSet, Bound, Some("web-2"), Some("u1"));
        let s = Observed {
            set: Some(SetFacts {
                replicas: 1,
                start: 0,
            }),
            ..Observed::default()
        };
        assert_eq!(
            decide(&l, &s, &RULES),
            Decision::Release(Release::ScaledDown {
                namespace: "ns".into(),
                set: "web".into(),
                ordinal: 2,
                replicas: 1
            })
        );
        // Scaled down but the Pod still runs (terminating): keep until it is gone.
        let s2 = Observed {
            pod: Some(pod("web-2", "u1", Some("t1"), None)),
            ..s.clone()
        };
        assert_eq!(decide(&l, &s2, &RULES), Decision::Keep);
        // The same when an admission for a Pod of that name that was never stored took the lease over (its
        // token is on the lease, the live Pod carries the one before): the live Pod still uses the address.
        let mut taken = lease(StatefulSet, Reserved, Some("web-2"), None);
        taken.spec.token = "t2".into();
        assert_eq!(decide(&taken, &s2, &RULES), Decision::Keep);
        let deleted = Observed {
            set: None,
            ..s2.clone()
        };
        assert_eq!(decide(&taken, &deleted, &RULES), Decision::Keep);
        assert_eq!(
            decide(&l, &seen(None), &RULES),
            Decision::Release(Release::SetDeleted {
                namespace: "ns".into(),
                set: "web".into()
            })
        );
    }

    /// A lease `kubectl nadipam adopt` or `import` writes for a running Pod (Bound to its name and UID, token
    /// the UID: the Pod carries no reservation) is kept while that Pod runs, bound or not, and released once it
    /// is gone, finished or replaced by a Pod of the same name.
    #[test]
    fn adopted_leases_live_and_die_with_their_pod() {
        let holder = crate::migrate::tests::running_pod("ns", "a", "u-a");
        let l = crate::migrate::tests::adopted_lease(&holder, "10.0.0.5");
        assert_eq!((l.spec.phase, l.spec.token.as_str()), (Bound, "u-a"));
        for rules in [RULES, TOKEN_ONLY] {
            let running = Observed {
                pod: Some(pod("a", "u-a", None, None)),
                age: TTL * 100,
                ..Observed::default()
            };
            assert_eq!(decide(&l, &running, &rules), Decision::Keep);
            assert_eq!(
                decide(&l, &seen(None), &rules),
                Decision::Release(Release::PodDeleted {
                    namespace: "ns".into(),
                    pod: "a".into()
                })
            );
            let done = seen(Some(pod("a", "u-a", None, Some("Succeeded"))));
            assert!(matches!(
                decide(&l, &done, &rules),
                Decision::Release(Release::PodFinished { .. })
            ));
            let replaced = seen(Some(pod("a", "u-b", None, None)));
            assert!(decide(&l, &replaced, &rules).deletes());
        }
        // A StatefulSet's Pod: kept across its re-creation while the set wants the ordinal, like any
        // StatefulSet lease.
        let mut member = crate::migrate::tests::running_pod("ns", "web-1", "u-w");
        member.set = Some("web".into());
        let l = crate::migrate::tests::adopted_lease(&member, "10.0.0.6");
        assert_eq!(l.spec.owner_kind, StatefulSet);
        let gone = Observed {
            set: Some(SetFacts {
                replicas: 2,
                start: 0,
            }),
            ..Observed::default()
        };
        assert_eq!(decide(&l, &gone, &TOKEN_ONLY), Decision::Keep);
        assert!(decide(&l, &seen(None), &TOKEN_ONLY).deletes());
    }

    #[test]
    fn leases_being_deleted_are_left_alone() {
        let mut l = lease(PodOwned, Bound, Some("x"), Some("u1"));
        l.metadata.deletion_timestamp = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
            k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
        ));
        assert_eq!(decide(&l, &seen(None), &RULES), Decision::Keep);
    }

    #[test]
    fn release_reasons_name_the_objects() {
        let texts: Vec<String> = [
            Release::PodDeleted {
                namespace: "ns".into(),
                pod: "web-abc".into(),
            },
            Release::PodFinished {
                namespace: "ns".into(),
                pod: "job-x".into(),
                phase: "Succeeded".into(),
            },
            Release::SetDeleted {
                namespace: "ns".into(),
                set: "web".into(),
            },
            Release::ScaledDown {
                namespace: "ns".into(),
                set: "web".into(),
                ordinal: 2,
                replicas: 1,
            },
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            texts,
            [
                "pod ns/web-abc no longer exists",
                "pod ns/job-x has finished (phase Succeeded)",
                "statefulset ns/web no longer exists",
                "statefulset ns/web has 1 replicas and no longer runs ordinal 2",
            ]
        );
    }

    #[test]
    fn set_member_needs_an_ordinal() {
        assert_eq!(
            set_member(&lease(StatefulSet, Bound, Some("db-main-0"), None)),
            Some(("db-main".into(), 0))
        );
        assert_eq!(
            set_member(&lease(StatefulSet, Bound, Some("db"), None)),
            None
        );
        assert_eq!(
            set_member(&lease(PodOwned, Bound, Some("db-0"), None)),
            None
        );
    }
}
