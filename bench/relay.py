"""Chat relay against Python peers (issue #5, item 2): the same workload on aidpost's
messenger (storage on), Django Channels with channels_redis under daphne, and
python-socketio with its Redis manager under uvicorn.

The workload: ``--pairs`` pairs of clients; the two sides of a pair are connected to
different server processes of the system (two per system), and each side sends 100-character
messages to the other at a fixed rate, whatever it receives (open loop). ``--rates`` are the
total offered rates in messages per second, all sockets of both directions together (each
socket sends ``rate / (2 * pairs)``); one step per rate, each ``--warmup`` seconds not
measured, then ``--seconds`` measured, then ``--drain`` seconds of silence for late
messages. The sweep stops after the step where the p99 latency passed ``--p99-limit-ms``
for the second step running, or where a message was lost (``--no-stop`` runs every rate).

Per step: offered and delivered messages per second (sent in, and arrived in, the measured
window), latency p50/p99/max of the window's messages (send to arrival, one machine's
monotonic clock), loss (a window message not arrived by the end of the drain),
duplicates, reorderings, and CPU: the system's server processes' µs per delivered message,
Redis's and PostgreSQL's apart (PostgreSQL: every process of the ``postgres`` user), the load
generator's, and the whole machine's busy share. A delivery is a message arriving at the
other side of its pair; aidpost's echoes to the sender's own socket are counted apart and
are not deliveries. For aidpost also the gateways' CPU per frame they deliver (deliveries
and echoes), to set beside ``bench/floor.py``'s loopback write.

The load generator runs ``--workers`` processes (relay_load.py), each with its own event
loop and a share of the pairs; this process starts the system, makes aidpost's chats,
samples the servers' CPU at the window's edges and merges what the workers report. It needs
``bench/.venv`` (``bench/setup``) and never imports aidpost; aidpost's processes run from
the project's ``.venv`` (``bench/relay_cluster.py``). Results: a table on stdout and
``bench/results/relay-<system>-<UTC time>.json``; the servers' logs are kept only with
``--keep-logs``.

The table's columns: ``offered/s`` and ``deliv/s``; latency ``p50``, ``p99``, ``max``;
``µs/dlv``, the servers' CPU per delivery (aidpost: gateways and consumers; its auth,
organizer and participant, idle here, are in the JSON as "other"), and ``net`` of what the
servers spend idle (measured for ``--idle`` seconds before the steps, every socket open);
``redis`` and ``pg``, their CPU per delivery (both are shared with whatever else runs on the
machine); ``gw/frm``, aidpost's gateways' CPU per frame written; ``gen``, the load
generator's cores; ``busy``, the machine's busy share of all cores; ``else``, busy cores
nobody above accounts for (other work on the machine: when it is not near 0 the step was not
measured alone); ``cmt``, PostgreSQL transactions committed per delivery (the inverse of
the consumers' messages per batch); ``lost``, ``dup``, ``reord``; ``skip``, sends the
generator dropped from its schedule.

    bench/setup
    bench/.venv/bin/python bench/relay.py --system channels --pairs 20 --rates 200,400,800
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import log, percentile
from relay_load import PairSpec, StepPlan, WorkerSpec, worker_main
from relay_systems import ROOT, CpuProbe, System, make_system

RESULTS = Path(__file__).resolve().parent / "results"
COUNTS = ("sent_window", "sent_total", "skipped", "send_errors", "delivered_window",
          "received_of_window", "lost", "duplicates", "reorders", "echoes_window", "stale",
          "other_frames", "closed_sockets")  # fmt: skip
START_DELAY_S = 0.5
WORKER_TIMEOUT_S = 300.0


# -- the workers -------------------------------------------------------------------------------


class Workers:
    """The load generator's processes, each with a share of the pairs."""

    def __init__(self, system: System, pairs: list[PairSpec], count: int) -> None:
        context = multiprocessing.get_context("spawn")
        self.shares = [tuple(pairs[i::count]) for i in range(count) if pairs[i::count]]
        self.pipes: list[Connection] = []
        self.processes: list[SpawnProcess] = []
        for share in self.shares:
            parent, child = context.Pipe()
            spec = WorkerSpec(system.name, system.bases, share)
            process = context.Process(target=worker_main, args=(child, spec), daemon=True)
            process.start()
            child.close()
            self.pipes.append(parent)
            self.processes.append(process)
        self.total = sum(len(share) for share in self.shares)

    def answers(self) -> list[dict[str, Any]]:
        answers = []
        for pipe in self.pipes:
            if not pipe.poll(WORKER_TIMEOUT_S):
                raise TimeoutError("a load generator worker did not answer")
            answer: dict[str, Any] = pipe.recv()
            if "error" in answer:
                raise RuntimeError(f"load generator worker failed:\n{answer['error']}")
            answers.append(answer)
        return answers

    def plan(self, step: int, rate: float, args: argparse.Namespace) -> list[StepPlan]:
        start = time.monotonic_ns() + int(START_DELAY_S * 1e9)
        timing = (start, args.warmup, args.seconds, args.drain)
        return [StepPlan(step, rate * len(share) / self.total, *timing) for share in self.shares]

    def send(self, plans: list[StepPlan]) -> None:
        for pipe, plan in zip(self.pipes, plans, strict=True):
            pipe.send(plan)

    def stop(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(None)
        for process in self.processes:  # one between steps exits at once; one in a step not
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join(timeout=5)


# -- one step ----------------------------------------------------------------------------------


def sleep_until(moment_ns: int) -> None:
    delay = (moment_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


def run_step(
    workers: Workers,
    probe: CpuProbe,
    step: int,
    rate: float,
    args: argparse.Namespace,
    idle: float,
) -> dict[str, Any]:
    plans = workers.plan(step, rate, args)
    workers.send(plans)
    begin, end = plans[0].window
    sleep_until(begin)
    before = probe.sample()
    sleep_until(end)
    cpu = CpuProbe.delta(before, probe.sample())
    return summarize(step, rate, args.seconds, workers.answers(), cpu, idle)


def rounded(value: float, digits: int = 1) -> float | None:
    return None if math.isnan(value) else round(value, digits)


def per_delivery_us(cpu_s: float, deliveries: int) -> float | None:
    return rounded(cpu_s * 1e6 / deliveries) if deliveries else None


# What CpuProbe.delta gives that is not a process's CPU: the machine's, and a count.
NOT_CPU = ("machine_busy", "machine_total", "postgres_commits")
NOT_SERVERS = ("other", "redis", "postgres", *NOT_CPU)


def servers_cpu(cpu: dict[str, float]) -> float:
    """The system's relaying processes (aidpost: gateways and consumers; its auth, organizer
    and participant, idle during the steps, are "other")."""
    return sum(v for k, v in cpu.items() if k not in NOT_SERVERS)


def measure_idle(probe: CpuProbe, seconds: float) -> dict[str, float]:
    """Cores each role spends with every socket open and nothing sent."""
    before = probe.sample()
    time.sleep(seconds)
    cpu = CpuProbe.delta(before, probe.sample())
    kept = ("machine_busy",)  # the machine's busy cores, beside each role's
    cores = {k: v / seconds for k, v in cpu.items() if k in kept or k not in NOT_CPU}
    cores["servers"] = servers_cpu(cpu) / seconds
    return {k: round(v, 3) for k, v in cores.items() if not math.isnan(v)}


def cpu_figures(
    cpu: dict[str, float], delivered: int, generator_s: float, seconds: float, idle: float
) -> dict[str, Any]:
    """CPU seconds by role and per delivery; ``idle``: the servers' idle cores."""
    roles = {k: v for k, v in cpu.items() if k not in NOT_CPU}
    servers = servers_cpu(cpu)
    stores = sum(v for k, v in roles.items() if k in ("redis", "postgres") and not math.isnan(v))
    measured = sum(v for v in roles.values() if not math.isnan(v)) + generator_s
    return {
        "cpu_s": {k: rounded(v, 3) for k, v in roles.items()},
        "cpu_us_per_delivery": {
            "servers": per_delivery_us(servers, delivered),
            "servers_net_of_idle": per_delivery_us(servers - idle * seconds, delivered),
            "servers_redis_postgres": per_delivery_us(servers + stores, delivered),
            **{k: per_delivery_us(v, delivered) for k, v in roles.items()},
        },
        "generator_cores": round(generator_s / seconds, 2),
        "machine_busy_share": rounded(cpu["machine_busy"] / cpu["machine_total"], 3),
        # Busy cores not accounted for above: other work on the machine (or the kernel).
        "unaccounted_cores": round((cpu["machine_busy"] - measured) / seconds, 2),
    }


def summarize(
    step: int,
    rate: float,
    seconds: float,
    answers: list[dict[str, Any]],
    cpu: dict[str, float],
    idle: float,
) -> dict[str, Any]:
    counts = {key: sum(int(a[key]) for a in answers) for key in COUNTS}
    latencies = sorted(ns / 1e6 for a in answers for ns in a["latencies_ns"])
    delivered = counts["delivered_window"]
    generator_s = sum(a["cpu_s"] for a in answers)
    result: dict[str, Any] = {
        "step": step,
        "rate_target": rate,
        "offered_per_s": round(counts["sent_window"] / seconds, 1),
        "delivered_per_s": round(delivered / seconds, 1),
        "latency_ms": {
            "p50": rounded(percentile(latencies, 0.50), 2),
            "p90": rounded(percentile(latencies, 0.90), 2),
            "p99": rounded(percentile(latencies, 0.99), 2),
            "max": rounded(latencies[-1], 2) if latencies else None,
        },
        **counts,
        **cpu_figures(cpu, delivered, generator_s, seconds, idle),
    }
    commits = cpu.get("postgres_commits", math.nan)
    if not math.isnan(commits) and delivered:
        # Well below 1 when the consumers store many messages per transaction.
        result["postgres_commits_per_delivery"] = round(commits / delivered, 3)
    if "gateways" in cpu:
        frames = delivered + counts["echoes_window"]
        result["gateway_cpu_us_per_frame"] = per_delivery_us(cpu["gateways"], frames)
    return result


# -- the sweep ---------------------------------------------------------------------------------


HEADER = (
    f"{'offered/s':>10} {'deliv/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
    f"{'µs/dlv':>7} {'net':>6} {'redis':>6} {'pg':>6} {'gw/frm':>6} {'gen':>5} {'busy':>5} "
    f"{'else':>5} {'cmt':>5} {'lost':>6} {'dup':>4} {'reord':>5} {'skip':>5}"
)


def row(r: dict[str, Any]) -> str:
    def num(value: float | None, width: int, digits: int = 1) -> str:
        return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"

    per = r["cpu_us_per_delivery"]
    lat = r["latency_ms"]
    return (
        f"{r['offered_per_s']:>10.0f} {r['delivered_per_s']:>9.0f} {num(lat['p50'], 8)} "
        f"{num(lat['p99'], 8)} {num(lat['max'], 8)} {num(per['servers'], 7, 0)} "
        f"{num(per['servers_net_of_idle'], 6, 0)} "
        f"{num(per.get('redis'), 6, 0)} {num(per.get('postgres'), 6, 0)} "
        f"{num(r.get('gateway_cpu_us_per_frame'), 6, 0)} {r['generator_cores']:>5.2f} "
        f"{num(r['machine_busy_share'], 5, 2)} {r['unaccounted_cores']:>5.2f} "
        f"{num(r.get('postgres_commits_per_delivery'), 5, 2)} "
        f"{r['lost']:>6} {r['duplicates']:>4} "
        f"{r['reorders']:>5} {r['skipped']:>5}"
    )


def broke(results: list[dict[str, Any]], limit_ms: float) -> str:
    """Why the sweep stops after the last step, or ''."""
    last = results[-1]
    if last["lost"]:
        return f"{last['lost']} messages lost"
    over = [(r["latency_ms"]["p99"] or math.inf) > limit_ms for r in results[-2:]]
    if len(over) == 2 and all(over):
        return f"p99 over {limit_ms:g} ms for two steps"
    return ""


def sweep(system: System, args: argparse.Namespace, run: dict[str, Any]) -> str:
    """Measure the idle servers, then run the steps into ``run``; why the sweep ended."""
    pairs = asyncio.run(system.prepare(args.pairs))
    workers = Workers(system, pairs, args.workers)
    try:
        ready = workers.answers()
        log(f"{sum(a['ready'] for a in ready)} sockets open in {len(ready)} workers")
        probe = system.probe()
        run["idle_cores"] = idle = measure_idle(probe, args.idle)
        log(f"idle, every socket open: {idle}")
        results = run["steps"]
        print(HEADER, flush=True)
        for step, rate in enumerate(args.rates):
            results.append(run_step(workers, probe, step, rate, args, idle["servers"]))
            print(row(results[-1]), flush=True)
            reason = broke(results, args.p99_limit_ms)
            if reason and not args.no_stop:
                return reason
        return "every rate run"
    finally:
        workers.stop()


def write_json(system: System, args: argparse.Namespace, run: dict[str, Any], why: str) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS / f"relay-{system.name}-{stamp}.json"
    options = {k: v for k, v in vars(args).items() if k not in ("aidpost_python",)}
    document = {
        "benchmark": "relay",
        "system": system.name,
        "time": stamp,
        "options": options,
        "versions": {"python": platform.python_version(), **system.versions()},
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "stopped": why,
        **run,
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    return path


def rates(text: str) -> list[float]:
    values = [float(r) for r in text.split(",")]
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError("rates are positive messages per second")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--system", choices=("aidpost", "channels", "socketio"), required=True)
    parser.add_argument("--pairs", type=int, default=20)
    parser.add_argument(
        "--rates",
        type=rates,
        default=[200.0, 400.0, 800.0],
        help="total offered messages per second, all sockets together; one step each",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured, per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="not measured, per step")
    parser.add_argument("--drain", type=float, default=3.0, help="after each step")
    parser.add_argument("--idle", type=float, default=5.0, help="idle CPU measured first")
    parser.add_argument("--workers", type=int, default=2, help="load generator processes")
    parser.add_argument("--p99-limit-ms", type=float, default=100.0)
    parser.add_argument("--no-stop", action="store_true", help="run every rate")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="no database")
    parser.add_argument("--aidpost-consumers", type=int, default=2)
    parser.add_argument("--aidpost-python", type=Path, default=ROOT / ".venv" / "bin" / "python")
    parser.add_argument("--keep-logs", action="store_true")
    return parser.parse_args(argv)


def stop_on_sigterm() -> None:
    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stop_on_sigterm()
    logs = Path(tempfile.mkdtemp(prefix=f"relay-{args.system}-"))
    options = {"python": args.aidpost_python, "consumers": args.aidpost_consumers}
    system = make_system(args.system, args.redis, logs, **options)
    run: dict[str, Any] = {"idle_cores": {}, "steps": []}
    why = "interrupted"
    try:
        log(f"starting {args.system} (logs in {logs})")
        system.start()
        why = sweep(system, args, run)
    finally:
        log(f"stopping {args.system}")
        system.stop()
        if not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        if run["steps"]:  # what was measured, even when interrupted
            path = write_json(system, args, run, why)
            log(f"stopped: {why}; results in {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
