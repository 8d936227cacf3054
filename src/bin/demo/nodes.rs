//! The guides' Pods on the test bed's real nodes: Running, their addresses on their interfaces, a ping.

use std::process::Command;

use crate::bed::{Bed, run};
use crate::{Error, step};

/// Whether this process may start the test bed's nodes (kubelet, containerd, bridges need root).
pub(crate) fn is_root() -> bool {
    run(Command::new("id").arg("-u"))
        .map(|u| u.trim() == "0")
        .unwrap_or(false)
}

/// On the nodes: the guide's Pods Running, `ip addr show net1` inside `samplepod` and `static-ip`, and a ping
/// from one to the other across nodes over the underlay.
pub(crate) async fn show_on_nodes(bed: &Bed) -> Result<(), Error> {
    step("on the nodes: the Pods run, with nadipam's addresses and MACs on their interfaces");
    for pod in ["samplepod", "static-ip", "samplepod-macvlan"] {
        let wait = bed.kubectl_out(&[
            "-n",
            "default",
            "wait",
            "--for=condition=Ready",
            "--timeout=120s",
            &format!("pod/{pod}"),
        ]);
        if let Err(e) = wait {
            let describe = bed
                .kubectl_out(&["-n", "default", "describe", "pod", pod])
                .unwrap_or_default();
            return Err(format!("{pod} did not become Ready: {e}\n{describe}").into());
        }
    }
    let shell = |line: &str, args: &[&str]| -> Result<(), Error> {
        println!("$ {line}");
        print!("{}", bed.kubectl_out(args)?);
        Ok(())
    };
    shell(
        "kubectl get pods -o wide",
        &["-n", "default", "get", "pods", "-o", "wide"],
    )?;
    for pod in ["samplepod", "static-ip"] {
        shell(
            &format!("kubectl exec {pod} -- ip addr show net1"),
            &[
                "-n", "default", "exec", pod, "--", "ip", "addr", "show", "net1",
            ],
        )?;
    }
    shell(
        "kubectl exec samplepod-macvlan -- ip addr show eth0   # macvlan as the primary interface",
        &[
            "-n",
            "default",
            "exec",
            "samplepod-macvlan",
            "--",
            "ip",
            "addr",
            "show",
            "eth0",
        ],
    )?;
    shell(
        "kubectl exec samplepod -- ping -c 3 -I net1 172.17.0.100   # node-1 -> node-2 over ul0",
        &[
            "-n",
            "default",
            "exec",
            "samplepod",
            "--",
            "ping",
            "-c",
            "3",
            "-W",
            "2",
            "-w",
            "10",
            "-I",
            "net1",
            "172.17.0.100",
        ],
    )?;
    let waiting = bed.kubectl_out(&[
        "-n",
        "default",
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=custom-routes-attach,reason=FailedCreatePodSandBox",
        "-o",
        "jsonpath={.items[-1:].message}",
    ])?;
    println!(
        "custom-routes-attach (a Kube-OVN-typed attachment) has its address, and waits for Kube-OVN's own CNI \
         plugin on the node:\n  {}",
        waiting.trim()
    );
    Ok(())
}
