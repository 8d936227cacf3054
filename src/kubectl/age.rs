//! Durations as kubectl's AGE column writes them (`45s`, `3m12s`, `5h`, `2d4h`, `3y`): two or three
//! significant figures. Hand-written: no crate spells them kubectl's way, and users compare the two columns.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

/// kubectl's rendering of `d` (apimachinery's `HumanDuration`).
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs < 120 {
        return format!("{secs}s");
    }
    let minutes = secs / 60;
    if minutes < 10 {
        return match secs % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = minutes / 60;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    let days = hours / 24;
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{days}d"),
            h => format!("{days}d{h}h"),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{days}d");
    }
    let years = days / 365;
    if hours < 24 * 365 * 8 {
        return match days % 365 {
            0 => format!("{years}y"),
            d => format!("{years}y{d}d"),
        };
    }
    format!("{years}y")
}

/// Time from `then` to `now`; zero when `then` is later (clock skew).
pub(crate) fn since(then: Timestamp, now: Timestamp) -> Duration {
    Duration::try_from(now.duration_since(then)).unwrap_or_default()
}

/// The AGE cell of an object created at `created`.
pub(crate) fn age(created: Option<&Time>, now: Timestamp) -> Option<String> {
    created.map(|t| human(since(t.0, now)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_like_kubectl() {
        let cases = [
            (0, "0s"),
            (59, "59s"),
            (119, "119s"),
            (120, "2m"),
            (192, "3m12s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600, "47h"),
            (48 * 3600, "2d"),
            (52 * 3600, "2d4h"),
            (8 * 86400, "8d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (735 * 86400, "2y5d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, text) in cases {
            assert_eq!(human(Duration::from_secs(secs)), text, "{secs}s");
        }
    }

    #[test]
    fn ages_are_never_negative() {
        let t = |s| Timestamp::from_second(s).unwrap();
        assert_eq!(since(t(100), t(40)), Duration::ZERO);
        assert_eq!(age(Some(&Time(t(0))), t(75)).as_deref(), Some("75s"));
        assert_eq!(age(None, t(75)), None);
    }
}
