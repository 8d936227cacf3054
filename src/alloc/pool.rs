//! Ordered address lists (Kube-OVN's `ip_pool` of addresses): a StatefulSet Pod takes the entry of its
//! ordinal, any other Pod the first entry that is wholly free.

use super::allocator::Allocator;
use super::error::AllocError;
use super::pair::IpPair;

/// The ordinal of a StatefulSet Pod name (`web-3` → 3): the decimal suffix after the last `-`, without a
/// sign or leading zeros, as the StatefulSet controller writes it.
pub fn statefulset_ordinal(pod_name: &str) -> Option<u32> {
    let (_, suffix) = pod_name.rsplit_once('-')?;
    let digits = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit());
    if !digits || (suffix.len() > 1 && suffix.starts_with('0')) {
        return None;
    }
    suffix.parse().ok()
}

impl Allocator {
    /// Chooses an entry of an ordered list without reserving it. `ordinal: Some(n)` (StatefulSet) returns
    /// entry n whatever its state, so a re-created Pod gets its address back (the caller decides whether a
    /// holder is the same Pod); `None` returns the first entry all of whose addresses are free now.
    pub fn select_from_list(
        &self,
        list: &[IpPair],
        ordinal: Option<u32>,
    ) -> Result<IpPair, AllocError> {
        if list.is_empty() {
            return Err(AllocError::EmptyList);
        }
        if let Some(ordinal) = ordinal {
            return usize::try_from(ordinal)
                .ok()
                .and_then(|i| list.get(i))
                .copied()
                .ok_or(AllocError::OrdinalOutOfRange {
                    ordinal,
                    size: list.len(),
                });
        }
        let mut first_reason = None;
        for entry in list {
            match entry.addrs().try_for_each(|ip| self.check(ip)) {
                Ok(()) => return Ok(*entry),
                Err(e) => {
                    first_reason.get_or_insert(e);
                }
            }
        }
        Err(AllocError::ListTaken {
            size: list.len(),
            first: Box::new(first_reason.unwrap_or(AllocError::EmptyList)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alloc::SubnetLayout;
    use std::net::IpAddr;

    fn pair(s: &str) -> IpPair {
        IpPair::from_addrs(s.split(',').map(|a| a.parse::<IpAddr>().unwrap())).unwrap()
    }

    fn guide() -> Allocator {
        let l = SubnetLayout::parse(
            "macvlan",
            None,
            "172.17.0.0/16",
            Some("172.17.0.1"),
            &["172.17.0.0..172.17.0.10"],
        )
        .unwrap();
        Allocator::new(&l)
    }

    #[test]
    fn ordinals() {
        assert_eq!(statefulset_ordinal("web-3"), Some(3));
        assert_eq!(statefulset_ordinal("my-web-0"), Some(0));
        assert_eq!(statefulset_ordinal("web-12"), Some(12));
        assert_eq!(statefulset_ordinal("web-7f9c6d5b8-x2x4z"), None);
        assert_eq!(statefulset_ordinal("web"), None);
        assert_eq!(statefulset_ordinal("web-"), None);
        assert_eq!(statefulset_ordinal("web-+3"), None);
        assert_eq!(statefulset_ordinal("web-03"), None);
        assert_eq!(statefulset_ordinal("web-99999999999"), None);
    }

    #[test]
    fn statefulset_takes_its_ordinal() {
        let mut a = guide();
        let list = [
            pair("172.17.0.200"),
            pair("172.17.0.201"),
            pair("172.17.0.202"),
        ];
        assert_eq!(
            a.select_from_list(&list, statefulset_ordinal("web-1"))
                .unwrap(),
            list[1]
        );
        a.reserve(list[1].v4.unwrap().into()).unwrap();
        assert_eq!(
            a.select_from_list(&list, Some(1)).unwrap(),
            list[1],
            "held entries are still the Pod's own"
        );
        assert_eq!(
            a.select_from_list(&list, statefulset_ordinal("web-3"))
                .unwrap_err()
                .to_string(),
            "StatefulSet ordinal 3 has no entry in an address list of 3 entries (ordinals 0 to 2); add entries or scale down"
        );
        assert_eq!(
            a.select_from_list(&list[..1], Some(1))
                .unwrap_err()
                .to_string(),
            "StatefulSet ordinal 1 has no entry in an address list of 1 entry (ordinals 0 to 0); add entries or scale down"
        );
        assert_eq!(
            a.select_from_list(&[], Some(0)).unwrap_err().to_string(),
            "the address list is empty; give at least one address (or v4,v6 pair) per Pod"
        );
    }

    #[test]
    fn deployment_takes_the_first_free_entry() {
        let mut a = guide();
        let list = [pair("172.17.0.200"), pair("172.17.0.201")];
        let first = a.select_from_list(&list, None).unwrap();
        assert_eq!(first, list[0]);
        a.reserve_pair(&first).unwrap();
        let second = a.select_from_list(&list, None).unwrap();
        assert_eq!(second, list[1]);
        a.reserve_pair(&second).unwrap();
        assert_eq!(
            a.select_from_list(&list, None).unwrap_err().to_string(),
            "no entry of the address list (2 entries) is free; the first one: 172.17.0.200 is already in use in subnet macvlan (172.17.0.0/16)"
        );
        let bad = [pair("172.17.0.5"), pair("172.17.0.210")];
        assert_eq!(a.select_from_list(&bad, None).unwrap(), bad[1]);
    }

    #[test]
    fn dual_entries_need_both_halves_free() {
        let l = SubnetLayout::parse("dual", None, "10.0.0.0/24,fd00::/64", None, &[] as &[&str])
            .unwrap();
        let mut a = Allocator::new(&l);
        let list = [pair("10.0.0.5,fd00::5"), pair("10.0.0.6,fd00::6")];
        a.reserve("fd00::5".parse().unwrap()).unwrap();
        assert_eq!(a.select_from_list(&list, None).unwrap(), list[1]);
    }
}
