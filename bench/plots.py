"""Plots of ``bench/relay.py``'s results, one line per system, and the comparison issue #5
asks for. Runs in ``bench/.venv`` (matplotlib, Agg: no display needed).

Reads the given result files, or by default the newest ``--runs`` (3) result files
``bench/results/relay-<system>-*.json`` of each system; each figure of a step is the median
over the runs that ran that rate. Writes into ``--out`` (default ``docs/img``):

* ``relay-delivered.png``: delivered messages per second against the offered rate;
* ``relay-latency.png``: p50 (dashed) and p99 (solid) latency against the offered rate, on a
  log scale, with the p99 limit drawn.

It also prints each system's capacity (per run, the highest delivered rate of a step whose
p99 was within the limit and which lost nothing; then the median over the runs), aidpost's
capacity as a multiple of each peer's (the goal: at least 3x), and the table of medians
in Markdown for docs/performance.md.

    bench/.venv/bin/python bench/plots.py
    bench/.venv/bin/python bench/plots.py bench/results/relay-aidpost-20261202T120000Z.json ...
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the backend

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
SYSTEMS = ("aidpost", "channels", "socketio")
LABELS = {
    "aidpost": "aidpost (storage on)",
    "channels": "Django Channels + channels_redis (daphne)",
    "socketio": "python-socketio + Redis manager (uvicorn)",
}


def newest(system: str, count: int) -> list[Path]:
    return sorted(RESULTS.glob(f"relay-{system}-*.json"))[-count:]


def median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def load(paths: list[Path], count: int) -> dict[str, dict[str, Any]]:
    """The runs by system: the files given, or the newest ``count`` of each system."""
    if not paths:
        paths = [p for s in SYSTEMS for p in newest(s, count)]
    runs: dict[str, dict[str, Any]] = {}
    for path in paths:
        document = json.loads(path.read_text())
        document["path"] = str(path)
        runs.setdefault(document["system"], {"runs": []})["runs"].append(document)
    for merged in runs.values():
        merged["steps"] = merge_steps(merged["runs"])
        merged["options"] = merged["runs"][-1]["options"]
    return runs


def merge_steps(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One step per offered rate: the median of each figure over the runs that ran it (a
    sweep stops after its latency broke, so the highest rates may have fewer runs)."""
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for document in documents:
        for step in document["steps"]:
            # By the rate asked for: the measured offered rate differs by a message or two.
            by_rate.setdefault(step.get("rate_target", step["offered_per_s"]), []).append(step)
    steps = []
    for rate in sorted(by_rate):
        found = by_rate[rate]

        def mid(*keys: str, found: list[dict[str, Any]] = found) -> float | None:
            values = []
            for step in found:
                value: Any = step
                for key in keys:
                    value = value.get(key) if isinstance(value, dict) else None
                if value is not None:
                    values.append(float(value))
            return median(values) if values else None

        steps.append(
            {
                "offered_per_s": rate,
                "runs": len(found),
                "delivered_per_s": mid("delivered_per_s"),
                "latency_ms": {k: mid("latency_ms", k) for k in ("p50", "p99", "max")},
                "cpu_us_per_delivery": mid("cpu_us_per_delivery", "servers_net_of_idle"),
                "gateway_cpu_us_per_frame": mid("gateway_cpu_us_per_frame"),
                "machine_busy_share": mid("machine_busy_share"),
                "lost": sum(s["lost"] for s in found),
                "duplicates": sum(s["duplicates"] for s in found),
                "reorders": sum(s["reorders"] for s in found),
            }
        )
    return steps


def series(run: dict[str, Any], *keys: str) -> tuple[list[float], list[float | None]]:
    offered, values = [], []
    for step in run["steps"]:
        value: Any = step
        for key in keys:
            value = value[key]
        offered.append(step["offered_per_s"])
        values.append(value)
    return offered, values


