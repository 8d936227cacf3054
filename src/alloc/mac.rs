//! MAC addresses: parsing, validation and random locally-administered unicast generation.

use std::fmt;
use std::str::FromStr;

use rand::{Rng, RngExt};

/// A 48-bit MAC address, printed in the lower-case colon form Kubernetes annotations and CNI results use.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mac(pub [u8; 6]);

/// Why a string is not a usable MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MacError {
    #[error("{0:?} is not a MAC address (expected six hex octets such as 00:00:00:53:6b:bb)")]
    Malformed(String),
    #[error(
        "{0} is a multicast or broadcast MAC; an interface needs a unicast MAC (lowest bit of the first octet clear)"
    )]
    NotUnicast(Mac),
    #[error("{0} is the all-zero MAC, which no interface may use")]
    Zero(Mac),
}

impl Mac {
    /// A random locally-administered unicast MAC: bit 1 of the first octet set, bit 0 clear.
    pub fn random<R: Rng + ?Sized>(rng: &mut R) -> Mac {
        let mut b = [0u8; 6];
        rng.fill(&mut b);
        b[0] = (b[0] | 0x02) & 0xfe;
        Mac(b)
    }

    /// True when the address may be assigned to an interface.
    pub fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl FromStr for Mac {
    type Err = MacError;

    /// Accepts `aa:bb:cc:dd:ee:ff` and `aa-bb-cc-dd-ee-ff` (any case); rejects multicast, broadcast and zero.
    fn from_str(s: &str) -> Result<Mac, MacError> {
        let malformed = || MacError::Malformed(s.to_string());
        let sep = if s.contains('-') { '-' } else { ':' };
        let mut out = [0u8; 6];
        let mut parts = s.split(sep);
        for byte in &mut out {
            let p = parts.next().ok_or_else(malformed)?;
            if p.len() != 2 {
                return Err(malformed());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| malformed())?;
        }
        if parts.next().is_some() {
            return Err(malformed());
        }
        let mac = Mac(out);
        if out == [0; 6] {
            return Err(MacError::Zero(mac));
        }
        if !mac.is_unicast() {
            return Err(MacError::NotUnicast(mac));
        }
        Ok(mac)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let m: Mac = "00:00:00:53:6B:BB".parse().unwrap();
        assert_eq!(m.to_string(), "00:00:00:53:6b:bb");
        assert_eq!(
            "02-00-00-00-00-01".parse::<Mac>().unwrap().to_string(),
            "02:00:00:00:00:01"
        );
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "00:00:00:53:6b",
            "00:00:00:53:6b:bb:cc",
            "zz:00:00:00:00:01",
            "0:0:0:0:0:1",
            "00:00:00:53:6b:bb:",
        ] {
            assert!(
                matches!(bad.parse::<Mac>(), Err(MacError::Malformed(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            "ff:ff:ff:ff:ff:ff".parse::<Mac>(),
            Err(MacError::NotUnicast(_))
        ));
        assert!(matches!(
            "01:00:5e:00:00:01".parse::<Mac>(),
            Err(MacError::NotUnicast(_))
        ));
        assert!(matches!(
            "00:00:00:00:00:00".parse::<Mac>(),
            Err(MacError::Zero(_))
        ));
        assert_eq!(
            "01:00:5e:00:00:01".parse::<Mac>().unwrap_err().to_string(),
            "01:00:5e:00:00:01 is a multicast or broadcast MAC; an interface needs a unicast MAC (lowest bit of the first octet clear)"
        );
    }

    #[test]
    fn random_is_local_unicast() {
        let mut rng = rand::rng();
        for _ in 0..1000 {
            let m = Mac::random(&mut rng);
            assert!(m.is_unicast());
            assert_eq!(m.0[0] & 0x02, 0x02);
        }
    }
}
