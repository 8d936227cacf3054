//! Why an address or MAC cannot be given to a Pod. The messages are returned verbatim in admission denials,
//! so each names the address, the subnet and the reason in words a user can act on.

use std::net::IpAddr;

use super::family::Family;
use super::mac::Mac;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    #[error("{ip} is outside subnet {subnet}")]
    Outside { ip: IpAddr, subnet: String },
    #[error("{ip} is the {what} of subnet {subnet} and cannot be assigned to a Pod")]
    NetworkOrBroadcast {
        ip: IpAddr,
        what: &'static str,
        subnet: String,
    },
    #[error("{ip} is the gateway of subnet {subnet} and cannot be assigned to a Pod")]
    Gateway { ip: IpAddr, subnet: String },
    #[error("{ip} is excluded from subnet {subnet} by excludeIps entry {entry}")]
    Excluded {
        ip: IpAddr,
        subnet: String,
        entry: String,
    },
    #[error("{ip} is already in use in subnet {subnet}")]
    InUse { ip: IpAddr, subnet: String },
    #[error("subnet {subnet} has no {family} CIDR")]
    NoFamily { family: Family, subnet: String },
    #[error("subnet {subnet} has no free {family} address ({using} of {total} in use)")]
    Exhausted {
        family: Family,
        subnet: String,
        using: u128,
        total: u128,
    },
    #[error(
        "subnet {subnet} has no free {family} address outside its IPPools ({using} in use, {pooled} kept for the Pods \
         naming an IPPool, of {total}); add addresses to the Subnet or name an IPPool with free addresses"
    )]
    ExhaustedOutsidePools {
        family: Family,
        subnet: String,
        using: u128,
        pooled: u128,
        total: u128,
    },
    #[error("the ranges {ranges} hold no usable {family} address of subnet {subnet}")]
    RangesOutside {
        family: Family,
        ranges: String,
        subnet: String,
    },
    #[error("no free {family} address is left in {ranges} of subnet {subnet}")]
    RangesExhausted {
        family: Family,
        ranges: String,
        subnet: String,
    },
    #[error("the address list is empty; give at least one address (or v4,v6 pair) per Pod")]
    EmptyList,
    #[error(
        "StatefulSet ordinal {ordinal} has no entry in an address list of {size} {} (ordinals 0 to {last}); add entries or scale down",
        entries(*size),
        last = size.saturating_sub(1)
    )]
    OrdinalOutOfRange { ordinal: u32, size: usize },
    #[error("no entry of the address list ({size} {}) is free; the first one: {first}", entries(*size))]
    ListTaken { size: usize, first: Box<AllocError> },
    #[error("MAC {mac} is already in use in subnet {subnet}")]
    MacInUse { mac: Mac, subnet: String },
    #[error("no unused MAC found in subnet {subnet} after {tries} random tries")]
    MacExhausted { subnet: String, tries: u32 },
}

fn entries(n: usize) -> &'static str {
    if n == 1 { "entry" } else { "entries" }
}