def capacity(run: dict[str, Any], limit_ms: float) -> float:
    """The highest delivered rate of a step within the p99 limit that lost nothing."""
    ok = [
        s["delivered_per_s"]
        for s in run["steps"]
        if s["lost"] == 0 and s["latency_ms"]["p99"] is not None
        and s["latency_ms"]["p99"] <= limit_ms
    ]  # fmt: skip
    return max(ok, default=0.0)


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_delivered(runs: dict[str, dict[str, Any]], out: Path) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, run in runs.items():
        offered, delivered = series(run, "delivered_per_s")
        ax.plot(offered, delivered, marker="o", label=LABELS.get(system, system))
    top = max((s["offered_per_s"] for r in runs.values() for s in r["steps"]), default=1.0)
    ax.plot([0, top], [0, top], color="grey", linewidth=0.8, linestyle=":", label="offered")
    ax.set_xlabel("offered messages/s (all sockets)")
    ax.set_ylabel("delivered messages/s")
    ax.set_title("Chat relay: delivered against offered")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return save(fig, out / "relay-delivered.png")


def plot_latency(runs: dict[str, dict[str, Any]], out: Path, limit_ms: float) -> Path:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system, run in runs.items():
        offered, p99 = series(run, "latency_ms", "p99")
        _, p50 = series(run, "latency_ms", "p50")
        (line,) = ax.plot(offered, p99, marker="o", label=f"{LABELS.get(system, system)} p99")
        ax.plot(offered, p50, linestyle="--", color=line.get_color(), label=f"{system} p50")
    ax.axhline(limit_ms, color="grey", linewidth=0.8, linestyle=":")
    ax.set_yscale("log")
    ax.set_xlabel("offered messages/s (all sockets)")
    ax.set_ylabel("latency, ms")
    ax.set_title("Chat relay: latency against offered")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    return save(fig, out / "relay-latency.png")


def report(runs: dict[str, dict[str, Any]], limit_ms: float) -> None:
    """Each system's capacity (the median over its runs of each run's own) and the table."""
    capacities = {}
    for system, merged in runs.items():
        each = [capacity(document, limit_ms) for document in merged["runs"]]
        capacities[system] = median(each)
        print(f"{system:<9} {capacities[system]:>8.0f} msg/s within p99 {limit_ms:g} ms "
              f"(median of {len(each)} runs: {', '.join(f'{c:.0f}' for c in each)}; "
              f"{merged['options']['pairs']} pairs)")  # fmt: skip
    ours = capacities.get("aidpost")
    for system, value in capacities.items():
        if system != "aidpost" and ours is not None and value:
            print(f"aidpost / {system}: {ours / value:.2f}x (goal: at least 3x)")
    print()
    print(
        "| system | offered/s | runs | delivered/s | p50 ms | p99 ms | max ms "
        "| server CPU µs/msg | gateway µs/frame | machine busy | lost | dup | reordered |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")

    def cell(value: float | None, digits: int = 0) -> str:
        return "-" if value is None else f"{value:,.{digits}f}"

    for system, merged in runs.items():
        for s in merged["steps"]:
            latency = s["latency_ms"]
            print(f"| {system} | {s['offered_per_s']:,.0f} | {s['runs']} "
                  f"| {cell(s['delivered_per_s'])} | {cell(latency['p50'], 1)} "
                  f"| {cell(latency['p99'], 1)} | {cell(latency['max'], 1)} "
                  f"| {cell(s['cpu_us_per_delivery'])} | {cell(s['gateway_cpu_us_per_frame'])} "
                  f"| {cell(s['machine_busy_share'], 2)} | {s['lost']} | {s['duplicates']} "
                  f"| {s['reorders']} |")  # fmt: skip


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "results", nargs="*", type=Path, help="default: the newest --runs of each system"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs per system, by default")
    parser.add_argument("--out", type=Path, default=BENCH.parent / "docs" / "img")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = load(args.results, args.runs)
    if not runs:
        print("no results: run bench/relay.py first", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for path in (plot_delivered(runs, args.out), plot_latency(runs, args.out, args.p99_limit_ms)):
        print(f"wrote {path}")
    report(runs, args.p99_limit_ms)
    return 0


if __name__ == "__main__":
    sys.exit(main())
