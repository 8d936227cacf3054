//! One Pod's attachment on a real interface, through the macvlan plugin and nadipam's CNI plugin.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::bed::{Bed, run};
use crate::{Error, step};

/// Runs `samplepod`'s attachment on a real interface: a network namespace, a dummy master link, the macvlan
/// plugin with `ipam.type: nadipam`, through cnitool, as a kubelet and Multus would. Needs root.
pub(crate) fn attach_samplepod(bed: &Bed, cni: &Path) -> Result<(), Error> {
    step(
        "on a node: macvlan + the nadipam IPAM plugin put samplepod's address on a real interface",
    );
    let root = run(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false);
    if !root || Command::new("ip").arg("-V").output().is_err() {
        println!("(needs root and iproute2 to create a network namespace; not shown)");
        return Ok(());
    }
    let netns = "nadipam-demo";
    let master = "nddemo0";
    let work = std::env::temp_dir().join("nadipam-demo-cni");
    let quiet = |args: &[&str]| {
        let _ = Command::new("ip")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    quiet(&["netns", "del", netns]);
    quiet(&["link", "del", master]);
    let result = (|| -> Result<(), Error> {
        run(Command::new("ip").args(["netns", "add", netns]))?;
        if run(Command::new("ip").args(["link", "add", master, "type", "dummy"])).is_err() {
            run(Command::new("ip").args([
                "link",
                "add",
                master,
                "type",
                "veth",
                "peer",
                "name",
                &format!("{master}p"),
            ]))?;
        }
        run(Command::new("ip").args(["link", "set", master, "up"]))?;
        let plugins = work.join("bin");
        let confs = work.join("net.d");
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&plugins)?;
        std::fs::create_dir_all(&confs)?;
        std::os::unix::fs::symlink(bed.bin.join("macvlan"), plugins.join("macvlan"))?;
        std::os::unix::fs::symlink(cni, plugins.join("nadipam"))?;
        let conf = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "macvlan",
            "plugins": [{
                "type": "macvlan", "master": master, "mode": "bridge",
                "capabilities": {"mac": true},
                "ipam": {"type": "nadipam", "provider": "macvlan.default",
                         "kubeconfig": bed.kubeconfig}
            }]
        });
        std::fs::write(
            confs.join("macvlan.conflist"),
            serde_json::to_vec_pretty(&conf)?,
        )?;
        let annotations: BTreeMap<String, String> = serde_json::from_str(&bed.kubectl_out(&[
            "-n",
            "default",
            "get",
            "pod",
            "samplepod",
            "-o",
            "jsonpath={.metadata.annotations}",
        ])?)?;
        let mac = annotations
            .get("macvlan.default.kubernetes.io/mac_address")
            .cloned()
            .unwrap_or_default();
        let cnitool = |verb: &str| {
            run(Command::new(bed.bin.join("cnitool"))
                .args([verb, "macvlan", &format!("/var/run/netns/{netns}")])
                .env("NETCONFPATH", &confs)
                .env("CNI_PATH", &plugins)
                .env("CNI_IFNAME", "net1")
                .env(
                    "CNI_ARGS",
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=samplepod",
                )
                .env("CAP_ARGS", serde_json::json!({ "mac": mac }).to_string()))
        };
        println!(
            "$ cnitool add macvlan /var/run/netns/{netns}   # CNI_IFNAME=net1, pod default/samplepod"
        );
        let added: serde_json::Value = serde_json::from_str(&cnitool("add")?)?;
        println!("{}", serde_json::to_string(&added)?);
        println!("$ ip -n {netns} addr show net1");
        print!(
            "{}",
            run(Command::new("ip").args(["-n", netns, "addr", "show", "net1"]))?
        );
        cnitool("del")?;
        Ok(())
    })();
    quiet(&["netns", "del", netns]);
    quiet(&["link", "del", master]);
    let _ = std::fs::remove_dir_all(&work);
    result
}
