"""ESME's performance scenario against aidpost, measured further than ESME did.

ESME's test (``tests/performance`` there; ``docs/performance-tests``) runs one staff member
who sends ``start_chat`` every ``sci`` ms and never reads, and a loop that every ``cpi`` ms
signs a new participant up, asks for help and starts that participant's worker: connect to
the messenger, poll ``get_chats`` every ``smi`` ms (at most 10 times) until the chat is
there, then send a message every ``smi`` ms and read whatever arrives. The first error of
any kind ends the run; it reports the participants, the chats and the rate of messages
sent. This script does the same (same order of steps, same one-frame-per-poll reading,
same ten polls) with two differences, both reported:

* the staff socket reads: every participant message that reaches the staff member is
  counted and its end-to-end latency taken (the message carries its send time; sender and
  receiver are in this one process, one clock) — ESME's test measured neither;
* a run also ends, without error, at ``--max-participants`` or ``--max-seconds``, so that a
  run against a system that does not fail ends too.

Server: by default it starts its own ``aidpost serve --demo`` (one process, SQLite, the
in-memory bus: the embedded default) in a temporary directory, with the per-address HTTP
rate limit and the per-socket action limit lifted (every client here is 127.0.0.1, and the
staff member presses start 100 times a second) and the log level at WARNING.
``--base URL`` runs against a server or cluster that is already up (``aidpost cluster``
prints its URL); it must have the demo data (``aidpost demo``).

Output: one line per second while it runs (participants, chats, messages sent in the last
second, delivered to staff in the last second), then a summary: why it stopped, the
participants and chats then, the sent and delivered rates over the last 5 seconds (ESME's
figure is the plateau of the sent rate), the totals, latency p50/p99/max in ms, and the CPU
share of the server process and of this load generator (both on this machine's cores; when
the generator nears 100 % of a core it, not the server, is the limit).

Example::

    .venv/bin/python bench/esme_scenario.py --sci 10 --cpi 20 --smi 1000 --max-seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import websockets
from common import (
    PASSWORD,
    Server,
    bearer,
    client_cpu_seconds,
    expect,
    free_port,
    log,
    percentile,
    sign_in,
)

DEMO_PASSWORD = "demo-password-1234"
POLLS = 10  # ESME's participant asks for its chats at most this often


@dataclass
class Run:
    started: float = field(default_factory=time.monotonic)
    participants: int = 0
    chats: int = 0
    sent: Counter[int] = field(default_factory=Counter)  # second -> messages sent
    delivered: Counter[int] = field(default_factory=Counter)  # second -> reached staff
    latencies: list[float] = field(default_factory=list)
    staff_frames: Counter[str] = field(default_factory=Counter)  # other frames staff got
    stop_reason: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def second(self) -> int:
        return int(time.monotonic() - self.started)

    def stop(self, reason: str) -> None:
        if not self.done.is_set():
            self.stop_reason = reason
            self.done.set()

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://").replace("https://", "wss://") + "/messenger-api/connect"


async def connect(base: str, token: str) -> Any:
    ws = await websockets.connect(
        ws_url(base), open_timeout=45, max_size=2**22, ping_interval=None, compression=None
    )
    await ws.send(json.dumps({"Authorization": f"Bearer {token}"}))
    return ws


async def staff_member(base: str, token: str, sci: float, run: Run) -> None:
    """ESME's organizer: ``start_chat`` every ``sci`` ms; here it also reads and measures."""
    ws = await connect(base, token)

    async def press() -> None:
        frame = json.dumps({"type": "start_chat", "payload": ""})
        while not run.done.is_set():
            await asyncio.sleep(sci / 1000)
            await ws.send(frame)

    async def read() -> None:
        async for raw in ws:
            received = time.time_ns()
            if '"user_message"' not in raw:
                kind = raw[9:40].split('"')[0]
                run.staff_frames[kind] += 1
                continue
            frame = json.loads(raw)
            payload = frame.get("payload") or {}
            if frame.get("type") != "user_message" or payload.get("fromOrganizer"):
                continue
            content = str(payload.get("content", ""))
            stamp = content.rpartition(" t=")[2]
            if stamp.isdigit():
                run.delivered[run.second()] += 1
                run.latencies.append((received - int(stamp)) / 1e6)

    try:
        await asyncio.gather(press(), read())
    except Exception as exc:
        run.stop(f"staff socket: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def participant(base: str, token: str, number: int, smi: float, run: Run) -> None:
    """ESME's participant worker."""
    try:
        ws = await connect(base, token)
    except Exception as exc:
        run.stop(f"participant {number}: could not connect: {type(exc).__name__}: {exc}")
        return
    try:
        chat_id = None
        for _ in range(POLLS):
            await asyncio.sleep(smi / 1000)
            await ws.send(json.dumps({"type": "get_chats", "payload": ""}))
            frame = json.loads(await asyncio.wait_for(ws.recv(), 45))
            if frame.get("type") == "chats" and frame["payload"]["chats"]:
                chat_id = frame["payload"]["chats"][0]["id"]
                break
        if chat_id is None:
            run.stop(f"participant {number}: no chat after {POLLS} polls")
            return
        run.chats += 1

        async def read() -> None:
            async for _raw in ws:
                pass

        async def send() -> None:
            n = 0
            while not run.done.is_set():
                await asyncio.sleep(smi / 1000)
                n += 1
                message = f"connection {number}: message number {n} t={time.time_ns()}"
                payload = {"chatId": chat_id, "message": message}
                await ws.send(json.dumps({"type": "send_message", "payload": payload}))
                run.sent[run.second()] += 1

        reader = asyncio.create_task(read())
        await send()
        reader.cancel()
    except Exception as exc:
        if not run.done.is_set():
            run.stop(f"participant {number}: {type(exc).__name__}: {exc}")
    finally:
        with contextlib.suppress(Exception):
            await ws.close()


async def add_participants(
    http: httpx.AsyncClient, base: str, event_id: int, args: argparse.Namespace, run: Run
) -> None:
    """ESME's loop: wait ``cpi``, sign up, ask for help, start the worker; one at a time."""
    tag = uuid.uuid4().hex[:8]
    while not run.done.is_set():
        await asyncio.sleep(args.cpi / 1000)
        if run.participants >= args.max_participants:
            run.stop(f"reached --max-participants {args.max_participants} (no error)")
            return
        n = run.participants + 1
        try:
            body = {"email": f"participant_{tag}_{n}@performance.example", "password": PASSWORD,
                    "confirmPassword": PASSWORD, "phoneNumber": "+48100200300"}  # fmt: skip
            r = await http.post("/participant-api/auth/sign-up", json=body)
            token = expect(r, 201, "sign up")["token"]
            ask = {"eventId": event_id, "description": "Performance test chat request"}
            r = await http.post("/participant-api/chat-requests", json=ask, headers=bearer(token))
            expect(r, 200, "chat request")
        except Exception as exc:
            run.stop(f"participant {n}: {exc}")
            return
        run.spawn(participant(base, token, n, args.smi, run))
        run.participants += 1


async def progress(run: Run, max_seconds: float) -> None:
    last = -1
    while not run.done.is_set():
        await asyncio.sleep(0.25)
        now = run.second()
        if now != last and now > 0:
            last = now
            log(
                f"t={now:4d}s participants={run.participants} chats={run.chats} "
                f"sent/s={run.sent[now - 1]} delivered/s={run.delivered[now - 1]}"
            )
        if time.monotonic() - run.started >= max_seconds:
            run.stop(f"reached --max-seconds {max_seconds:.0f} (no error)")


def rate(counter: Counter[int], end: int, seconds: int = 5) -> float:
    window = [counter[s] for s in range(max(0, end - seconds), end)]
    return sum(window) / len(window) if window else math.nan


async def scenario(base: str, args: argparse.Namespace, server: Server | None) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=45) as http:
        staff_token = await sign_in(
            http, "organizer-api", "support@demo.aidpost.example", DEMO_PASSWORD
        )
        probe = await sign_in(
            http, "participant-api", "participant@demo.aidpost.example", DEMO_PASSWORD
        )
        events = expect(
            await http.get("/participant-api/events", headers=bearer(probe)), 200, "events"
        )
        if not events:
            raise RuntimeError("no event to ask help at: seed the demo data")
        event_id = int(events[0]["id"])
        run = Run()
        server_cpu0 = server.cpu_seconds() if server else math.nan
        client_cpu0 = client_cpu_seconds()
        run.spawn(staff_member(base, staff_token, args.sci, run))
        run.spawn(add_participants(http, base, event_id, args, run))
        run.spawn(progress(run, args.max_seconds))
        await run.done.wait()
        end = run.second()
        elapsed = time.monotonic() - run.started
        server_cpu = (server.cpu_seconds() - server_cpu0) / elapsed if server else math.nan
        client_cpu = (client_cpu_seconds() - client_cpu0) / elapsed
        for task in list(run.tasks):
            task.cancel()
        await asyncio.gather(*run.tasks, return_exceptions=True)
    ordered = sorted(run.latencies)
    return {
        "sci_ms": args.sci,
        "cpi_ms": args.cpi,
        "smi_ms": args.smi,
        "stopped": run.stop_reason,
        "seconds": round(elapsed, 1),
        "participants": run.participants,
        "active_chats": run.chats,
        "sent_per_s_last5": round(rate(run.sent, end), 1),
        "delivered_per_s_last5": round(rate(run.delivered, end), 1),
        "sent_total": sum(run.sent.values()),
        "delivered_total": sum(run.delivered.values()),
        "latency_ms_p50": round(percentile(ordered, 0.50), 1),
        "latency_ms_p99": round(percentile(ordered, 0.99), 1),
        "latency_ms_max": round(ordered[-1], 1) if ordered else math.nan,
        "staff_other_frames": dict(run.staff_frames),
        "server_cpu_share": round(server_cpu, 2),
        "client_cpu_share": round(client_cpu, 2),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sci", type=float, default=10, help="start chat interval, ms")
    parser.add_argument("--cpi", type=float, default=20, help="create participant interval, ms")
    parser.add_argument("--smi", type=float, default=1000, help="send message interval, ms")
    parser.add_argument("--max-participants", type=int, default=100_000)
    parser.add_argument("--max-seconds", type=float, default=120)
    parser.add_argument("--base", help="an aidpost that is up (with demo data); default: own")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    server = None
    workdir = None
    try:
        if args.base:
            base = args.base.rstrip("/")
        else:
            workdir = Path(tempfile.mkdtemp(prefix="aidpost-esme-"))
            env = {
                "AIDPOST_MESSENGER_ACTIONS_PER_SECOND": "100000",
                "AIDPOST_MESSENGER_ACTIONS_BURST": "100000",
                "AIDPOST_LOG_LEVEL": "WARNING",
                "AIDPOST_MAILER_TRANSPORT_URL": "memory:",
                **({"PYTHONASYNCIODEBUG": "1"} if os.environ.get("BENCH_ASYNCIO_DEBUG") else {}),
            }
            server = Server(free_port(), workdir, env)
            server.start()
            base = server.base_url

            async def ready() -> None:
                async with httpx.AsyncClient(base_url=base) as http:
                    assert server is not None
                    await server.wait_ready(http)

            asyncio.run(ready())
            time.sleep(2)  # demo data seeded after start
        result = asyncio.run(scenario(base, args, server))
        if server is not None:
            result["server_rss_mib"] = round(
                int(server.proc_status().get("VmHWM", "0 kB").split()[0]) / 1024, 1
            )
        print(json.dumps(result, indent=2))
        if server is not None:
            problems = [
                line
                for line in server.log_path.read_text(errors="replace").splitlines()
                if '"level": "error"' in line or '"level": "warning"' in line
            ]
            log(f"server log: {len(problems)} warnings and errors; the last ones:")
            for line in problems[-8:]:
                log(line[:600] + " ... " + line[-1500:])
        return 0
    finally:
        if server is not None:
            server.stop()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
