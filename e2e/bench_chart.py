"""Five panels from benchmarks.json: Pods to Running on real nodes (host-local vs Whereabouts vs nadipam), burst
time (no webhook vs nadipam), time to N addresses with CNI ADDs (Whereabouts vs nadipam, log scale), latency
percentiles, and how nadipam's memory, start-up and admission grow with the leases a Subnet holds."""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src) as f:
        doc = json.load(f)
    r = doc["results"]
    fig, ((ax0, ax1, ax2), (ax3, ax4, ax5)) = plt.subplots(2, 3, figsize=(19, 10))
    ax5.axis("off")

    # 0. Real nodes: median time to all Running per IPAM, the bars spanning min to max.
    nodes = r.get("nodes")
    if nodes:
        sides = nodes["sides"]
        labels = {"host-local": "host-local\n(node-local)", "whereabouts": "Whereabouts", "nadipam": "nadipam"}
        colors = {"host-local": "#9e9e9e", "whereabouts": "#d62728", "nadipam": "#1f77b4"}
        med = [s["running_median_s"] for s in sides]
        err = [[s["running_median_s"] - s["running_min_s"] for s in sides],
               [s["running_max_s"] - s["running_median_s"] for s in sides]]
        bars = ax0.bar([labels[s["ipam"]] for s in sides], med, yerr=err, capsize=6,
                       color=[colors[s["ipam"]] for s in sides])
        ax0.bar_label(bars, fmt="%.1f s", fontsize=9, label_type="center")
        ax0.set_ylabel("seconds from first create until every Pod is Running")
        ax0.set_title(f"{nodes['deployments']} × {nodes['replicas']} Pods on {nodes['nodes']} real nodes "
                      f"(median of {nodes['rounds']}, min–max)", fontsize=10)
    else:
        ax0.axis("off")

    # 1. Bursts: one group per shape, a bar per IPAM (the before/after variant is in the markdown only).
    bursts = [b for b in r["bursts"] if not b.get("variant")]
    shapes = []
    for b in bursts:
        if b["shape"] not in shapes:
            shapes.append(b["shape"])
    width = 0.38
    for k, (nadipam, label, color) in enumerate([(False, "no webhook", "#9e9e9e"), (True, "nadipam", "#1f77b4")]):
        xs, ys = [], []
        for i, shape in enumerate(shapes):
            for b in bursts:
                if b["shape"] == shape and b["nadipam"] == nadipam:
                    xs.append(i + (k - 0.5) * width)
                    ys.append(b["wall_s"])
        bars = ax1.bar(xs, ys, width, label=label, color=color)
        ax1.bar_label(bars, fmt="%.1f s", fontsize=8)
    ax1.set_xticks(range(len(shapes)), [s.replace(" (", "\n(") for s in shapes], fontsize=8)
    ax1.set_ylabel("seconds until every Pod exists with its addresses")
    ax1.set_title(f"Burst of {doc['n']} Pods (Deployments × replicas)")
    ax1.legend()

    # 2. Whereabouts vs nadipam: wall time to N addresses, log scale.
    c = r["cni"]
    names = ["Whereabouts\n(ADD allocates)", "nadipam\n(create + ADD)"]
    walls = [c["whereabouts"]["wall_s"], c["nadipam"]["wall_s"]]
    bars = ax2.bar(names, walls, color=["#d62728", "#1f77b4"])
    ax2.bar_label(bars, fmt="%.1f s", fontsize=9)
    ax2.set_yscale("log")
    ax2.set_ylabel("seconds (log scale)")
    unfinished = "" if c["whereabouts"]["complete"] else " (Whereabouts stopped at its time limit)"
    ax2.set_title(f"{c['n']} addresses, concurrency {c['concurrency']}: {c['speedup']:.0f}× faster{unfinished}",
                  fontsize=10)

    # 3. Latency percentiles.
    rows = [("admission\n%d Pods/s" % s["target_rate"], s["admission"]["p50_ms"], s["admission"]["p99_ms"])
            for s in r["steady"]]
    sq = c["nadipam_sequential"]
    rows += [
        ("nadipam\nADD, 1\nat a time", sq["p50_ms"], sq["p99_ms"]),
        ("nadipam\nADD, %d\nat a time" % c["concurrency"], c["nadipam"]["add_p50_ms"], c["nadipam"]["add_p99_ms"]),
        ("whereabouts\nADD, %d\nat a time" % c["concurrency"], c["whereabouts"]["add_p50_ms"],
         c["whereabouts"]["add_p99_ms"]),
    ]
    xs = range(len(rows))
    b50 = ax3.bar([x - 0.2 for x in xs], [r_[1] for r_ in rows], 0.4, label="p50", color="#2ca02c")
    b99 = ax3.bar([x + 0.2 for x in xs], [r_[2] for r_ in rows], 0.4, label="p99", color="#ff7f0e")
    ax3.bar_label(b50, fmt="%.1f", fontsize=7)
    ax3.bar_label(b99, fmt="%.0f", fontsize=7)
    ax3.set_yscale("log")
    ax3.set_xticks(list(xs), [r_[0] for r_ in rows], fontsize=8)
    ax3.set_ylabel("milliseconds (log scale)")
    ax3.set_title("Latency")
    ax3.legend()

    # 4. Scale: RSS and admission p99 against the leases the Subnet held.
    sc = r.get("scale")
    if sc:
        pts = sc["points"]
        xs = [p["leases"] for p in pts]
        ax4.plot(xs, [p["rss_after_mib"] for p in pts], "o-", color="#1f77b4", label="RSS after the Pods (MiB)")
        ax4.plot(xs, [p["startup_s"] * 10 for p in pts], "s--", color="#2ca02c", label="start-up until ready (s × 10)")
        ax4.set_xlabel(f"leases in the Subnet ({sc['cidr']}, {sc['capacity']} addresses)")
        ax4.set_ylabel("MiB / s × 10")
        ax4b = ax4.twinx()
        ax4b.plot(xs, [p["admission"]["p99_ms"] for p in pts], "^:", color="#ff7f0e", label="admission p99 (ms)")
        ax4b.set_ylabel("admission p99 (ms)")
        ax4b.set_ylim(bottom=0)
        ax4.set_ylim(bottom=0)
        lines = ax4.get_legend_handles_labels()
        lines_b = ax4b.get_legend_handles_labels()
        ax4.legend(lines[0] + lines_b[0], lines[1] + lines_b[1], fontsize=8, loc="upper left")
        ax4.set_title("nadipam-server as the Subnet fills", fontsize=10)
    else:
        ax4.axis("off")

    m = r["machine"]
    fig.suptitle(f"nadipam benchmarks — {m['cpus']} CPUs, kube-apiserver {m['kubernetes']}, "
                 f"whereabouts {m['whereabouts']}, {doc['generated']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
