//! Prometheus metrics shared by the webhook and the controller, served at `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// How an admission request ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
pub enum Outcome {
    Allowed,
    Patched,
    Denied,
    Error,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AdmissionLabels {
    pub resource: String,
    pub outcome: Outcome,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SubnetLabels {
    pub subnet: String,
}

/// Admission latency buckets (seconds): fine in the low milliseconds where admission should sit, with 10 ms
/// (the p99 objective, docs/benchmarks.md) as a bound, and coarse up to the apiserver's 10 s webhook timeout.
const ADMISSION_BUCKETS: [f64; 26] = [
    0.00025, 0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.0025, 0.003, 0.004, 0.005, 0.006, 0.0075,
    0.01, 0.0125, 0.015, 0.02, 0.025, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Every metric nadipam exports. Cloning is cheap (the metrics are shared handles).
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    /// Admission latency in seconds, per resource and outcome.
    pub admission_seconds: Family<AdmissionLabels, Histogram>,
    /// Addresses reserved (IPLease objects created), per subnet.
    pub allocations: Family<SubnetLabels, Counter>,
    /// Denied admissions, per reason.
    pub denials: Family<ReasonLabels, Counter>,
    /// IPLease creates that found the address already taken (another replica or a stale cache).
    pub lease_conflicts: Family<SubnetLabels, Counter>,
    /// Reserved leases whose Pod never appeared, deleted by the controller.
    pub reclaimed: Family<SubnetLabels, Counter>,
    /// Leases released because their Pod finished or went away.
    pub released: Family<SubnetLabels, Counter>,
    /// Leases held by a Pod (it carries their token) and waiting for their paced bind (`--bind-rate`).
    pub bind_backlog: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("nadipam");
        let admission_seconds = Family::<AdmissionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(ADMISSION_BUCKETS.iter().copied())
        });
        let allocations = Family::<SubnetLabels, Counter>::default();
        let denials = Family::<ReasonLabels, Counter>::default();
        let lease_conflicts = Family::<SubnetLabels, Counter>::default();
        let reclaimed = Family::<SubnetLabels, Counter>::default();
        let released = Family::<SubnetLabels, Counter>::default();
        registry.register(
            "admission_duration_seconds",
            "Admission request latency by resource and outcome",
            admission_seconds.clone(),
        );
        registry.register("allocations", "Addresses reserved", allocations.clone());
        registry.register("denials", "Admission denials by reason", denials.clone());
        registry.register(
            "lease_conflicts",
            "IPLease creates that found the address already taken",
            lease_conflicts.clone(),
        );
        registry.register(
            "reclaimed_leases",
            "Reserved leases reclaimed because their Pod never appeared",
            reclaimed.clone(),
        );
        registry.register(
            "released_leases",
            "Leases released by the controller",
            released.clone(),
        );
        let bind_backlog = Gauge::default();
        registry.register(
            "bind_backlog",
            "Leases held by their Pod and waiting for a paced bind (--bind-rate)",
            bind_backlog.clone(),
        );
        Metrics {
            registry: Arc::new(registry),
            admission_seconds,
            allocations,
            denials,
            lease_conflicts,
            reclaimed,
            released,
            bind_backlog,
        }
    }

    pub fn observe_admission(&self, resource: &str, outcome: Outcome, elapsed: Duration) {
        self.admission_seconds
            .get_or_create(&AdmissionLabels {
                resource: resource.to_string(),
                outcome,
            })
            .observe(elapsed.as_secs_f64());
    }

    pub fn count_denial(&self, reason: &str) {
        self.denials
            .get_or_create(&ReasonLabels {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in the encoder.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_admission_histogram_and_counters() {
        let m = Metrics::new();
        m.observe_admission("pods", Outcome::Patched, Duration::from_millis(2));
        m.count_denial("ip_in_use");
        m.allocations
            .get_or_create(&SubnetLabels {
                subnet: "macvlan".into(),
            })
            .inc();
        let text = m.encode();
        assert!(
            text.contains(
                "nadipam_admission_duration_seconds_count{resource=\"pods\",outcome=\"Patched\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("nadipam_denials_total{reason=\"ip_in_use\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("nadipam_allocations_total{subnet=\"macvlan\"} 1"),
            "{text}"
        );
    }
}
