//! One reconcile of a Network: the Subnet first (so the NAD is never served by nothing), then the NAD, then the
//! status. Both generated objects are written with server-side apply and a forced field manager, so a hand
//! edit of a field the Network generates is put back on the next reconcile (the NAD watch triggers it at once).
//! A NAD or Subnet of the same name that the Network did not generate is never touched: the Network reports
//! it as not Ready instead.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::error::Error;
use super::render::{self, generated_by, subnet_created_by};
use super::status::{self, Verdict, ready_message, spec_seen};
use crate::api::{NETWORK_ANNOTATION, Network, NetworkAttachmentDefinition, Subnet};
use crate::context::Context;

/// The finalizer a Network with spec.ipam carries until the Subnet it created is deleted.
pub(crate) const FINALIZER: &str = "nadipam.io/subnet-cleanup";

/// The field manager of everything the controller writes for Networks.
const MANAGER: &str = "nadipam-network";

/// How often a Network is looked at again without a change (a Subnet named in spec.subnet may appear).
const RESYNC: Duration = Duration::from_secs(30);

/// How soon a deletion waiting for its Subnet's leases is retried.
const IN_USE_RETRY: Duration = Duration::from_secs(5);

/// What every reconcile shares.
pub(crate) struct Rec {
    pub ctx: Arc<Context>,
    recorder: Recorder,
}

impl Rec {
    pub(crate) fn new(ctx: Arc<Context>) -> Rec {
        let reporter = Reporter {
            controller: crate::controller::REPORTER.into(),
            instance: Some(ctx.settings.identity.clone()),
        };
        let recorder = Recorder::new(ctx.client.clone(), reporter);
        Rec { ctx, recorder }
    }

    /// Best effort: a lost Event never fails a reconcile.
    async fn event(&self, net: &Network, warning: bool, reason: &str, note: String) {
        let event = Event {
            type_: if warning {
                EventType::Warning
            } else {
                EventType::Normal
            },
            reason: reason.into(),
            note: Some(note),
            action: reason.into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &net.object_ref(&())).await {
            tracing::debug!(network = %net.key(), reason, error = %e, "could not publish an Event");
        }
    }
}

pub(crate) async fn reconcile(net: Arc<Network>, rec: Arc<Rec>) -> Result<Action, Error> {
    let nets: Api<Network> =
        Api::namespaced(rec.ctx.client.clone(), &net.namespace().unwrap_or_default());
    if net.metadata.deletion_timestamp.is_some() {
        return finalize(&net, &rec, &nets).await;
    }
    if net.spec.ipam.is_some() && !has_finalizer(&net) {
        let mut finalizers = net.finalizers().to_vec();
        finalizers.push(FINALIZER.to_string());
        set_finalizers(&nets, &net, finalizers).await?;
    }
    let (subnet, subnet_verdict) = ensure_subnet(&net, &rec).await?;
    let stale = release_stale_subnets(&net, &rec).await?;
    let (nad, nad_verdict) = ensure_nad(&net, &rec).await?;
    let verdict = match (nad_verdict, subnet_verdict, &subnet) {
        (Err(v), _, _) | (Ok(()), Err(v), _) => v,
        (Ok(()), Ok(()), Some(s)) => Verdict::ready(ready_message(&net, s)),
        (Ok(()), Ok(()), None) => Verdict::not_ready("NoSubnet", no_subnet(&net)),
    };
    write_status(&nets, &net, nad, subnet, &verdict).await?;
    // A Subnet this Network created and no longer wants is deleted once its leases are gone: look again soon.
    Ok(Action::requeue(if stale { IN_USE_RETRY } else { RESYNC }))
}

pub(crate) fn error_policy(net: Arc<Network>, error: &Error, _rec: Arc<Rec>) -> Action {
    tracing::warn!(network = %net.key(), "{error}");
    Action::requeue(Duration::from_secs(5))
}

fn has_finalizer(net: &Network) -> bool {
    net.finalizers().iter().any(|f| f == FINALIZER)
}

