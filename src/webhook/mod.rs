//! The admission webhook: Pod mutation (allocation) and validation of everything users apply.
//!
//! - [`pod`]: Pod CREATE → allocation plan → IPLease creates → JSON patch.
//! - [`nad`], [`subnet`], [`ippool`], [`network`], [`workload`]: validating webhooks.
//! - [`resolve`]: one attachment → NAD → provider → pools → Subnet, for Pod admission and workloads alike.
//! - [`rules`]: the Subnet and IPPool rules; [`pool_subnet`]: the one Subnet an IPPool belongs to.
//! - [`respond`]: outcomes as AdmissionResponses ([`codes`]: their HTTP codes); [`addresses`], [`in_use`],
//!   [`names`]: the validators' helpers.
//! - [`config`]: the webhook configurations to register.
//! - [`server`]: HTTPS, health, readiness, metrics (certificates and who may call: [`crate::certs`]).

mod addresses;
mod codes;
pub mod config;
mod default_pool;
mod denial;
mod in_use;
pub(crate) mod ippool;
mod ippool_fields;
pub(crate) mod nad;
mod names;
mod network;
mod node_scope;
pub(crate) mod pod;
pub(crate) mod pool_subnet;
pub mod register;
mod resolve;
mod respond;
pub(crate) mod rules;
pub(crate) mod scope;
mod server;
pub(crate) mod subnet;
pub(crate) mod workload;

pub use denial::Denial;
pub use pool_subnet::PoolSubnetError;
pub use server::{paths, router, serve, serve_metrics};
