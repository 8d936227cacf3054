//! The admission webhook: Pod mutation (allocation) and validation of everything users apply.
//!
//! - [`pod`]: Pod CREATE → allocation plan → IPLease creates → JSON patch.
//! - [`nad`], [`subnet`], [`ippool`], [`workload`]: validating webhooks.
//! - [`config`]: the webhook configurations to register.
//! - [`server`]: HTTPS, health, readiness, metrics (certificates and who may call: [`crate::certs`]).

pub mod config;
mod denial;
pub(crate) mod ippool;
pub(crate) mod nad;
pub(crate) mod pod;
pub mod register;
mod resolve;
mod respond;
pub(crate) mod rules;
pub(crate) mod scope;
mod server;
pub(crate) mod subnet;
mod validate_util;
pub(crate) mod workload;

pub use denial::Denial;
pub use rules::PoolSubnetError;
pub use server::{paths, router, serve, serve_metrics};