/// Replaces the finalizer list, only if the Network has not changed since it was read (resourceVersion).
async fn set_finalizers(
    nets: &Api<Network>,
    net: &Network,
    finalizers: Vec<String>,
) -> Result<(), Error> {
    let patch =
        json!({"metadata": {"finalizers": finalizers, "resourceVersion": net.resource_version()}});
    nets.patch(
        &net.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| Error::api(&net.key(), "updating the finalizers", e))
}

fn no_subnet(net: &Network) -> String {
    format!(
        "no Subnet has spec.provider {}: set spec.ipam (a Subnet is created) or spec.subnet, or create a Subnet \
         with that provider; until then Pods on {} are refused",
        net.provider(),
        net.key()
    )
}

/// The message of an answer to a server-side apply that retrying the same write will not change: a webhook or
/// schema refusal (a forced apply has no field conflicts, so a 409 is the Subnet webhook's Conflict).
fn refused(e: &kube::Error) -> Option<String> {
    match e {
        kube::Error::Api(s) if (400..500).contains(&s.code) && s.code != 429 => {
            Some(s.message.clone())
        }
        _ => None,
    }
}

/// The Subnet serving the network, created or updated from spec.ipam; `Err(verdict)` says why there is none.
async fn ensure_subnet(
    net: &Network,
    rec: &Rec,
) -> Result<(Option<String>, Result<(), Verdict>), Error> {
    let key = net.key();
    let provider = net.provider();
    let api: Api<Subnet> = Api::all(rec.ctx.client.clone());
    if let Some(name) = &net.spec.subnet {
        let found = api
            .get_opt(name)
            .await
            .map_err(|e| Error::api(&key, format!("reading Subnet {name}"), e))?;
        return Ok(match found {
            None => (
                None,
                Err(Verdict::not_ready(
                    "SubnetNotFound",
                    format!(
                        "Subnet {name} named in spec.subnet does not exist; create it with spec.provider {provider}"
                    ),
                )),
            ),
            Some(s) if s.spec.provider != provider => (
                None,
                Err(Verdict::not_ready(
                    "SubnetForeign",
                    format!(
                        "Subnet {name} named in spec.subnet has spec.provider {}, not this network's {provider}",
                        s.spec.provider
                    ),
                )),
            ),
            Some(_) => (Some(name.clone()), Ok(())),
        });
    }
    let Some(desired) = render::subnet(net) else {
        // Neither: a Subnet written by hand with this provider serves it.
        let mut serving: Vec<String> = rec
            .ctx
            .cache
            .subnets
            .state()
            .iter()
            .filter(|s| s.spec.provider == provider)
            .map(|s| s.name_any())
            .collect();
        serving.sort();
        return Ok((serving.into_iter().next(), Ok(())));
    };
    let name = desired.name_any();
    let found = api
        .get_opt(&name)
        .await
        .map_err(|e| Error::api(&key, format!("reading Subnet {name}"), e))?;
    let created = match &found {
        Some(s) if !subnet_created_by(s, net) => {
            let by = s
                .annotations()
                .get(NETWORK_ANNOTATION)
                .map(|n| format!("Network {n}"))
                .unwrap_or_else(|| "hand".to_string());
            return Ok((
                None,
                Err(Verdict::not_ready(
                    "SubnetConflict",
                    format!(
                        "Subnet {name} exists and was not created by this Network (created by {by}); delete it, or \
                         name it in spec.subnet instead of spec.ipam"
                    ),
                )),
            ));
        }
        Some(s) if s.spec == desired.spec => return Ok((Some(name), Ok(()))),
        Some(_) => false,
        None => true,
    };
    let params = PatchParams::apply(MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(&desired)).await {
        Ok(_) => {
            let (reason, what) = if created {
                ("SubnetCreated", "Created")
            } else {
                ("SubnetUpdated", "Updated")
            };
            rec.event(
                net,
                false,
                reason,
                format!(
                    "{what} Subnet {name} (cidrBlock {}) from spec.ipam",
                    desired.spec.cidr_block
                ),
            )
            .await;
            Ok((Some(name), Ok(())))
        }
        Err(e) => match refused(&e) {
            Some(message) => {
                let note = format!("Subnet {name} from spec.ipam was refused: {message}");
                rec.event(net, true, "SubnetRefused", note.clone()).await;
                Ok((None, Err(Verdict::not_ready("SubnetRefused", note))))
            }
            None => Err(Error::api(&key, format!("applying Subnet {name}"), e)),
        },
    }
}

