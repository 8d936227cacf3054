//! Writing a plan: every `create` item is created, IPLeases first (a Subnet that exists before its leases
//! would let the webhook hand out the addresses being adopted), then Subnets, then IPPools. An object that
//! exists already is compared: equal (the same holder for a lease) is `exists`, anything else a `conflict`;
//! so applying twice creates nothing the second time. A refusal (a webhook, RBAC) is a conflict naming it.

use kube::Client;
use kube::api::{Api, PostParams};

use super::plan::{Action, Item, Object, Plan, pool_diffs, same_holder, subnet_diffs};
use super::world::World;
use crate::api::{IPLease, IPPool, Subnet};

fn rank(item: &Item) -> u8 {
    match item.object {
        Some(Object::IPLease(_)) => 0,
        Some(Object::Subnet(_)) => 1,
        Some(Object::IPPool(_)) => 2,
        None => 3,
    }
}

pub(crate) async fn apply(client: &Client, plan: &mut Plan, world: &World) {
    let mut order: Vec<usize> = (0..plan.items.len())
        .filter(|&i| plan.items[i].action == Action::Create)
        .collect();
    order.sort_by_key(|&i| rank(&plan.items[i]));
    let pp = PostParams::default();
    for i in order {
        let item = &mut plan.items[i];
        let result = match &item.object {
            Some(Object::IPLease(l)) => {
                let api = Api::<IPLease>::all(client.clone());
                match api.create(&pp, l).await {
                    Ok(_) => Ok(()),
                    Err(e) if exists(&e) => match api.get(&item.name).await {
                        Ok(have) => {
                            let pod = world.pod(
                                &l.spec.pod_namespace,
                                l.spec.pod_name.as_deref().unwrap_or(""),
                            );
                            if pod.is_some_and(|p| same_holder(&have, p)) {
                                Err((
                                    Action::Exists,
                                    format!("{}: already leased to it", item.detail),
                                ))
                            } else {
                                Err((
                                    Action::Conflict,
                                    format!(
                                        "{}: the address is leased to {}",
                                        item.detail,
                                        have.holder()
                                    ),
                                ))
                            }
                        }
                        Err(e) => Err((
                            Action::Conflict,
                            format!("exists, and reading it failed: {e}"),
                        )),
                    },
                    Err(e) => Err((Action::Conflict, format!("create refused: {e}"))),
                }
            }
            Some(Object::Subnet(s)) => {
                let api = Api::<Subnet>::all(client.clone());
                match api.create(&pp, s).await {
                    Ok(_) => Ok(()),
                    Err(e) if exists(&e) => match api.get(&item.name).await {
                        Ok(have) => {
                            compare(subnet_diffs(&have.spec, &s.spec), "Subnet", &item.name)
                        }
                        Err(e) => Err((
                            Action::Conflict,
                            format!("exists, and reading it failed: {e}"),
                        )),
                    },
                    Err(e) => Err((Action::Conflict, format!("create refused: {e}"))),
                }
            }
            Some(Object::IPPool(p)) => {
                let api = Api::<IPPool>::all(client.clone());
                // The IPPool webhook resolves the pool's Subnet from its cache: a Subnet created a moment ago
                // may not be there yet (404); give it a few moments.
                let mut created = api.create(&pp, p).await;
                for _ in 0..15 {
                    match &created {
                        Err(kube::Error::Api(s)) if s.code == 404 => {
                            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                            created = api.create(&pp, p).await;
                        }
                        _ => break,
                    }
                }
                match created {
                    Ok(_) => Ok(()),
                    Err(e) if exists(&e) => match api.get(&item.name).await {
                        Ok(have) => compare(pool_diffs(&have.spec, &p.spec), "IPPool", &item.name),
                        Err(e) => Err((
                            Action::Conflict,
                            format!("exists, and reading it failed: {e}"),
                        )),
                    },
                    Err(e) => Err((Action::Conflict, format!("create refused: {e}"))),
                }
            }
            None => continue,
        };
        match result {
            Ok(()) => item.action = Action::Created,
            Err((action, detail)) => {
                item.action = action;
                item.detail = detail;
            }
        }
    }
}

fn compare(diffs: Vec<String>, kind: &str, name: &str) -> Result<(), (Action, String)> {
    if diffs.is_empty() {
        Err((Action::Exists, format!("an equal {kind} exists")))
    } else {
        Err((
            Action::Conflict,
            format!("{kind} {name} exists and differs: {}", diffs.join("; ")),
        ))
    }
}

fn exists(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409 && s.reason == "AlreadyExists")
}
