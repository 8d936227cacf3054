//! The run's figures as JSON, and the "Latest run" section of docs/chaos.md rendered from that JSON (so no
//! figure there is typed in by hand).
//!
//! Where they go: the long form (`e2e/chaos`, which sets `NADIPAM_CHAOS_DOCS=docs`) writes
//! `docs/chaos.json` and rewrites the section of `docs/chaos.md` between [`BEGIN`] and [`END`]. Any other
//! run (the short form under `cargo test`, CI) leaves docs/ alone and writes `<target>/chaos/chaos.json` and
//! `<target>/chaos/chaos-latest.md`, the section it would have written.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The markers around the generated section of docs/chaos.md.
pub const BEGIN: &str = "<!-- BEGIN chaos.json: written by e2e/chaos from docs/chaos.json; edits here are overwritten -->";
pub const END: &str = "<!-- END chaos.json -->";

/// The commit the run was built from, `-dirty` when tracked files differ from it.
pub fn commit(repo: &Path) -> String {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(repo)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let Some(head) = git(&["rev-parse", "--short=12", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if s.is_empty() => head,
        _ => format!("{head}-dirty"),
    }
}

/// 1, 5 and 15 minute load averages.
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut it = text.split_whitespace().map(|v| v.parse().unwrap_or(0.0));
    [
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
        it.next().unwrap_or(0.0),
    ]
}

pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(0, |n| n.get())
}

/// Where this run writes, and whether that is docs/.
pub fn destination(repo: &Path) -> (PathBuf, bool) {
    match std::env::var_os("NADIPAM_CHAOS_DOCS").filter(|v| !v.is_empty()) {
        Some(dir) => (repo.join(dir), true),
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| repo.join("target"));
            (repo.join(target).join("chaos"), false)
        }
    }
}

/// Writes `record` and its section (see the module's doc); returns the paths written.
pub fn write(repo: &Path, record: &Value) -> Result<Vec<PathBuf>, String> {
    let (dir, docs) = destination(repo);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let json = serde_json::to_string_pretty(record).map_err(|e| e.to_string())?;
    let json_path = dir.join("chaos.json");
    std::fs::write(&json_path, json + "\n")
        .map_err(|e| format!("writing {}: {e}", json_path.display()))?;
    // Rendered from the file just written, as anyone re-rendering it would.
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(&json_path)
            .map_err(|e| format!("reading {}: {e}", json_path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", json_path.display()))?;
    let section = markdown(&written);
    let md_path = if docs {
        let path = dir.join("chaos.md");
        let doc = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading {}: {e}", path.display()))?;
        let doc = splice(&doc, &section)
            .ok_or_else(|| format!("{} has no {BEGIN} … {END} section", path.display()))?;
        std::fs::write(&path, doc).map_err(|e| format!("writing {}: {e}", path.display()))?;
        path
    } else {
        let path = dir.join("chaos-latest.md");
        std::fs::write(&path, &section).map_err(|e| format!("writing {}: {e}", path.display()))?;
        path
    };
    Ok(vec![json_path, md_path])
}

/// `doc` with the text between the markers replaced by `section`.
fn splice(doc: &str, section: &str) -> Option<String> {
    let start = doc.find(BEGIN)? + BEGIN.len();
    let end = start + doc[start..].find(END)?;
    Some(format!("{}\n{section}{}", &doc[..start], &doc[end..]))
}

/// `1234567` as `1 234 567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

fn int(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_u64)
        .map_or_else(|| "?".into(), grouped)
}

fn secs(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .map_or_else(|| "?".into(), |s| format!("{s:.1} s"))
}

fn text<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("?")
}

fn list(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_array).map_or_else(
        || "?".into(),
        |a| {
            a.iter()
                .map(|x| x.as_u64().map_or_else(|| "?".into(), grouped))
                .collect::<Vec<_>>()
                .join(" / ")
        },
    )
}

fn counts(v: &Value, pointer: &str) -> String {
    match v.pointer(pointer).and_then(Value::as_object) {
        Some(m) if m.is_empty() => "none".into(),
        Some(m) => m
            .iter()
            .map(|(k, n)| format!("{k}: {}", n.as_u64().map_or_else(|| "?".into(), grouped)))
            .collect::<Vec<_>>()
            .join(", "),
        None => "?".into(),
    }
}

