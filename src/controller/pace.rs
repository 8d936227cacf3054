//! Pacing of binds. A lease whose Pod carries its reservation token is already held (`decide` keeps it and
//! never reclaims it), so binding only records the holder's name and UID on the lease. That is bookkeeping,
//! and each bind is an apiserver write about as costly as the Pod create: during a burst of Pod creates,
//! binding at once would take that capacity from the creates. Binds are therefore spaced at `--bind-rate`
//! per second, with up to one second's worth at once, so a quiet cluster sees its leases bound at once and a
//! burst sees them bound in the seconds after it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use prometheus_client::metrics::gauge::Gauge;

/// How far behind `now` the next free slot may lag: binds worth this much time go at once.
const BURST: Duration = Duration::from_secs(1);

/// Hands out bind slots, `1/rate` apart. The caller passes the time, so the schedule is testable without a
/// clock.
pub(crate) struct Pacer {
    /// None: no pacing, every bind goes at once.
    interval: Option<Duration>,
    state: Mutex<State>,
    /// Kept equal to the number of waiting leases (`nadipam_bind_backlog`).
    backlog: Gauge,
}

#[derive(Default)]
struct State {
    /// The next slot nobody has taken.
    next: Option<Instant>,
    /// Leases that took a slot in the future and were told to come back then.
    waiting: HashMap<String, Instant>,
}

impl Pacer {
    /// `rate` binds per second; 0 turns pacing off. `backlog` follows the number of waiting leases.
    pub(crate) fn new(rate: u32, backlog: Gauge) -> Pacer {
        let interval = (rate > 0).then(|| Duration::from_secs(1) / rate);
        backlog.set(0);
        Pacer {
            interval,
            state: Mutex::new(State::default()),
            backlog,
        }
    }

    fn publish(&self, s: &State) {
        self.backlog.set(s.waiting.len() as i64);
    }

    /// None: bind `lease` now. Some(d): its slot is `d` away; look again then (the slot stays reserved for
    /// it, so coming back early or late does not lose its place).
    pub(crate) fn wait(&self, lease: &str, now: Instant) -> Option<Duration> {
        let interval = self.interval?;
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(&slot) = s.waiting.get(lease) {
            if slot <= now {
                s.waiting.remove(lease);
                self.publish(&s);
                return None;
            }
            return Some(slot - now);
        }
        // The burst: slots up to one second back are still free, `now` being the last of them.
        let earliest = now.checked_sub(BURST - interval).unwrap_or(now);
        let slot = s.next.map_or(earliest, |n| n.max(earliest));
        s.next = Some(slot + interval);
        if slot <= now {
            return None;
        }
        s.waiting.insert(lease.to_string(), slot);
        self.publish(&s);
        Some(slot - now)
    }

    /// `lease` no longer needs a bind (it was released, or bound by an earlier pass): drop its slot.
    pub(crate) fn forget(&self, lease: &str) {
        if self.interval.is_none() {
            return;
        }
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if s.waiting.remove(lease).is_some() {
            self.publish(&s);
        }
    }

    /// After a relist: keep only the slots of leases that still exist (a lease deleted while the watch was
    /// down never reports its delete).
    pub(crate) fn retain(&self, exists: impl Fn(&str) -> bool) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        s.waiting.retain(|lease, _| exists(lease));
        self.publish(&s);
    }

    /// Leases waiting for their slot (the gauge carries the same number to `/metrics`).
    #[cfg(test)]
    fn backlog(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .waiting
            .len()
    }
}

/// A replica that stops leading waits for nothing: its backlog goes with the term.
impl Drop for Pacer {
    fn drop(&mut self) {
        self.backlog.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn off_means_every_bind_goes_at_once() {
        let p = Pacer::new(0, Gauge::default());
        let now = Instant::now();
        assert!((0..1000).all(|i| p.wait(&format!("l{i}"), now).is_none()));
        assert_eq!(p.backlog(), 0);
    }

    #[test]
    fn a_burst_of_one_second_goes_at_once_then_binds_are_spaced() {
        let p = Pacer::new(10, Gauge::default());
        let now = Instant::now() + Duration::from_secs(5);
        // One second's worth (10) at once.
        for i in 0..10 {
            assert_eq!(p.wait(&format!("l{i}"), now), None, "lease {i}");
        }
        // Then one every 100 ms.
        assert_eq!(p.wait("l10", now), Some(100 * MS));
        assert_eq!(p.wait("l11", now), Some(200 * MS));
        assert_eq!(p.backlog(), 2);
        // Coming back early keeps the place; on time, it goes and leaves the backlog.
        assert_eq!(p.wait("l11", now + 50 * MS), Some(150 * MS));
        assert_eq!(p.wait("l10", now + 100 * MS), None);
        assert_eq!(p.wait("l11", now + 250 * MS), None);
        assert_eq!(p.backlog(), 0);
        // After a quiet spell the burst is available again.
        let later = now + Duration::from_secs(10);
        assert!((20..30).all(|i| p.wait(&format!("l{i}"), later).is_none()));
        assert!(p.wait("l30", later).is_some());
    }

    #[test]
    fn the_rate_holds_over_a_long_burst() {
        let p = Pacer::new(20, Gauge::default());
        let now = Instant::now() + Duration::from_secs(5);
        let waits: Vec<Option<Duration>> =
            (0..1000).map(|i| p.wait(&format!("l{i}"), now)).collect();
        assert_eq!(waits.iter().filter(|w| w.is_none()).count(), 20);
        // The last of 1000 at 20/s, 20 of them free: (1000 - 20) × 50 ms.
        assert_eq!(waits[999], Some(Duration::from_millis(980 * 50)));
        assert_eq!(p.backlog(), 980);
    }

    #[test]
    fn forgotten_leases_leave_the_backlog() {
        let gauge = Gauge::default();
        let p = Pacer::new(1, gauge.clone());
        let now = Instant::now() + Duration::from_secs(5);
        assert_eq!(p.wait("a", now), None);
        assert!(p.wait("b", now).is_some());
        assert_eq!(gauge.get(), 1);
        p.forget("b");
        assert_eq!(p.backlog(), 0);
        assert_eq!(gauge.get(), 0, "the metric follows");
        // Its slot is not handed back (slots are only ever spent), so the next one waits behind it.
        assert_eq!(p.wait("c", now), Some(Duration::from_secs(2)));
    }

    #[test]
    fn a_relist_drops_the_slots_of_leases_that_are_gone() {
        let gauge = Gauge::default();
        let p = Pacer::new(1, gauge.clone());
        let now = Instant::now() + Duration::from_secs(5);
        for l in ["a", "b", "c", "d"] {
            p.wait(l, now);
        }
        assert_eq!(p.backlog(), 3, "a went at once");
        p.retain(|l| l != "c");
        assert_eq!(p.backlog(), 2);
        assert_eq!(gauge.get(), 2);
        // b and d keep their places.
        assert_eq!(p.wait("b", now), Some(Duration::from_secs(1)));
        assert_eq!(p.wait("d", now), Some(Duration::from_secs(3)));
    }
}
