//! Writes nadipam's generated manifests as YAML:
//!
//! - `crdgen --out DIR` writes one file per CRD (what manifests/crds/ holds); `crdgen` alone prints them all
//!   to stdout as one multi-document YAML stream.
//! - `crdgen webhooks --namespace NS` prints the Mutating- and ValidatingWebhookConfiguration the server
//!   registers (and the Helm chart must render; tests/install.rs compares the two).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nadipam::webhook::config::{Endpoint, Registration};

#[derive(Parser)]
#[command(
    about = "Generate nadipam's CustomResourceDefinitions (nadipam.io/v1) and webhook configurations as YAML"
)]
struct Args {
    /// Directory to write subnets.nadipam.io.yaml, ippools.nadipam.io.yaml, ipleases.nadipam.io.yaml and networks.nadipam.io.yaml into
    /// (created if missing). Without it, all CRDs go to stdout.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Print the webhook configurations for a Service endpoint (or a URL).
    Webhooks {
        /// Namespace of nadipam's Service (also excluded from Pod mutation).
        #[arg(long, default_value = "nadipam-system")]
        namespace: String,
        #[arg(long, default_value = "nadipam-webhook")]
        service: String,
        #[arg(long, default_value_t = 443)]
        port: i32,
        /// Reach the webhook at this URL base instead of the Service.
        #[arg(long)]
        url: Option<String>,
        /// Suffix of the configurations' names.
        #[arg(long, default_value = "")]
        suffix: String,
        /// More namespaces whose Pods are never sent to the webhook.
        #[arg(long = "exclude-namespace")]
        exclude: Vec<String>,
        #[arg(long, default_value_t = 10)]
        timeout_seconds: i32,
        /// Send Pods without Multus annotations too, as the server's --default-network needs.
        #[arg(long)]
        default_network: bool,
    },
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        None => crds(&args),
        Some(Command::Webhooks {
            namespace,
            service,
            port,
            url,
            suffix,
            exclude,
            timeout_seconds,
            default_network,
        }) => {
            let mut exclude_namespaces = vec![namespace.clone()];
            exclude_namespaces.extend(exclude.iter().cloned());
            let reg = Registration {
                endpoint: match url {
                    Some(u) => Endpoint::Url(u.clone()),
                    None => Endpoint::Service {
                        namespace: namespace.clone(),
                        name: service.clone(),
                        port: *port,
                    },
                },
                ca_bundle: Vec::new(),
                exclude_namespaces,
                suffix: suffix.clone(),
                timeout_seconds: *timeout_seconds,
                default_network: *default_network,
            };
            webhooks(&reg)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("crdgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn webhooks(reg: &Registration) -> Result<(), String> {
    let with_kind = |kind: &str, v: serde_json::Value| {
        let mut obj =
            serde_json::json!({"apiVersion": "admissionregistration.k8s.io/v1", "kind": kind});
        if let (Some(o), serde_json::Value::Object(rest)) = (obj.as_object_mut(), v) {
            o.extend(rest);
        }
        nadipam::api::manifest_yaml(&obj).map_err(|e| format!("cannot render {kind} as YAML: {e}"))
    };
    let m = serde_json::to_value(reg.mutating()).map_err(|e| e.to_string())?;
    let v = serde_json::to_value(reg.validating()).map_err(|e| e.to_string())?;
    print!(
        "{}---\n{}",
        with_kind("MutatingWebhookConfiguration", m)?,
        with_kind("ValidatingWebhookConfiguration", v)?
    );
    Ok(())
}

fn crds(args: &Args) -> Result<(), String> {
    let mut docs = Vec::new();
    for (file, crd) in nadipam::api::crds() {
        let yaml = nadipam::api::crd_yaml(&crd)
            .map_err(|e| format!("cannot render {file} as YAML: {e}"))?;
        docs.push((file, yaml));
    }
    let Some(dir) = &args.out else {
        let all: Vec<String> = docs.into_iter().map(|(_, y)| y).collect();
        print!("{}", all.join("---\n"));
        return Ok(());
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create --out directory {}: {e}", dir.display()))?;
    for (file, yaml) in docs {
        let path = dir.join(file);
        std::fs::write(&path, yaml).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}
