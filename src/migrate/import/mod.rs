//! Import: a peer IPAM's objects, as its users and its controllers write them, converted to nadipam Subnets,
//! IPPools and the IPLeases of the addresses its Pods hold. Pure: peer objects as JSON (the `DynamicObject`s
//! `gather.rs` lists) in, [`Desired`] out; every object that cannot be used becomes a note, never an error.

pub(crate) mod kube_ovn;
pub(crate) mod spiderpool;
pub(crate) mod whereabouts;

use serde_json::Value;

use super::plan::Desired;
use super::plan::{Action, Claim, Item};
use crate::alloc::{Family, IpRange, parse_entry};
use crate::api::{IPPool, IPPoolSpec};

/// A peer object's kind and name, for the report: `kube-ovn IP samplepod.default`.
pub(crate) fn source(peer: &str, kind: &str, obj: &Value) -> String {
    let name = name(obj);
    match str_at(obj, &["metadata", "namespace"]) {
        Some(ns) => format!("{peer} {kind} {ns}/{name}"),
        None => format!("{peer} {kind} {name}"),
    }
}

pub(crate) fn name(obj: &Value) -> String {
    str_at(obj, &["metadata", "name"]).unwrap_or("").to_string()
}

/// The string at `path`, if there is one and it is not empty.
pub(crate) fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    let mut cur = v;
    for p in path {
        cur = cur.get(p)?;
    }
    cur.as_str().map(str::trim).filter(|s| !s.is_empty())
}

/// The strings of the list at `path` (a missing or malformed list is empty; non-strings are left out).
pub(crate) fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    let mut cur = v;
    for p in path {
        match cur.get(p) {
            Some(next) => cur = next,
            None => return Vec::new(),
        }
    }
    cur.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `ns/name` split, as Whereabouts' `podref` and Spiderpool's `pod` write a Pod.
pub(crate) fn pod_ref(value: &str) -> Option<(String, String)> {
    let (ns, name) = value.trim().split_once('/')?;
    (!ns.is_empty() && !name.is_empty() && !name.contains('/'))
        .then(|| (ns.to_string(), name.to_string()))
}

/// A note about a peer object nothing is made of.
pub(crate) fn skip(kind: &str, obj: &Value, source: &str, detail: String) -> Item {
    Item::note(Action::Skip, kind, &name(obj), source, detail)
}

pub(crate) fn conflict(kind: &str, obj: &Value, source: &str, detail: String) -> Item {
    Item::note(Action::Conflict, kind, &name(obj), source, detail)
}

/// The pool (of `pools`, all of one Subnet) whose `ips` hold `claim`'s address.
pub(crate) fn pool_of(claim: &Claim, pools: &[&IPPool]) -> Option<String> {
    pools.iter().find_map(|p| {
        let hit = p
            .spec
            .ips
            .iter()
            .filter_map(|e| parse_entry(e).ok())
            .any(|r: IpRange| r.contains(claim.ip));
        hit.then(|| p.metadata.name.clone().unwrap_or_default())
    })
}

/// An `excludeIps` entry for the addresses `a..=b` (as numbers) of a family: `a` alone, or `a..b`.
pub(crate) fn show_range(fam: Family, a: u128, b: u128) -> String {
    let at = |x| IpRange::from_bounds(fam, x, x).start();
    if a == b {
        at(a).to_string()
    } else {
        format!("{}..{}", at(a), at(b))
    }
}

/// The IPPool `name` of `spec` (a peer pool's fields as JSON), or a conflict on the peer object.
pub(crate) fn push_pool(
    out: &mut Desired,
    kind: &str,
    obj: &Value,
    src: String,
    name: &str,
    spec: Value,
) {
    match serde_json::from_value::<IPPoolSpec>(spec) {
        Ok(spec) => out.pools.push((IPPool::new(name, spec), src)),
        Err(e) => out.notes.push(conflict(
            kind,
            obj,
            &src,
            format!("spec cannot be read as an IPPool: {e}"),
        )),
    }
}

/// Whether a name can be a Subnet's or IPPool's: a label value and an object name (63 characters, lower case
/// alphanumerics, '-' and '.', alphanumeric at both ends).
pub(crate) fn valid_name(name: &str) -> bool {
    name.len() <= 63 && crate::annotations::is_dns1123_subdomain(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers_never_panic_on_odd_objects() {
        let odd =
            serde_json::json!({"metadata": {"name": 5}, "spec": {"ips": ["a", 3, null, " b "]}});
        assert_eq!(name(&odd), "");
        assert_eq!(strings_at(&odd, &["spec", "ips"]), ["a", "b"]);
        assert!(strings_at(&odd, &["spec", "nope", "x"]).is_empty());
        assert_eq!(pod_ref("ns/p"), Some(("ns".into(), "p".into())));
        assert_eq!(pod_ref("p"), None);
        assert!(
            valid_name("macvlan") && valid_name("a.b-1") && !valid_name("A") && !valid_name("-a")
        );
    }
}