/// What deleting a Subnet the Network created came to.
enum Cleanup {
    Gone,
    /// Leases remain (or the Subnet webhook refused); the message says which.
    InUse(String),
}

/// Deletes a Subnet the Network created, unless addresses of it are still leased (their Pods would keep
/// addresses nadipam no longer tracks; the Subnet webhook refuses that delete too).
async fn delete_created_subnet(net: &Network, rec: &Rec, name: &str) -> Result<Cleanup, Error> {
    let leased = rec
        .ctx
        .cache
        .leases
        .state()
        .iter()
        .filter(|l| l.spec.subnet == name)
        .count();
    if leased > 0 {
        return Ok(Cleanup::InUse(format!(
            "Subnet {name} still has {leased} leased address(es); it is deleted once the Pods using {} are gone",
            net.key()
        )));
    }
    let api: Api<Subnet> = Api::all(rec.ctx.client.clone());
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => {
            rec.event(
                net,
                false,
                "SubnetDeleted",
                format!("Deleted Subnet {name}"),
            )
            .await;
            Ok(Cleanup::Gone)
        }
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(Cleanup::Gone),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(Cleanup::InUse(s.message)),
        Err(e) => Err(Error::api(&net.key(), format!("deleting Subnet {name}"), e)),
    }
}

/// The Subnets this Network created that spec.ipam no longer describes (it was removed, or spec.subnet set
/// instead): deleted when free. True while one is still in use.
async fn release_stale_subnets(net: &Network, rec: &Rec) -> Result<bool, Error> {
    let keep = render::subnet(net).map(|s| s.name_any());
    let stale: Vec<String> = created_subnets(net, rec)
        .into_iter()
        .filter(|s| Some(s) != keep.as_ref())
        .collect();
    let mut waiting = false;
    for name in stale {
        if let Cleanup::InUse(msg) = delete_created_subnet(net, rec, &name).await? {
            tracing::info!(network = %net.key(), "{msg}");
            waiting = true;
        }
    }
    Ok(waiting)
}

/// Names of the Subnets carrying this Network's marker, from the webhook cache.
fn created_subnets(net: &Network, rec: &Rec) -> Vec<String> {
    rec.ctx
        .cache
        .subnets
        .state()
        .iter()
        .filter(|s| subnet_created_by(s, net))
        .map(|s| s.name_any())
        .collect()
}

/// The Network is being deleted: the NAD goes with it (ownerReference, garbage collector); the Subnet it
/// created is deleted here once free, then the finalizer is dropped.
async fn finalize(net: &Network, rec: &Rec, nets: &Api<Network>) -> Result<Action, Error> {
    if !has_finalizer(net) {
        return Ok(Action::await_change());
    }
    let mut names = created_subnets(net, rec);
    // The cache may not have seen a Subnet created moments ago: the one spec.ipam names is tried too.
    if let Some(s) = render::subnet(net) {
        names.push(s.name_any());
    }
    names.sort();
    names.dedup();
    let api: Api<Subnet> = Api::all(rec.ctx.client.clone());
    for name in names {
        let found = api
            .get_opt(&name)
            .await
            .map_err(|e| Error::api(&net.key(), format!("reading Subnet {name}"), e))?;
        if !found.is_some_and(|s| subnet_created_by(&s, net)) {
            continue;
        }
        if let Cleanup::InUse(msg) = delete_created_subnet(net, rec, &name).await? {
            let verdict = Verdict::not_ready("Deleting", msg.clone());
            write_status(nets, net, None, Some(name), &verdict).await?;
            rec.event(net, true, "SubnetInUse", msg).await;
            return Ok(Action::requeue(IN_USE_RETRY));
        }
    }
    let rest: Vec<String> = net
        .finalizers()
        .iter()
        .filter(|f| *f != FINALIZER)
        .cloned()
        .collect();
    set_finalizers(nets, net, rest).await?;
    Ok(Action::await_change())
}