/// The "Latest run" section: one table of the figures in `r` (a chaos.json).
pub fn markdown(r: &Value) -> String {
    let mut s = String::new();
    let load = |p: &str| {
        r.pointer(p)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| format!("{:.2}", x.as_f64().unwrap_or(0.0)))
                    .collect::<Vec<_>>()
                    .join(" / ")
            })
            .unwrap_or_else(|| "?".into())
    };
    let target = r.pointer("/allocations/target").and_then(Value::as_u64);
    let form = match target {
        Some(10_000) => "the long form".to_string(),
        Some(n) => format!(
            "{} allocations instead of the long form's 10 000",
            grouped(n)
        ),
        None => "?".into(),
    };
    let _ = writeln!(
        s,
        "Written by the run of {} at commit `{}` ({form}; {} build, seed {}), {} cores, load average {} \
         before and {} after. Every figure below is in [chaos.json](chaos.json); {}.\n",
        text(r, "/generated"),
        text(r, "/commit"),
        text(r, "/build"),
        r.pointer("/seed").and_then(Value::as_u64).unwrap_or(0),
        r.pointer("/cpus").and_then(Value::as_u64).unwrap_or(0),
        load("/load_before"),
        load("/load_after"),
        if r.pointer("/passed").and_then(Value::as_bool) == Some(true) {
            "the run passed".to_string()
        } else {
            format!("**the run failed**: {}", r["failures"])
        }
    );
    let rows: Vec<(String, String)> = vec![
        (
            "allocations".into(),
            format!(
                "{} (target {}) = {} Pods that got an address + {} rejected after reserving + {} admitted \
                 directly, never created",
                int(r, "/allocations/total"),
                int(r, "/allocations/target"),
                int(r, "/allocations/pods_with_address"),
                int(r, "/allocations/rejected_after_reserving"),
                int(r, "/allocations/direct_never_created")
            ),
        ),
        (
            "**addresses held by two live Pods** (end; worst consistent snapshot during the run)".into(),
            format!(
                "**{}** (Pod-vs-Pod {}, MAC {}, Pod-vs-lease {}; {} live Pods with an address); {} of {} snapshots",
                int(r, "/figures/held_by_two"),
                int(r, "/figures/pod_pod"),
                int(r, "/figures/mac_pod_pod"),
                int(r, "/figures/pod_lease"),
                int(r, "/figures/live_pods"),
                int(r, "/figures/worst_snapshot"),
                int(r, "/figures/snapshots")
            ),
        ),
        (
            "**leases without a live owner** (of leases at the end)".into(),
            format!(
                "**{}** (of {})",
                int(r, "/figures/leaked"),
                int(r, "/figures/leases")
            ),
        ),
        (
            "**status diff**".into(),
            format!(
                "**{}** ({})",
                int(r, "/figures/status_diff"),
                text(r, "/figures/status")
            ),
        ),
        (
            "**Pods refused because of reinvocation** (own reservation judged another's)".into(),
            format!(
                "**{}** reinvocations refused + **{}** refused for an API error outside the apiserver's restart + \
                 **{}** load denials of that kind; {} refused at the apiserver's restart (`could not look up \
                 reservation …: the API server answered …; retry the request`, the apiserver that asked being gone too)",
                int(r, "/reinvocation/nadipam_denied"),
                int(r, "/reinvocation/nadipam_api_errors_otherwise"),
                int(r, "/reinvocation/load_denials"),
                int(r, "/reinvocation/nadipam_api_errors_at_restart")
            ),
        ),
        (
            "reinvocations".into(),
            format!(
                "{} Pods with an address admitted through the apiserver, {} of them changed by the reordering \
                 webhook after nadipam ({} not); reordering webhook called {} times ({} for a Pod carrying \
                 nadipam's token, {} of them dry runs; called again {} times, {} for dry runs); nadipam reinvoked {} \
                 times ({} dry runs, {} of them refused), {} answers changed the Pod, {} unanswered (replica killed or none ready)",
                int(r, "/reinvocation/pods_through_apiserver"),
                int(r, "/reinvocation/pods_reinvoked"),
                int(r, "/reinvocation/pods_not_reinvoked"),
                int(r, "/reinvocation/reorderer_calls"),
                int(r, "/reinvocation/reorderer_after_nadipam"),
                int(r, "/reinvocation/reorderer_after_nadipam_dry"),
                int(r, "/reinvocation/reorderer_again"),
                int(r, "/reinvocation/reorderer_again_dry"),
                int(r, "/reinvocation/nadipam_reinvoked"),
                int(r, "/reinvocation/nadipam_reinvoked_dry"),
                int(r, "/reinvocation/nadipam_dry_denied"),
                int(r, "/reinvocation/nadipam_changed"),
                int(r, "/reinvocation/nadipam_unanswered")
            ),
        ),
        (
            "load".into(),
            format!(
                "{} Pods created through the apiserver, {} admitted directly and created, {} dry runs ({} \
                 direct), {} Pod deletes ({} StatefulSet Pods), {} scalings",
                int(r, "/load/created_through_apiserver"),
                int(r, "/load/direct_created"),
                int(r, "/load/dry_runs"),
                int(r, "/load/dry_runs_direct"),
                int(r, "/load/deletes"),
                int(r, "/load/statefulset_deletes"),
                int(r, "/load/scalings")
            ),
        ),
        (
            "races for one fixed address or MAC (winners; most per race)".into(),
            format!(
                "{}, {} for a MAC ({}; {})",
                int(r, "/load/races"),
                int(r, "/load/mac_races"),
                int(r, "/load/race_winners"),
                int(r, "/load/race_max_winners")
            ),
        ),
        (
            "admissions through the proxy per replica; AdmissionReviews sent directly".into(),
            format!(
                "{}; {}",
                list(r, "/spread/proxy_per_replica"),
                list(r, "/spread/direct_per_replica")
            ),
        ),
        (
            "kills = restarts; crashes; panics logged".into(),
            format!(
                "{} = {}; {}; {}",
                int(r, "/faults/kills"),
                int(r, "/faults/restarts"),
                int(r, "/faults/crashes"),
                int(r, "/faults/panics")
            ),
        ),
        (
            "leader Lease stolen / deleted; leader changes; time without a leader".into(),
            format!(
                "{} / {}; {}; {}",
                int(r, "/faults/lease_stolen"),
                int(r, "/faults/lease_deleted"),
                int(r, "/faults/leader_changes"),
                secs(r, "/faults/leaderless_s")
            ),
        ),
        (
            "kube-apiserver restarts (time away)".into(),
            format!(
                "{} ({})",
                int(r, "/faults/apiserver_restarts"),
                secs(r, "/faults/apiserver_away_s")
            ),
        ),
        (
            "orphans left on purpose; direct ones found reclaimed by token; reservations reclaimed in all".into(),
            format!(
                "{}; {} of {}; {}",
                int(r, "/orphans/left"),
                int(r, "/orphans/direct_reclaimed_by_token"),
                int(r, "/orphans/direct"),
                int(r, "/orphans/reclaimed")
            ),
        ),
        ("denials".into(), counts(r, "/denials")),
        (
            "errors the load saw (expected under these faults)".into(),
            counts(r, "/errors"),
        ),
        (
            "leases left after the namespace was deleted".into(),
            int(r, "/leases_left_after_teardown"),
        ),
        (
            "wall time: setup, load, settle + window + convergence, teardown, total".into(),
            format!(
                "{}, {}, {}, {}, **{}**",
                secs(r, "/durations/setup_s"),
                secs(r, "/durations/load_s"),
                secs(r, "/durations/settle_s"),
                secs(r, "/durations/teardown_s"),
                secs(r, "/durations/total_s")
            ),
        ),
    ];
    s.push_str("| | latest run |\n|---|---|\n");
    for (k, v) in rows {
        let _ = writeln!(s, "| {k} | {v} |");
    }
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_section_between_the_markers_is_replaced_and_nothing_else() {
        let doc = format!("# Title\n\nprose\n\n{BEGIN}\nold table\n{END}\n\nmore prose\n");
        let out = splice(&doc, "new table\n").expect("markers");
        assert_eq!(
            out,
            format!("# Title\n\nprose\n\n{BEGIN}\nnew table\n{END}\n\nmore prose\n")
        );
        assert_eq!(splice(&out, "new table\n").as_deref(), Some(out.as_str()));
        assert!(splice("no markers", "x").is_none());
    }

    #[test]
    fn figures_are_read_from_the_json() {
        let r = serde_json::json!({
            "allocations": {"target": 3000, "total": 3004},
            "figures": {"held_by_two": 0, "leases": 1234},
            "passed": true,
        });
        let md = markdown(&r);
        assert!(
            md.contains("3 000 allocations instead of the long form's 10 000"),
            "{md}"
        );
        assert!(md.contains("3 004 (target 3 000)"), "{md}");
        assert!(md.contains("(of 1 234)"), "{md}");
        assert!(md.contains("the run passed"), "{md}");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000_000), "1 000 000");
    }
}
