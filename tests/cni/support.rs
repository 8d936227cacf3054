//! Helpers of the CNI tests: network namespaces and links that are always removed (Drop guards, so also
//! when a test panics), a CNI_PATH with the reference plugins and our binary, cnitool, and `ip -j` readers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::Cluster;

/// Runs `ip ARGS`, panicking with its stderr on failure; returns stdout.
pub fn ip(args: &[&str]) -> String {
    let out = Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running ip {args:?} (is iproute2 installed?): {e}"));
    assert!(
        out.status.success(),
        "ip {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn suffix() -> String {
    format!("{:08x}", rand::random::<u32>())
}

/// A network namespace plus host links created for it; all deleted on drop.
pub struct Sandbox {
    pub netns: String,
    links: Vec<String>,
}

impl Sandbox {
    /// `ip netns add nadipam-t-<rand>`, with IPv6 duplicate address detection off inside, so dual-stack
    /// ADDs need not wait for DAD to settle.
    pub fn new() -> Sandbox {
        let netns = format!("nadipam-t-{}", suffix());
        ip(&["netns", "add", &netns]);
        let sandbox = Sandbox {
            netns,
            links: Vec::new(),
        };
        for conf in ["all", "default"] {
            let path = format!("/proc/sys/net/ipv6/conf/{conf}/accept_dad");
            ip(&[
                "netns",
                "exec",
                &sandbox.netns,
                "sh",
                "-c",
                &format!("echo 0 > {path}"),
            ]);
        }
        sandbox
    }

    pub fn path(&self) -> String {
        format!("/var/run/netns/{}", self.netns)
    }

    /// A master link in the host namespace for macvlan, up: a `dummy` link, or where the kernel has no
    /// dummy driver (e.g. minimal VM kernels) one end of a `veth` pair (deleting it deletes its peer).
    pub fn master(&mut self) -> String {
        let name = format!("nd{}", suffix());
        let dummy = Command::new("ip")
            .args(["link", "add", &name, "type", "dummy"])
            .stderr(Stdio::null())
            .status()
            .expect("running ip");
        if !dummy.success() {
            let peer = format!("{name}p");
            ip(&["link", "add", &name, "type", "veth", "peer", "name", &peer]);
            ip(&["link", "set", &peer, "up"]);
        }
        self.links.push(name.clone());
        ip(&["link", "set", &name, "up"]);
        name
    }

    /// A host link some plugin will create (e.g. a bridge), to be deleted with the sandbox.
    pub fn own_link(&mut self, prefix: &str) -> String {
        let name = format!("{prefix}{}", suffix());
        self.links.push(name.clone());
        name
    }

    /// `ip -j addr show dev IFNAME` in the namespace, or `None` when the link does not exist.
    pub fn link(&self, ifname: &str) -> Option<Value> {
        let out = Command::new("ip")
            .args(["-j", "-n", &self.netns, "addr", "show", "dev", ifname])
            .output()
            .expect("running ip");
        if !out.status.success() {
            return None;
        }
        let v: Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
        v.as_array().and_then(|a| a.first()).cloned()
    }

    /// The interface's global addresses as `addr/prefix`.
    pub fn addrs(&self, ifname: &str) -> Vec<String> {
        let link = self
            .link(ifname)
            .unwrap_or_else(|| panic!("{ifname} not found in netns {}", self.netns));
        link["addr_info"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect()
    }

    pub fn mac(&self, ifname: &str) -> String {
        let link = self
            .link(ifname)
            .unwrap_or_else(|| panic!("{ifname} not found in netns {}", self.netns));
        link["address"].as_str().unwrap_or("").to_string()
    }

    /// `(dst, gateway)` of the routes through `ifname` of one family (`-4` / `-6`).
    pub fn routes(&self, family: &str, ifname: &str) -> Vec<(String, String)> {
        let out = ip(&[
            "-j",
            family,
            "-n",
            &self.netns,
            "route",
            "show",
            "dev",
            ifname,
        ]);
        let v: Value = serde_json::from_str(&out).expect("ip -j route output");
        v.as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["dst"].as_str().unwrap_or("").to_string(),
                    r["gateway"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for link in &self.links {
            let _ = Command::new("ip")
                .args(["link", "del", link])
                .stderr(Stdio::null())
                .status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// A CNI_PATH (macvlan, bridge, nadipam and its `kube-ovn` alias) and a NETCONFPATH for cnitool.
pub struct CniDirs {
    pub plugins: tempfile::TempDir,
    pub confs: tempfile::TempDir,
    cnitool: PathBuf,
}

impl CniDirs {
    pub fn new(cluster: &Cluster) -> CniDirs {
        let plugins = tempfile::tempdir().expect("tempdir");
        for p in ["macvlan", "bridge"] {
            let src = cluster.bin(p);
            assert!(src.exists(), "{} missing: run e2e/build.sh", src.display());
            std::os::unix::fs::symlink(&src, plugins.path().join(p)).expect("symlink plugin");
        }
        let ours = Path::new(env!("CARGO_BIN_EXE_nadipam"));
        for name in ["nadipam", "kube-ovn"] {
            std::os::unix::fs::symlink(ours, plugins.path().join(name)).expect("symlink nadipam");
        }
        CniDirs {
            plugins,
            confs: tempfile::tempdir().expect("tempdir"),
            cnitool: cluster.bin("cnitool"),
        }
    }

    /// Writes `<name>.conflist`.
    pub fn conflist(&self, name: &str, conf: &Value) {
        std::fs::write(
            self.confs.path().join(format!("{name}.conflist")),
            serde_json::to_vec_pretty(conf).expect("json"),
        )
        .expect("writing conflist");
    }

    /// `cnitool VERB NET NETNS` with CNI_IFNAME, CNI_ARGS and (optional) CAP_ARGS.
    pub fn cnitool(
        &self,
        verb: &str,
        net: &str,
        sandbox: &Sandbox,
        ifname: &str,
        cni_args: &str,
        cap_args: Option<&Value>,
    ) -> Output {
        let mut cmd = Command::new(&self.cnitool);
        cmd.args([verb, net, &sandbox.path()])
            .env("NETCONFPATH", self.confs.path())
            .env("CNI_PATH", self.plugins.path())
            .env("CNI_IFNAME", ifname)
            .env("CNI_ARGS", cni_args);
        match cap_args {
            Some(c) => cmd.env("CAP_ARGS", c.to_string()),
            None => cmd.env_remove("CAP_ARGS"),
        };
        cmd.output().expect("running cnitool")
    }
}

/// What one direct run of the plugin produced.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// Asserts a CNI error: non-zero exit, the code, and text in `details`; returns the error JSON.
    pub fn error(&self, code: u64, details: &[&str]) -> Value {
        assert_ne!(self.code, Some(0), "expected an error: {self:?}");
        let v = self.json();
        assert_eq!(v["code"], code, "{self:?}");
        assert!(v["msg"].as_str().is_some_and(|m| !m.is_empty()), "{self:?}");
        let text = v["details"].as_str().unwrap_or("");
        for d in details {
            assert!(text.contains(d), "details lack {d:?}: {text}");
        }
        v
    }
}

/// Runs our binary directly: `CNI_COMMAND=command`, a container id, netns, CNI_IFNAME=net1 and
/// CNI_PATH, then `env` (an empty value removes the variable), with `stdin`.
pub fn nadipam(command: &str, stdin: &str, env: &[(&str, &str)]) -> Run {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nadipam"));
    for var in [
        "CNI_COMMAND",
        "CNI_CONTAINERID",
        "CNI_NETNS",
        "CNI_IFNAME",
        "CNI_ARGS",
        "CNI_PATH",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", "nadipam-test")
        .env("CNI_NETNS", "/var/run/netns/nadipam-test")
        .env("CNI_IFNAME", "net1")
        .env("CNI_PATH", "/opt/cni/bin");
    for (k, v) in env {
        if v.is_empty() {
            cmd.env_remove(k);
        } else {
            cmd.env(k, v);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning nadipam");
    // A plugin may answer (e.g. a CNI_ARGS error) before reading its config; a closed pipe is then expected.
    match child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
    {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Err(e) => panic!("writing stdin: {e}"),
    }
    let out = child.wait_with_output().expect("waiting for nadipam");
    Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
