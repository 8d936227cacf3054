//! Just enough of the Prometheus text format to difference two scrapes: the apiserver's (where its time
//! goes: admission webhooks, etcd) and nadipam's (its own admission histogram).

use std::collections::BTreeMap;

/// One series: metric name, labels, value.
#[derive(Clone, Debug)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Clone, Debug, Default)]
pub struct Samples(pub Vec<Sample>);

/// Parses exposition text; lines it does not understand (comments, exemplars) are skipped.
pub fn parse(text: &str) -> Samples {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = match line.find('{') {
            Some(open) => {
                let Some(close) = line.rfind('}') else {
                    continue;
                };
                let labels = parse_labels(&line[open + 1..close]);
                let value = line[close + 1..].split_whitespace().next();
                ((line[..open].to_owned(), labels), value)
            }
            None => {
                let mut parts = line.split_whitespace();
                let name = parts.next().unwrap_or_default().to_owned();
                ((name, BTreeMap::new()), parts.next())
            }
        };
        let Some(value) = value.and_then(|v| v.parse::<f64>().ok()) else {
            continue;
        };
        out.push(Sample {
            name: series.0,
            labels: series.1,
            value,
        });
    }
    Samples(out)
}

fn parse_labels(text: &str) -> BTreeMap<String, String> {
    let mut labels = BTreeMap::new();
    let mut rest = text;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, n)) = chars.next() {
                        value.push(match n {
                            'n' => '\n',
                            other => other,
                        });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.insert(key.trim().trim_start_matches(',').trim().to_owned(), value);
        rest = &after[end..];
    }
    labels
}

impl Samples {
    /// Sum of every series named `name` whose labels include all of `want`.
    pub fn sum(&self, name: &str, want: &[(&str, &str)]) -> f64 {
        self.0
            .iter()
            .filter(|s| s.name == name && matches(&s.labels, want))
            .map(|s| s.value)
            .sum()
    }

    /// Cumulative histogram buckets `(le, count)` of `name` (the `_bucket` series), summed over every series
    /// matching `want`, sorted by bound.
    pub fn buckets(&self, name: &str, want: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut by_le: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        let bucket = format!("{name}_bucket");
        for s in self
            .0
            .iter()
            .filter(|s| s.name == bucket && matches(&s.labels, want))
        {
            let Some(le) = s.labels.get("le").and_then(|v| parse_le(v)) else {
                continue;
            };
            let entry = by_le.entry(le.to_bits()).or_insert((le, 0.0));
            entry.1 += s.value;
        }
        let mut v: Vec<(f64, f64)> = by_le.into_values().collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v
    }

    /// Sum of every series named `name`, grouped by the values of `by` joined with spaces (empty values left out).
    pub fn group(&self, name: &str, by: &[&str]) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.0.iter().filter(|s| s.name == name) {
            let key: Vec<&str> = by
                .iter()
                .filter_map(|k| s.labels.get(*k).map(String::as_str))
                .filter(|v| !v.is_empty())
                .collect();
            *out.entry(key.join(" ")).or_insert(0.0) += s.value;
        }
        out
    }
}

fn parse_le(v: &str) -> Option<f64> {
    if v == "+Inf" {
        Some(f64::INFINITY)
    } else {
        v.parse().ok()
    }
}

fn matches(labels: &BTreeMap<String, String>, want: &[(&str, &str)]) -> bool {
    want.iter()
        .all(|(k, v)| labels.get(*k).is_some_and(|have| have == v))
}

/// `after - before` of two cumulative bucket lists with the same bounds (buckets missing before count as 0).
pub fn bucket_delta(before: &[(f64, f64)], after: &[(f64, f64)]) -> Vec<(f64, f64)> {
    after
        .iter()
        .map(|(le, n)| {
            let was = before
                .iter()
                .find(|(l, _)| l.to_bits() == le.to_bits())
                .map_or(0.0, |b| b.1);
            (*le, n - was)
        })
        .collect()
}

/// A quantile of a cumulative histogram, interpolated linearly inside its bucket as PromQL's
/// `histogram_quantile` does, with the bucket's upper bound: `(estimate, bound)`, in the buckets' unit.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<(f64, f64)> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some((lower.0, le));
            }
            let in_bucket = count - lower.1;
            let frac = if in_bucket > 0.0 {
                (rank - lower.1) / in_bucket
            } else {
                1.0
            };
            return Some((lower.0 + (le - lower.0) * frac, le));
        }
        lower = (le, count);
    }
    None
}
