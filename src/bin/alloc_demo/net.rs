//! One subnet's allocation state in the demo, and the rows it prints.

use nadipam::alloc::{AllocError, Allocator, IpPair, Mac, MacSet, SubnetLayout};
use rand::rngs::StdRng;

/// One row of the result table.
pub(crate) struct Row {
    pub(crate) pod: String,
    pub(crate) subnet: String,
    pub(crate) ips: String,
    pub(crate) mac: String,
    pub(crate) how: String,
}

/// Outcome of one Pod request: a row, or a denial message.
pub(crate) type Outcome = Result<Row, String>;

/// Everything allocated on one subnet.
pub(crate) struct Net {
    pub(crate) alloc: Allocator,
    pub(crate) macs: MacSet,
}

impl Net {
    pub(crate) fn new(layout: &SubnetLayout) -> Net {
        Net {
            alloc: Allocator::new(layout),
            macs: MacSet::new(layout.name()),
        }
    }

    /// Reserves `pair` and a MAC (requested or random): all or nothing, as the webhook does.
    pub(crate) fn take(
        &mut self,
        pair: &IpPair,
        mac: Option<Mac>,
        rng: &mut StdRng,
    ) -> Result<Mac, AllocError> {
        self.alloc.reserve_pair(pair)?;
        let mac = match mac {
            Some(m) => self.macs.reserve(m).map(|()| m),
            None => self.macs.pick(rng),
        };
        if mac.is_err() {
            pair.addrs().for_each(|ip| {
                self.alloc.release(ip);
            });
        }
        mac
    }

    pub(crate) fn row(&self, pod: &str, pair: IpPair, mac: Mac, how: String) -> Row {
        Row {
            pod: pod.to_string(),
            subnet: self.alloc.layout().name().to_string(),
            ips: pair.to_string(),
            mac: mac.to_string(),
            how,
        }
    }
}

impl Net {
    /// After a pick: a random MAC, releasing the picked addresses if no MAC can be had.
    pub(crate) fn take_mac_after_pick(
        &mut self,
        pair: &IpPair,
        rng: &mut StdRng,
    ) -> Result<Mac, AllocError> {
        self.macs.pick(rng).inspect_err(|_| {
            pair.addrs().for_each(|ip| {
                self.alloc.release(ip);
            });
        })
    }
}
