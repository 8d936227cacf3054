//! The MACs in use on one subnet, so every Pod interface on the same L2 segment gets a unique one.

use std::collections::HashSet;

use rand::Rng;

use super::error::AllocError;
use super::mac::Mac;

/// Random tries before giving up. With 2^46 locally-administered unicast MACs, even a million in use makes
/// one collision a 1-in-70-million event, so reaching this limit means the RNG is broken.
const TRIES: u32 = 64;

/// MACs in use on one subnet.
#[derive(Clone, Debug, Default)]
pub struct MacSet {
    subnet: String,
    used: HashSet<Mac>,
}

impl MacSet {
    /// An empty set; `subnet` names the subnet in messages.
    pub fn new(subnet: impl Into<String>) -> MacSet {
        MacSet {
            subnet: subnet.into(),
            used: HashSet::new(),
        }
    }

    /// Takes a requested MAC; a MAC already in use is a conflict.
    pub fn reserve(&mut self, mac: Mac) -> Result<(), AllocError> {
        if self.used.insert(mac) {
            Ok(())
        } else {
            Err(AllocError::MacInUse {
                mac,
                subnet: self.subnet.clone(),
            })
        }
    }

    /// Takes a random unused locally-administered unicast MAC.
    pub fn pick<R: Rng + ?Sized>(&mut self, rng: &mut R) -> Result<Mac, AllocError> {
        for _ in 0..TRIES {
            let mac = Mac::random(rng);
            if self.used.insert(mac) {
                return Ok(mac);
            }
        }
        Err(AllocError::MacExhausted {
            subnet: self.subnet.clone(),
            tries: TRIES,
        })
    }

    /// Frees a MAC; false when it was not in use.
    pub fn release(&mut self, mac: Mac) -> bool {
        self.used.remove(&mac)
    }

    pub fn contains(&self, mac: Mac) -> bool {
        self.used.contains(&mac)
    }

    pub fn len(&self) -> usize {
        self.used.len()
    }

    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use std::convert::Infallible;

    use rand::{SeedableRng, TryRng};

    #[test]
    fn reserve_pick_release() {
        let mut set = MacSet::new("macvlan");
        let mac: Mac = "00:00:00:53:6B:BB".parse().unwrap();
        set.reserve(mac).unwrap();
        assert_eq!(
            set.reserve(mac).unwrap_err().to_string(),
            "MAC 00:00:00:53:6b:bb is already in use in subnet macvlan"
        );
        let mut rng = StdRng::seed_from_u64(5);
        for _ in 0..1000 {
            let m = set.pick(&mut rng).unwrap();
            assert!(m.is_unicast() && m.0[0] & 0x02 == 0x02);
        }
        assert_eq!(set.len(), 1001);
        assert!(set.release(mac));
        assert!(!set.release(mac));
        assert!(!set.contains(mac));
        assert!(!set.is_empty());
    }

    /// An RNG that always yields the same bytes: every pick after the first collides.
    struct Stuck;

    impl TryRng for Stuck {
        type Error = Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Infallible> {
            Ok(7)
        }
        fn try_next_u64(&mut self) -> Result<u64, Infallible> {
            Ok(7)
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
            dst.fill(7);
            Ok(())
        }
    }

    #[test]
    fn collisions_retry_then_fail() {
        let mut set = MacSet::new("macvlan");
        let first = set.pick(&mut Stuck).unwrap();
        assert_eq!(first.to_string(), "06:07:07:07:07:07");
        assert_eq!(
            set.pick(&mut Stuck).unwrap_err().to_string(),
            "no unused MAC found in subnet macvlan after 64 random tries"
        );
        // A real RNG steps round a collision.
        let mut rng = StdRng::seed_from_u64(1);
        let m = Mac::random(&mut StdRng::seed_from_u64(1));
        set.reserve(m).unwrap();
        assert_ne!(set.pick(&mut rng).unwrap(), m);
    }
}
