//! The CNI operations, dispatched by `rscni-plugin`.
//!
//! Why rscni-plugin: it is the maintained Rust envelope for CNI 0.3.0-1.1.0 — it reads the `CNI_*`
//! variables and stdin, negotiates the version (code 1 for 0.1/0.2 or CHECK below 0.4), answers VERSION,
//! prints ADD results in the layout of the config's version and errors as CNI error JSON — and it is
//! synchronous (its async variant is an opt-in feature), so it adds no runtime. One divergence: its error
//! JSON reports the plugin's own `cniVersion` (1.1.0) rather than the config's; runtimes read only
//! `code`/`msg`/`details` from it.

use rscni_plugin::cni::{Cni, Plugin};
use rscni_plugin::error::Error;
use rscni_plugin::types::{Args, CNIResult};

use super::apiclient::ApiClient;
use super::cni_args::{CniArgs, PodRef};
use super::error::CniError;
use super::kubeconfig::ApiAccess;
use super::netconf::IpamConf;
use super::render::{Target, render};
use super::verify;
use crate::annotations::keys::{ALLOCATED, provider_key};
use crate::annotations::{ParsedResult, read_result};

const ABOUT: &str = concat!(
    "nadipam ",
    env!("CARGO_PKG_VERSION"),
    ": CNI IPAM plugin that reports the addresses nadipam's admission webhook allocated (read from the Pod's annotations); it never allocates.\nAlso answers as ipam type \"kube-ovn\"."
);

/// The plugin. Stateless: every invocation is one process.
pub(crate) struct Nadipam;

impl Cni for Nadipam {
    fn add(&self, args: Args) -> Result<CNIResult, Error> {
        add(&args).map_err(report)
    }

    /// Release is the controller's job (leases are owned by the Pod), so DEL has nothing to undo and
    /// succeeds every time, without an API call.
    fn del(&self, _args: Args) -> Result<(), Error> {
        Ok(())
    }

    fn check(&self, args: Args) -> Result<(), Error> {
        check(&args).map_err(report)
    }

    fn status(&self, args: Args) -> Result<(), Error> {
        status(&args).map_err(|e| report(CniError::NotAvailable(Box::new(e))))
    }

    /// Nothing is held on the node.
    fn gc(&self, _args: Args) -> Result<(), Error> {
        Ok(())
    }
}

/// Runs one invocation from the process environment and stdin; returns the exit code.
pub fn run() -> i32 {
    match Plugin::default().msg(ABOUT).run(&Nadipam) {
        Ok(()) => 0,
        Err(_) => 1,
    }
}

/// Also on stderr: a person running cnitool sees it without decoding the JSON.
fn report(e: CniError) -> Error {
    eprintln!("nadipam: error {}: {e}", e.code());
    e.into()
}

/// What ADD and CHECK both need: the config, the Pod and its allocation for this interface.
struct Lookup {
    conf: IpamConf,
    cni_args: CniArgs,
    pod: PodRef,
    parsed: ParsedResult,
    ifname: String,
}

fn lookup(args: &Args) -> Result<Lookup, CniError> {
    let conf = IpamConf::parse(args.config())?;
    let cni_args = CniArgs::parse(args.args().unwrap_or(""))?;
    let pod = cni_args.pod()?;
    let ifname = args
        .ifname()
        .map(ToString::to_string)
        .ok_or_else(|| CniError::env("CNI_IFNAME", "is missing"))?;
    let client = ApiClient::new(&ApiAccess::load(&conf.kubeconfig)?)?;
    let meta = client.get_pod(&pod)?;
    if let Some(expected) = &pod.uid
        && *expected != meta.uid
    {
        return Err(CniError::UidMismatch {
            pod: pod.to_string(),
            expected: expected.clone(),
            found: meta.uid,
        });
    }
    let parsed = read_result(&meta.annotations, &conf.provider, Some(&ifname))
        .map_err(|source| CniError::BadAllocation {
            pod: pod.to_string(),
            source,
        })?
        .ok_or_else(|| CniError::NoAllocation {
            pod: pod.to_string(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            provider: conf.provider.clone(),
            key: provider_key(&conf.provider, ALLOCATED),
        })?;
    Ok(Lookup {
        conf,
        cni_args,
        pod,
        parsed,
        ifname,
    })
}

fn add(args: &Args) -> Result<CNIResult, CniError> {
    let l = lookup(args)?;
    let pod = l.pod.to_string();
    verify::requested(&l.conf, &l.cni_args, &l.parsed, &pod)?;
    let netns = args.netns().and_then(|p| p.to_str());
    render(
        &l.parsed,
        &l.conf,
        Target {
            ifname: &l.ifname,
            netns,
            pod: &pod,
        },
    )
}

fn check(args: &Args) -> Result<(), CniError> {
    let l = lookup(args)?;
    verify::prev_result(
        args.config().prev_result.as_ref(),
        &l.parsed,
        &l.ifname,
        &l.pod.to_string(),
    )
}

/// Ready when the kubeconfig is usable and the API server answers with it.
fn status(args: &Args) -> Result<(), CniError> {
    let path = IpamConf::kubeconfig_only(args.config());
    ApiClient::new(&ApiAccess::load(&path)?)?.probe()
}
