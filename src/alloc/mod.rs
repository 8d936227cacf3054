//! The allocation core: pure, synchronous, no Kubernetes and no I/O.
//!
//! Everything the webhook decides about addresses is decided here, on plain values, so it can be tested
//! exhaustively (unit and property tests) and benchmarked without a cluster.

mod mac;
mod pair;

pub use mac::{Mac, MacError};
pub use pair::IpPair;
