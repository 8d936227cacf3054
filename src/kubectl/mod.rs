//! `kubectl nadipam`: the kubectl plugin (binary `kubectl-nadipam`) that answers "who holds this address" and
//! the questions around it from the cluster's IPLeases, Subnets, IPPools and Pods. Read-only. See
//! docs/kubectl-plugin.md.
//!
//! - `cli.rs`: the flags and subcommands; `connect.rs`: the kubeconfig; `fetch.rs`: paged reads.
//! - one file per subcommand: `who.rs`, `pod.rs`, `usage.rs`, `orphans.rs`, `completion.rs`; each reads,
//!   then builds its rows with pure functions (unit-tested without a cluster).
//! - `table.rs`, `output.rs`, `age.rs`: kubectl's table, `-o json|yaml`, kubectl's ages.
//! - `error.rs`: the errors and the exit codes.

mod age;
mod cli;
mod completion;
mod connect;
mod error;
mod fetch;
mod orphans;
mod output;
mod pod;
pub(crate) mod table;
mod usage;
mod who;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use k8s_openapi::jiff::Timestamp;

use cli::{Cli, Command, Format};
use error::Error;

/// What a subcommand prints and how it exits.
pub(crate) struct Outcome {
    stdout: String,
    /// Lines for stderr: why the answer is empty, warnings.
    notes: Vec<String>,
    code: u8,
}

impl Outcome {
    fn print(stdout: String) -> Outcome {
        Outcome {
            stdout,
            notes: Vec::new(),
            code: 0,
        }
    }
}

/// Runs the plugin with the process's arguments; the exit code is documented in docs/kubectl-plugin.md.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // --help and --version come this way too, with code 0.
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(error::EXIT_USAGE));
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(outcome) => {
            let mut out = std::io::stdout().lock();
            match out
                .write_all(outcome.stdout.as_bytes())
                .and_then(|_| out.flush())
            {
                // A closed pipe (`| head`) is the reader's choice, not a failure.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    eprintln!("error: {}", Error::Output(e));
                    return ExitCode::from(error::EXIT_LOCAL);
                }
                _ => {}
            }
            for note in &outcome.notes {
                eprintln!("{note}");
            }
            ExitCode::from(outcome.code)
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<Outcome, Error> {
    let conn = &cli.conn;
    let output = conn.output.unwrap_or_default();
    let now = conn.now.unwrap_or_else(Timestamp::now);
    if let Command::Completion(args) = &cli.command {
        return Ok(Outcome::print(completion::script(args.shell)));
    }
    // kube's TLS uses rustls with ring; one provider for the process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let session = connect::connect(conn).await?;
    let client = &session.client;
    let namespace = (!conn.all_namespaces).then_some(session.namespace.as_str());
    match &cli.command {
        Command::Who(args) => who::run(client, args, output, now).await,
        Command::Pod(args) => pod::run(client, &session.namespace, args, output).await,
        Command::Usage(args) => usage::run(client, args, output).await,
        Command::Orphans(args) => orphans::run(client, namespace, args, output, now).await,
        Command::Adopt(args) => {
            let mut args = args.clone();
            args.output = migrate_format(output);
            let mut out = Vec::new();
            let summary = crate::migrate::run_adopt(client, &args, &mut out).await?;
            Ok(migrated(out, &summary))
        }
        Command::Import(args) => {
            let mut args = args.clone();
            args.output = migrate_format(output);
            let mut out = Vec::new();
            let summary = crate::migrate::run_import(client, &args, &mut out).await?;
            Ok(migrated(out, &summary))
        }
        Command::Completion(args) => Ok(Outcome::print(completion::script(args.shell))),
    }
}

/// The global `-o` as `adopt`/`import` take it: json or yaml, else their table.
fn migrate_format(output: Format) -> Option<crate::migrate::OutputFormat> {
    match output {
        Format::Json => Some(crate::migrate::OutputFormat::Json),
        Format::Yaml => Some(crate::migrate::OutputFormat::Yaml),
        Format::Table | Format::Wide => None,
    }
}

/// A migration's report, ending with [`error::EXIT_CONFLICTS`] when it lists conflicts.
fn migrated(out: Vec<u8>, summary: &crate::migrate::Summary) -> Outcome {
    let mut outcome = Outcome::print(String::from_utf8_lossy(&out).into_owned());
    if summary.exit_code() != 0 {
        outcome.code = error::EXIT_CONFLICTS;
        outcome
            .notes
            .push("the plan has conflicts (see above); nothing was written for them".to_string());
    }
    outcome
}
