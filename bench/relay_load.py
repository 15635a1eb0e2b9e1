"""The load generator's worker for ``bench/relay.py``: the client sockets of some pairs,
sending on a fixed schedule and recording what arrives. Runs in ``bench/.venv`` (no aidpost
imports); ``relay.py`` starts ``--workers`` of these processes, each with its own event loop
(uvloop when installed), and merges what they report.

A worker holds both sides of each of its pairs (side ``a`` on the system's first server
process, side ``b`` on the second), so the sender and the receiver of a message are in one
process and its latency is one clock's difference (``time.monotonic_ns``, which is also one
clock across processes on Linux).

Every message's content is exactly 100 characters: step, pair, sending side, sequence
number (per sender and step, from 0) and send time in ns, padded with dots. How each system
carries it:

* aidpost: ESME's protocol, ``send_message {chatId, message}`` in, ``user_message`` out
  (side ``a`` is the chat's participant, side ``b`` its staff member). aidpost also sends a
  ``user_message`` back to the sender's own sockets: those echoes are counted apart, never as
  deliveries;
* Channels: the content is the text frame, both ways;
* python-socketio: Engine.IO v4 / Socket.IO v5 framing written here over a plain WebSocket
  (``40`` to join the default namespace, ``42["msg","..."]`` events, ``3`` to the server's
  ``2`` pings) instead of python-socketio's client, which needs aiohttp and costs more per
  message.

Sending is open loop: the worker wakes when its next message is due (at most once a ms) and
sends what its share of the step's rate makes due by then, round robin over its sockets,
whatever has arrived. When it falls behind by more
than 100 ms of sends the excess is skipped (counted), so the offered rate it reports is the
one it achieved.

Per step (messages of another step are counted as stale and otherwise ignored): messages
sent in the measured window (after the warm-up) and how many of them arrived by the end of
the drain (the rest are lost), their latencies, arrivals within the window (the delivered
rate), duplicates (a sequence number seen twice), reorderings (one arriving after a higher
one from the same sender), echoes, and the worker's own CPU time over the window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection

SIZE = 100
TICK_S = 0.001
MAX_BACKLOG_S = 0.1
CONNECT_AT_ONCE = 20  # daphne listens with a backlog of 50
OPEN_TIMEOUT_S = 60.0


# -- the message -------------------------------------------------------------------------------


def content(step: int, pair: int, side: str, seq: int, sent_ns: int) -> str:
    head = f"{step:04d} {pair:06d} {side} {seq:09d} {sent_ns:020d} "
    return head + "." * (SIZE - len(head))


def sender_key(pair: int, side: str) -> int:
    return pair * 2 + (side == "b")


# -- what is sent ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PairSpec:
    """One pair: its number and, for aidpost, the chat and each side's token."""

    pair: int
    chat_id: str = ""
    tokens: tuple[str, str] = ("", "")


@dataclass(frozen=True)
class WorkerSpec:
    system: str
    bases: tuple[str, str]  # ws://host:port of side a's server and of side b's
    pairs: tuple[PairSpec, ...]


@dataclass(frozen=True)
class StepPlan:
    step: int
    rate: float  # this worker's messages per second, all its sockets together
    start_ns: int
    warmup_s: float
    seconds: float
    drain_s: float

    @property
    def window(self) -> tuple[int, int]:
        begin = self.start_ns + int(self.warmup_s * 1e9)
        return begin, begin + int(self.seconds * 1e9)


# -- one socket per side -----------------------------------------------------------------------