/// The generated NAD, created or put back; `Err(verdict)` says why there is none.
async fn ensure_nad(
    net: &Network,
    rec: &Rec,
) -> Result<(Option<String>, Result<(), Verdict>), Error> {
    let key = net.key();
    let desired = match render::nad(net) {
        Ok(nad) => nad,
        Err(e) => {
            rec.event(net, true, "InvalidSpec", e.to_string()).await;
            return Ok((None, Err(Verdict::not_ready("InvalidSpec", e.to_string()))));
        }
    };
    let name = net.name_any();
    let api: Api<NetworkAttachmentDefinition> =
        Api::namespaced(rec.ctx.client.clone(), &net.namespace().unwrap_or_default());
    let found = api.get_opt(&name).await.map_err(|e| {
        Error::api(
            &key,
            format!("reading NetworkAttachmentDefinition {key}"),
            e,
        )
    })?;
    let note = match &found {
        Some(nad) if !generated_by(nad, net) => {
            return Ok((
                None,
                Err(Verdict::not_ready(
                    "NadConflict",
                    format!(
                        "NetworkAttachmentDefinition {key} exists and was not generated from this Network; delete \
                         it (it is then generated) or give the Network another name"
                    ),
                )),
            ));
        }
        Some(nad) if matches(nad, &desired) => return Ok((Some(name), Ok(()))),
        Some(_) if spec_seen(net) => (
            true,
            "NadRestored",
            format!(
                "NetworkAttachmentDefinition {key} was edited by hand; put back what this Network generates (edit \
                 the Network instead)"
            ),
        ),
        Some(_) => (
            false,
            "NadUpdated",
            format!("Updated NetworkAttachmentDefinition {key} from the Network's spec"),
        ),
        None => (
            false,
            "NadGenerated",
            format!("Generated NetworkAttachmentDefinition {key}"),
        ),
    };
    let params = PatchParams::apply(MANAGER).force();
    match api.patch(&name, &params, &Patch::Apply(&desired)).await {
        Ok(_) => {
            let (warning, reason, text) = note;
            rec.event(net, warning, reason, text).await;
            Ok((Some(name), Ok(())))
        }
        Err(e) => match refused(&e) {
            Some(message) => {
                let text = format!("NetworkAttachmentDefinition {key} was refused: {message}");
                rec.event(net, true, "NadRefused", text.clone()).await;
                Ok((None, Err(Verdict::not_ready("NadRefused", text))))
            }
            None => Err(Error::api(
                &key,
                format!("applying NetworkAttachmentDefinition {key}"),
                e,
            )),
        },
    }
}

/// The NAD carries what the Network generates: its config and the annotations it sets.
fn matches(found: &NetworkAttachmentDefinition, desired: &NetworkAttachmentDefinition) -> bool {
    let have = found.metadata.annotations.clone().unwrap_or_default();
    found.spec.config == desired.spec.config
        && desired
            .metadata
            .annotations
            .iter()
            .flatten()
            .all(|(k, v)| have.get(k) == Some(v))
}

/// Writes the status when it differs (so a reconcile caused by its own status write writes nothing).
async fn write_status(
    nets: &Api<Network>,
    net: &Network,
    nad: Option<String>,
    subnet: Option<String>,
    verdict: &Verdict,
) -> Result<(), Error> {
    let new = status::status(net, nad, subnet, verdict, Timestamp::now());
    if net.status.as_ref() == Some(&new) {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": Network::api_version(&()),
        "kind": Network::kind(&()),
        "metadata": {"name": net.name_any()},
        "status": new,
    });
    nets.patch_status(
        &net.name_any(),
        &PatchParams::apply(MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map(|_| ())
    .map_err(|e| Error::api(&net.key(), "writing the status", e))
}
