//! CPU time by component over a phase, from /proc: on a machine this small every component competes for the
//! same cores, so "where the time goes" is first of all "whose CPU it is".

use std::collections::BTreeMap;

/// Clock ticks per second of /proc/<pid>/stat times (USER_HZ: 100 on every Linux architecture in use).
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) per component, at one moment.
#[derive(Clone, Debug, Default)]
pub struct Snapshot(BTreeMap<&'static str, f64>);

/// The component a process belongs to, by its command name (truncated by the kernel to 15 bytes).
fn component(comm: &str) -> Option<&'static str> {
    Some(match comm {
        "kube-apiserver" => "kube-apiserver",
        "etcd" => "etcd",
        c if c.starts_with("kube-controller") => "kube-controller-manager",
        "nadipam-server" => "nadipam-server",
        _ => return None,
    })
}

/// `(comm, utime + stime, cutime + cstime)` in seconds from a /proc/<pid>/stat line.
fn parse_stat(line: &str) -> Option<(String, f64, f64)> {
    let open = line.find('(')?;
    let close = line.rfind(')')?;
    let comm = line[open + 1..close].to_owned();
    // Fields after the command name start at field 3 (state); utime is field 14.
    let f: Vec<&str> = line[close + 1..].split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    Some((
        comm,
        (num(11) + num(12)) / USER_HZ,
        (num(13) + num(14)) / USER_HZ,
    ))
}

pub fn snapshot() -> Snapshot {
    let mut s = Snapshot::default();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let name = entry.file_name();
            let Some(pid) = name
                .to_str()
                .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            else {
                continue;
            };
            let Ok(line) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some((comm, cpu, _)) = parse_stat(&line)
                && let Some(c) = component(&comm)
            {
                *s.0.entry(c).or_default() += cpu;
            }
        }
    }
    // This process (the load generator) and the children it has waited for: the CNI plugin processes.
    if let Some((_, own, children)) = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|l| parse_stat(&l))
    {
        s.0.insert("benchmark client", own);
        s.0.insert("CNI plugin processes", children);
    }
    s
}

/// CPU seconds per second each component uses with nothing to do (leader renewals, resyncs, controllers'
/// housekeeping), measured over `over`.
pub async fn idle_rate(over: std::time::Duration) -> BTreeMap<String, f64> {
    let before = snapshot();
    tokio::time::sleep(over).await;
    delta(&before, &snapshot())
        .into_iter()
        .map(|(k, v)| (k, v / over.as_secs_f64()))
        .collect()
}

/// `used` minus what the components would have used idle over `elapsed` (never below 0): the work of a
/// phase whose tail is long and mostly quiet (paced binds) without the idle control plane's own CPU.
pub fn net_of_idle(
    used: BTreeMap<String, f64>,
    idle: &BTreeMap<String, f64>,
    elapsed: std::time::Duration,
) -> BTreeMap<String, f64> {
    used.into_iter()
        .map(|(k, v)| {
            let rest = idle.get(&k).copied().unwrap_or(0.0) * elapsed.as_secs_f64();
            (k, (v - rest).max(0.0))
        })
        .collect()
}

/// CPU seconds each component used between two snapshots (components that used none left out).
pub fn delta(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, f64> {
    after
        .0
        .iter()
        .map(|(k, v)| (k.to_string(), v - before.0.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}