class Side:
    """One client socket; subclasses know the system's framing."""

    def __init__(self, spec: PairSpec, side: str, base: str) -> None:
        self.pair = spec.pair
        self.side = side
        self.spec = spec
        self.base = base
        self.key = sender_key(spec.pair, side)
        self.ws: ClientConnection | None = None
        self.seq = 0
        self.closed = ""

    def url(self) -> str:
        raise NotImplementedError

    async def handshake(self, ws: ClientConnection) -> None:
        """Whatever the system needs before the socket relays."""

    def frame(self, text: str) -> str:
        return text

    def unwrap(self, raw: str) -> str | None:
        """The relayed content of a received frame; None for any other frame."""
        return raw

    def reply(self, raw: str) -> str | None:
        """What to answer to a frame that is not a message (pings)."""
        return None

    async def open(self) -> None:
        ws = await websockets.connect(
            self.url(),
            open_timeout=OPEN_TIMEOUT_S,
            compression=None,
            max_size=2**20,
            ping_interval=None,
        )
        await self.handshake(ws)
        self.ws = ws

    async def send(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(self.frame(text))


class AidpostSide(Side):
    """ESME's messenger protocol; side a is the participant, b the staff member."""

    CONTENT = '"content":"'

    def url(self) -> str:
        return self.base + "/messenger-api/connect"

    async def handshake(self, ws: ClientConnection) -> None:
        token = self.spec.tokens[self.side == "b"]
        await ws.send(json.dumps({"Authorization": f"Bearer {token}"}))
        await ws.send(json.dumps({"type": "get_chats", "payload": ""}))
        async with asyncio.timeout(OPEN_TIMEOUT_S):  # authorized once it answers
            while json.loads(await ws.recv()).get("type") != "chats":
                pass
        self.prefix = (
            '{"type":"send_message","payload":{"chatId":"' + self.spec.chat_id + '","message":"'
        )

    def frame(self, text: str) -> str:
        return self.prefix + text + '"}}'

    def unwrap(self, raw: str) -> str | None:
        # Our content has nothing JSON escapes, so it stands verbatim in the frame; finding it
        # costs the generator less than decoding every frame.
        if '"user_message"' not in raw:
            return None
        at = raw.find(self.CONTENT)
        if at < 0:
            return None
        text = raw[at + len(self.CONTENT) : at + len(self.CONTENT) + SIZE + 1]
        # Ours end there; anything else (the help request's first message) is not a message.
        return text[:SIZE] if text.endswith('"') else None


class ChannelsSide(Side):
    def url(self) -> str:
        return f"{self.base}/relay/{self.pair}/{self.side}"


class SocketIOSide(Side):
    """Socket.IO v5 over Engine.IO v4 on a WebSocket: the default namespace, ``msg`` events."""

    EVENT = '42["msg","'

    def url(self) -> str:
        query = f"EIO=4&transport=websocket&pair={self.pair}&side={self.side}"
        return f"{self.base}/socket.io/?{query}"

    async def handshake(self, ws: ClientConnection) -> None:
        async with asyncio.timeout(OPEN_TIMEOUT_S):
            opened = str(await ws.recv())
            if not opened.startswith("0"):
                raise RuntimeError(f"engine.io: expected an open packet, got {opened[:80]}")
            await ws.send("40")
            joined = str(await ws.recv())
            if not joined.startswith("40"):
                raise RuntimeError(f"socket.io: connect refused: {joined[:80]}")

    def frame(self, text: str) -> str:
        return self.EVENT + text + '"]'

    def unwrap(self, raw: str) -> str | None:
        return raw[10:-2] if raw.startswith(self.EVENT) else None

    def reply(self, raw: str) -> str | None:
        return "3" if raw == "2" else None


SIDES: dict[str, type[Side]] = {
    "aidpost": AidpostSide,
    "channels": ChannelsSide,
    "socketio": SocketIOSide,
}


# -- what arrives ------------------------------------------------------------------------------


@dataclass
class StepStats:
    """What one worker saw of one step."""

    plan: StepPlan
    keys: list[int]
    tag: str = ""
    got: dict[int, bytearray] = field(default_factory=dict)  # sender -> seq bitmap
    top: dict[int, int] = field(default_factory=dict)  # sender -> highest seq arrived
    first: dict[int, int] = field(default_factory=dict)  # sender -> first seq in the window
    last: dict[int, int] = field(default_factory=dict)  # sender -> last seq in the window
    latencies: list[int] = field(default_factory=list)  # ns, messages sent in the window
    sent_window: int = 0
    sent_total: int = 0
    skipped: int = 0
    send_errors: int = 0
    delivered_window: int = 0
    duplicates: int = 0
    reorders: int = 0
    echoes_window: int = 0
    cpu_s: float = 0.0

    def __post_init__(self) -> None:
        self.tag = f"{self.plan.step:04d}"
        self.begin, self.end = self.plan.window
        for key in self.keys:
            self.got[key] = bytearray(1024)
            self.top[key] = -1

    def sent(self, key: int, seq: int, at: int) -> None:
        self.sent_total += 1
        if self.begin <= at < self.end:
            self.sent_window += 1
            self.first.setdefault(key, seq)
            self.last[key] = seq

    def arrived(self, text: str, now: int, receiver: str) -> None:
        side = text[12]
        if side == receiver:  # aidpost's echo to the sender's own socket
            if self.begin <= now < self.end:
                self.echoes_window += 1
            return
        key = int(text[5:11]) * 2 + (side == "b")
        seq = int(text[14:23])
        got = self.got[key]
        if seq >= len(got):
            got.extend(bytes(seq - len(got) + 4096))
        if got[seq]:
            self.duplicates += 1
            return
        got[seq] = 1
        if seq < self.top[key]:
            self.reorders += 1
        else:
            self.top[key] = seq
        sent = int(text[24:44])
        if self.begin <= sent < self.end:
            self.latencies.append(now - sent)
        if self.begin <= now < self.end:
            self.delivered_window += 1

    def lost(self) -> int:
        lost = 0
        for key, first in self.first.items():
            got = self.got[key]
            last = self.last[key]
            if last >= len(got):
                got.extend(bytes(last - len(got) + 1))
            lost += got[first : last + 1].count(0)
        return lost

    def report(self) -> dict[str, Any]:
        return {
            "sent_window": self.sent_window,
            "sent_total": self.sent_total,
            "skipped": self.skipped,
            "send_errors": self.send_errors,
            "delivered_window": self.delivered_window,
            "received_of_window": len(self.latencies),
            "lost": self.lost(),
            "duplicates": self.duplicates,
            "reorders": self.reorders,
            "echoes_window": self.echoes_window,
            "cpu_s": self.cpu_s,
            "latencies_ns": self.latencies,
        }


class Recorder:
    """Routes each arriving message to the current step's statistics."""

    def __init__(self) -> None:
        self.current: StepStats | None = None
        self.stale = 0  # messages of another step (late ones of the previous step)
        self.other_frames = 0

    def arrived(self, text: str, now: int, receiver: str) -> None:
        current = self.current
        if current is None or text[:4] != current.tag:
            self.stale += 1
            return
        current.arrived(text, now, receiver)


async def read(side: Side, recorder: Recorder) -> None:
    assert side.ws is not None
    try:
        async for raw in side.ws:
            now = time.monotonic_ns()
            text = side.unwrap(str(raw))
            if text is not None:
                recorder.arrived(text, now, side.side)
                continue
            recorder.other_frames += 1
            answer = side.reply(str(raw))
            if answer is not None:
                await side.ws.send(answer)
        side.closed = f"closed: {side.ws.close_code} {side.ws.close_reason}"
    except websockets.ConnectionClosed as exc:
        side.closed = f"closed: {exc}"


# -- sending on schedule -----------------------------------------------------------------------


async def sleep_until(moment_ns: int) -> None:
    delay = (moment_ns - time.monotonic_ns()) / 1e9
    if delay > 0:
        await asyncio.sleep(delay)


async def send_due(sides: list[Side], stats: StepStats, count: int, start: int) -> int:
    """Send ``count`` messages round robin from socket ``start``; returns the next start."""
    step = stats.plan.step
    n = len(sides)
    for i in range(count):
        side = sides[(start + i) % n]
        if side.closed:
            stats.send_errors += 1
            continue
        seq = side.seq
        side.seq += 1
        now = time.monotonic_ns()
        try:
            await side.send(content(step, side.pair, side.side, seq, now))
        except websockets.ConnectionClosed as exc:
            side.closed = f"send: {exc}"
            stats.send_errors += 1
            continue
        stats.sent(side.key, seq, now)
    return (start + count) % n


async def drive(sides: list[Side], stats: StepStats) -> None:
    """The open-loop schedule of one step: warm-up and window, then nothing."""
    plan = stats.plan
    rate = plan.rate / 1e9
    backlog = max(1, int(plan.rate * MAX_BACKLOG_S))
    begin, end = plan.window
    await sleep_until(plan.start_ns)
    scheduled = 0  # messages made due so far, sent or skipped
    start = 0
    cpu0: float | None = None
    while (now := time.monotonic_ns()) < end:
        if cpu0 is None and now >= begin:
            cpu0 = time.process_time()
        due = int(rate * (now - plan.start_ns)) - scheduled
        if due > backlog:
            stats.skipped += due - backlog
            scheduled += due - backlog
            due = backlog
        start = await send_due(sides, stats, due, start)
        scheduled += due
        # Until the next message is due (or the window's edge), and at least a tick: at high
        # rates a tick's worth of messages goes out together.
        wake = min(plan.start_ns + (scheduled + 1) / rate, begin if cpu0 is None else end)
        await asyncio.sleep(max(TICK_S, (wake - time.monotonic_ns()) / 1e9))
    stats.cpu_s = time.process_time() - (cpu0 if cpu0 is not None else time.process_time())


async def run_step(sides: list[Side], recorder: Recorder, plan: StepPlan) -> dict[str, Any]:
    for side in sides:
        side.seq = 0
    stats = StepStats(plan, [side.key for side in sides])
    recorder.current = stats
    await drive(sides, stats)
    await sleep_until(plan.window[1] + int(plan.drain_s * 1e9))
    recorder.current = None
    report = stats.report()
    report["stale"] = recorder.stale
    report["other_frames"] = recorder.other_frames
    report["closed_sockets"] = sum(bool(side.closed) for side in sides)
    recorder.stale = recorder.other_frames = 0
    return report


# -- the worker process ------------------------------------------------------------------------


async def open_all(spec: WorkerSpec) -> list[Side]:
    kind = SIDES[spec.system]
    sides = [kind(pair, s, spec.bases[s == "b"]) for pair in spec.pairs for s in ("a", "b")]
    limit = asyncio.Semaphore(CONNECT_AT_ONCE)

    async def one(side: Side) -> None:
        async with limit:
            await side.open()

    await asyncio.gather(*(one(side) for side in sides))
    return sides


async def close_all(sides: list[Side]) -> None:
    async def one(side: Side) -> None:
        if side.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(side.ws.close(), 5)

    await asyncio.gather(*(one(side) for side in sides))


async def serve(conn: Connection, spec: WorkerSpec) -> None:
    sides = await open_all(spec)
    recorder = Recorder()
    readers = [asyncio.create_task(read(side, recorder)) for side in sides]
    conn.send({"ready": len(sides)})
    try:
        while (plan := await asyncio.to_thread(conn.recv)) is not None:
            conn.send(await run_step(sides, recorder, plan))
    finally:
        await close_all(sides)
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def worker_main(conn: Connection, spec: WorkerSpec) -> None:
    """The worker process's entry point: answers each plan with a report, None ends it."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
            runner.run(serve(conn, spec))
    except Exception:
        with contextlib.suppress(OSError):
            conn.send({"error": traceback.format_exc()})
    finally:
        conn.close()
