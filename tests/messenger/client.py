"""A test client that speaks ESME's messenger protocol as ESME's React, Expo and Go clients
do: the Authorization frame right after the socket opens, then ``get_chats`` without
waiting, ``get_chat_history`` per chat, ``{type, payload}`` frames."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection


class Client:
    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def connect(cls, base: str, token: str, *, get_chats: bool = True) -> Client:
        url = base.replace("http://", "ws://") + "/messenger-api/connect"
        ws = await websockets.connect(url, open_timeout=10, max_size=2**22)
        client = cls(ws)
        await client.send_raw(json.dumps({"Authorization": f"Bearer {token}"}))
        if get_chats:
            await client.send("get_chats", "")
        return client

    async def send_raw(self, text: str) -> None:
        await self.ws.send(text)

    async def send(self, kind: str, payload: Any) -> None:
        await self.ws.send(json.dumps({"type": kind, "payload": payload}))

    async def next(self, kind: str | None = None, within: float = 5.0) -> dict[str, Any]:
        """The next frame (of ``kind``; others are set aside in ``frames`` and returned first
        by a later call that wants them)."""
        for i, kept in enumerate(self.frames):
            if kind is None or kept["type"] == kind:
                return self.frames.pop(i)
        deadline = asyncio.get_running_loop().time() + within
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"no {kind or 'frame'} within {within} s; got {self.frames}")
            raw = await asyncio.wait_for(self.ws.recv(), remaining)
            frame: dict[str, Any] = json.loads(raw)
            if kind is None or frame["type"] == kind:
                return frame
            self.frames.append(frame)

    async def close(self) -> None:
        await self.ws.close()

    async def start_chat(self, within: float = 10.0) -> dict[str, Any]:
        """What the organizer UI's switch does (every 5 s there; faster here): ask for the
        next request until a ``new_chat`` arrives. Other frames are set aside for later calls
        (not read again here: a frame set aside earlier would come back at once, forever)."""
        kept, self.frames = self.frames, []
        try:
            deadline = asyncio.get_running_loop().time() + within
            while asyncio.get_running_loop().time() < deadline:
                await self.send("start_chat", "")
                while True:
                    frame = await self.next(within=5)
                    if frame["type"] == "new_chat":
                        payload: dict[str, Any] = frame["payload"]
                        return payload
                    if frame["type"] == "info":
                        break
                    kept.append(frame)
                await asyncio.sleep(0.1)
            raise TimeoutError("no new chat")
        finally:
            self.frames = kept + self.frames
