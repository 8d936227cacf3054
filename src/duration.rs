//! Durations in flags: Go style (`8760h`, `90s`, `1h30m`) as Kubernetes and cert-manager write them, plus
//! `d` and `y` (365 days) because certificate lifetimes are spoken of in days and years.

use std::time::Duration;

/// Why a flag value is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{value:?} is not a duration: {reason} (expected numbers with units s, m, h, d or y, e.g. 8760h, 365d, 1y, 1h30m)"
)]
pub struct DurationError {
    pub value: String,
    pub reason: String,
}

const UNITS: [(char, u64); 5] = [
    ('s', 1),
    ('m', 60),
    ('h', 3600),
    ('d', 86_400),
    ('y', 365 * 86_400),
];

// Kept rather than humantime: it reads `1y` as 365.25 days, where certificate lifetimes here are whole days.
/// Parses `1y`, `8760h`, `1h30m`, `45s`. Zero is refused: every duration nadipam takes is a lifetime or
/// an interval, and zero of either is a mistake.
pub fn parse_duration(value: &str) -> Result<Duration, DurationError> {
    let fail = |reason: &str| DurationError {
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let text = value.trim();
    if text.is_empty() {
        return Err(fail("it is empty"));
    }
    let mut total: u64 = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let Some(&(_, secs)) = UNITS.iter().find(|(u, _)| *u == c) else {
            return Err(fail(&format!("unknown unit {c:?}")));
        };
        if digits.is_empty() {
            return Err(fail(&format!("unit {c:?} has no number before it")));
        }
        let n: u64 = digits
            .parse()
            .map_err(|_| fail("the number is too large"))?;
        total = n
            .checked_mul(secs)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| fail("it is too long"))?;
        digits.clear();
    }
    if !digits.is_empty() {
        return Err(fail(&format!("the number {digits} has no unit")));
    }
    if total == 0 {
        return Err(fail("it is zero"));
    }
    Ok(Duration::from_secs(total))
}

/// The shortest exact Go-style spelling (`8760h`, `90s`), for messages.
pub fn show(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => "0s".to_string(),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_units_and_sums() {
        let secs = |v: &str| parse_duration(v).map(|d| d.as_secs());
        assert_eq!(secs("45s"), Ok(45));
        assert_eq!(secs("1h30m"), Ok(5400));
        assert_eq!(secs("8760h"), Ok(365 * 86_400));
        assert_eq!(secs("1y"), Ok(365 * 86_400));
        assert_eq!(secs(" 2d "), Ok(2 * 86_400));
    }

    #[test]
    fn errors_name_the_value_and_what_is_valid() {
        let e = |v: &str| parse_duration(v).unwrap_err().to_string();
        let tail = "(expected numbers with units s, m, h, d or y, e.g. 8760h, 365d, 1y, 1h30m)";
        assert_eq!(
            e("10"),
            format!("\"10\" is not a duration: the number 10 has no unit {tail}")
        );
        assert_eq!(
            e("3w"),
            format!("\"3w\" is not a duration: unknown unit 'w' {tail}")
        );
        assert_eq!(
            e("h"),
            format!("\"h\" is not a duration: unit 'h' has no number before it {tail}")
        );
        assert_eq!(
            e("0s"),
            format!("\"0s\" is not a duration: it is zero {tail}")
        );
        assert_eq!(e(""), format!("\"\" is not a duration: it is empty {tail}"));
        assert!(e("99999999999999999999y").contains("too large"));
        assert!(e("9999999999999y").contains("too long"));
    }

    #[test]
    fn shows_the_shortest_exact_unit() {
        assert_eq!(show(Duration::from_secs(31_536_000)), "8760h");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
    }
}
