//! The allocation core: pure, synchronous, no Kubernetes and no I/O.
//!
//! Everything the webhook decides about addresses is decided here, on plain values, so it can be tested
//! exhaustively (unit and property tests) and benchmarked without a cluster.
//!
//! - [`parse_entry`] / [`IpRange`]: range entries (`a..b`, `a-b`, CIDR, address).
//! - [`SubnetLayout`]: a Subnet's CIDRs, gateways and excludes, validated.
//! - [`Allocator`]: one subnet's free set: reserve, pick (random or lowest), pick within ranges, release,
//!   dual-stack pairs; [`Allocator::select_from_list`] and [`statefulset_ordinal`] for ordered lists.
//! - [`MacSet`]: unique MACs per subnet.
//! - [`AllocError`]: denials, worded for admission responses.

mod allocator;
mod dense;
mod error;
mod family;
mod intervals;
mod layout;
mod mac;
mod macset;
mod pair;
mod pool;
mod range;
mod space;
mod sparse;
mod strategy;

#[cfg(test)]
mod props;

pub use allocator::{Allocator, Counts};
pub use error::AllocError;
pub use family::{Family, Protocol, ProtocolError};
pub use layout::{LayoutError, LayoutProblem, SubnetLayout};
pub use mac::{Mac, MacError};
pub use macset::MacSet;
pub use pair::IpPair;
pub use pool::statefulset_ordinal;
pub use range::{IpRange, RangeError, RangeProblem, parse_entries, parse_entry};
pub use strategy::Strategy;
