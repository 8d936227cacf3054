//! `nadipam`: the CNI IPAM plugin. Install it in the CNI bin directory (also as `kube-ovn` for
//! Kube-OVN-style NADs; it behaves the same under either name). See docs/cni.md.

fn main() {
    std::process::exit(nadipam::cni::run());
}
