//! The node-side CNI IPAM plugin `nadipam`: it never allocates. The admission webhook already wrote the
//! Pod's addresses as annotations; ADD reads them with one GET and prints them as a CNI result.
//!
//! - `netconf`: the `ipam` section (`provider`, `kubeconfig`, `routes`, `dns`) and `runtimeConfig`.
//! - `cni_args`: `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, `K8S_POD_UID`, Multus' `MAC`/`IP`).
//! - `kubeconfig` and `apiclient`: the one blocking API round trip, with a bounded retry.
//! - `render`: the allocation as a CNI result; `verify`: request and CHECK consistency.
//! - `plugin`: the operations (ADD, DEL, CHECK, STATUS, GC, VERSION) and [`run`], the binary's body.
//! - `error`: `CniError`, each variant with its CNI error code.
//!
//! See docs/cni.md for the configuration, the result shapes and the error table.

mod apiclient;
mod cni_args;
mod error;
pub(crate) mod kubeconfig;
mod netconf;
mod plugin;
mod render;
mod verify;

pub use netconf::DEFAULT_KUBECONFIG;
pub use plugin::run;
