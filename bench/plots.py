"""Plots of ``bench/relay.py``'s results, one line per system, and the comparison issue #5
asks for. Runs in ``bench/.venv`` (matplotlib, Agg: no display needed).

Reads the given result files, or by default the newest ``bench/results/relay-<system>-*.json``
of each system, and writes into ``--out`` (default ``docs/img``):

* ``relay-delivered.png``: delivered messages per second against the offered rate;
* ``relay-latency.png``: p50 (dashed) and p99 (solid) latency against the offered rate, on a
  log scale, with the p99 limit drawn.

It also prints each system's capacity, the highest delivered rate of a step whose p99 was
within the limit and which lost nothing, and aidpost's capacity as a multiple of each
peer's (the goal: at least 3x).

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


def newest(system: str) -> Path | None:
    found = sorted(RESULTS.glob(f"relay-{system}-*.json"))
    return found[-1] if found else None


def load(paths: list[Path]) -> dict[str, dict[str, Any]]:
    """The results by system; of two files for one system the later one given wins."""
    if not paths:
        paths = [p for p in (newest(s) for s in SYSTEMS) if p is not None]
    runs = {}
    for path in paths:
        document = json.loads(path.read_text())
        document["path"] = str(path)
        runs[document["system"]] = document
    return runs


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
    capacities = {system: capacity(run, limit_ms) for system, run in runs.items()}
    for system, value in capacities.items():
        run = runs[system]
        pairs = run["options"]["pairs"]
        print(f"{system:<9} {value:>8.0f} msg/s within p99 {limit_ms:g} ms ({pairs} pairs; "
              f"{run['path']})")  # fmt: skip
    ours = capacities.get("aidpost")
    for system, value in capacities.items():
        if system != "aidpost" and ours is not None and value:
            print(f"aidpost / {system}: {ours / value:.2f}x (goal: at least 3x)")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", nargs="*", type=Path, help="default: newest per system")
    parser.add_argument("--out", type=Path, default=BENCH.parent / "docs" / "img")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = load(args.results)
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
