//! The nadipam-server replicas of the chaos run: separate processes on fixed ports of 127.0.0.1, all against
//! the same apiserver, none registering webhooks itself (the run registers one configuration whose URL is the
//! proxy in front of them). A replica is SIGKILLed and started again on the same port; every start appends to
//! the same log file. Dropping a replica kills it, and each one also exits when the test process goes away
//! (it watches its standard input).

use std::fs::OpenOptions;
use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::ChaosError;

/// What every replica is started with.
#[derive(Clone, Debug)]
pub struct Flags {
    pub kubeconfig: PathBuf,
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
    /// Namespace of the leader Lease.
    pub namespace: String,
    pub reclaim_after: Duration,
    pub leader_lease: Duration,
    pub logs: PathBuf,
    /// Names this run's log files (`chaos-<run>-replica-<i>.log`).
    pub run: String,
}

pub struct Replica {
    pub index: usize,
    pub port: u16,
    pub log: PathBuf,
    /// How many times this replica was started.
    pub starts: u32,
    flags: Flags,
    child: Option<Child>,
}

/// A port nothing listens on now (the OS picks it; the replica binds it a moment later).
fn free_port() -> Result<u16, ChaosError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ChaosError::Process(format!("finding a free port: {e}")))
}

impl Replica {
    pub fn new(index: usize, flags: &Flags) -> Result<Replica, ChaosError> {
        let port = free_port()?;
        Ok(Replica {
            index,
            port,
            log: flags
                .logs
                .join(format!("chaos-{}-replica-{index}.log", flags.run)),
            starts: 0,
            flags: flags.clone(),
            child: None,
        })
    }

    pub fn identity(&self) -> String {
        format!("chaos-{}", self.index)
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts the process (a running one is killed first).
    pub fn start(&mut self) -> Result<(), ChaosError> {
        self.kill();
        let f = &self.flags;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .map_err(|e| ChaosError::Process(format!("opening {}: {e}", self.log.display())))?;
        self.starts += 1;
        writeln!(
            log,
            "--- chaos: start #{} of {}",
            self.starts,
            self.identity()
        )
        .map_err(|e| ChaosError::Process(format!("writing {}: {e}", self.log.display())))?;
        let child = Command::new(env!("CARGO_BIN_EXE_nadipam-server"))
            .env("KUBECONFIG", &f.kubeconfig)
            .env("RUST_LOG", "info,kube=warn")
            .env("NO_COLOR", "1")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .arg("--tls-cert")
            .arg(&f.tls_cert)
            .arg("--tls-key")
            .arg(&f.tls_key)
            .args(["--namespace", &f.namespace])
            .args(["--identity", &self.identity()])
            .args(["--reclaim-after", &f.reclaim_after.as_secs().to_string()])
            .args([
                "--leader-lease-seconds",
                &f.leader_lease.as_secs().to_string(),
            ])
            .arg("--exit-on-stdin-eof")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| ChaosError::Process(format!("starting nadipam-server: {e}")))?;
        self.child = Some(child);
        Ok(())
    }

    /// SIGKILL (no graceful shutdown: the leader Lease is not released, requests are cut off) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Whether the process runs; one that exited by itself is reaped and reported with its status.
    pub fn check(&mut self) -> Result<bool, ChaosError> {
        let Some(child) = self.child.as_mut() else {
            return Ok(false);
        };
        match child.try_wait() {
            Ok(None) => Ok(true),
            Ok(Some(status)) => {
                self.child = None;
                Err(ChaosError::Process(format!(
                    "{} exited by itself ({status}); log {}",
                    self.identity(),
                    self.log.display()
                )))
            }
            Err(e) => Err(ChaosError::Process(format!(
                "waiting for {}: {e}",
                self.identity()
            ))),
        }
    }

    /// The last lines of the log, for failure messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}
