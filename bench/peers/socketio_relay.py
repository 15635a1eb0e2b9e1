"""The python-socketio peer of ``bench/relay.py``: a relay as a Socket.IO user would write it.

An ``AsyncServer`` (ASGI, WebSocket transport only) whose client manager is
``AsyncRedisManager``: every emit is published on one Redis pub/sub channel and each server
process delivers it to its own members of the room. A client names its pair and side in the
connection's query string (``/socket.io/?EIO=4&transport=websocket&pair=3&side=a``); it joins
the room of its (pair, side), and each ``msg`` event it emits goes to the other side's room.
Everything else is python-socketio's default, among them ``async_handlers``: each event is
handled in a task of its own, so two messages of one sender can be published in the other
order (``bench/relay.py`` counts those as reorderings). ``bench/relay.py`` runs two uvicorn
processes of it::

    RELAY_REDIS_URL=redis://127.0.0.1:6379/6 uvicorn socketio_relay:app --port 9001
"""

from __future__ import annotations

import logging
import os
from typing import Any
from urllib.parse import parse_qs

import socketio

CHANNEL = "aidpost-relaybench-socketio"  # pub/sub channels are not per database: our own name
# Each emit is a task of its own (python-socketio's default ``async_handlers``) holding a pooled
# Redis connection while it publishes; redis-py's asyncio pool refuses a 101st ("Too many
# connections") and the manager then drops the message. Raised so that a stall is not counted
# as loss against the peer.
MAX_CONNECTIONS = 2000


class WithCause(logging.Formatter):
    """The manager puts the Redis error of "Cannot publish" in the record's extras: show it."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        cause = getattr(record, "redis_exception", None)
        return f"{text} ({cause})" if cause else text


handler = logging.StreamHandler()
handler.setFormatter(WithCause("%(levelname)s %(name)s: %(message)s"))
logging.getLogger("socketio").addHandler(handler)

manager = socketio.AsyncRedisManager(
    os.environ.get("RELAY_REDIS_URL", "redis://127.0.0.1:6379/6"),
    channel=CHANNEL,
    redis_options={"max_connections": MAX_CONNECTIONS},
)
sio = socketio.AsyncServer(
    async_mode="asgi", client_manager=manager, transports=["websocket"], cors_allowed_origins=[]
)
app = socketio.ASGIApp(sio)
partner: dict[str, str] = {}  # sid -> the other side's room


def room(pair: int, side: str) -> str:
    return f"relay.{pair}.{side}"


@sio.event
async def connect(sid: str, environ: dict[str, Any], auth: Any = None) -> bool:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    try:
        pair, side = int(query["pair"][0]), query["side"][0]
    except (KeyError, ValueError):
        return False
    if side not in ("a", "b"):
        return False
    await sio.enter_room(sid, room(pair, side))
    partner[sid] = room(pair, "b" if side == "a" else "a")
    return True


@sio.event
async def disconnect(sid: str, *_reason: Any) -> None:
    partner.pop(sid, None)


@sio.on("msg")
async def relay(sid: str, data: Any) -> None:
    await sio.emit("msg", data, room=partner[sid])
