"""The relay: one consumer per socket, one group per (pair, side)."""

from __future__ import annotations

from typing import Any

from channels.generic.websocket import AsyncWebsocketConsumer


def group(pair: int, side: str) -> str:
    return f"relay.{pair}.{side}"


class RelayConsumer(AsyncWebsocketConsumer):
    """Joins its (pair, side) group; every text frame goes to the other side's group."""

    async def connect(self) -> None:
        route = self.scope["url_route"]["kwargs"]
        pair, side = int(route["pair"]), str(route["side"])
        if side not in ("a", "b"):
            await self.close(code=4000)
            return
        self.own = group(pair, side)
        self.other = group(pair, "b" if side == "a" else "a")
        await self.channel_layer.group_add(self.own, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "own"):
            await self.channel_layer.group_discard(self.own, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is not None:
            await self.channel_layer.group_send(
                self.other, {"type": "relay.message", "text": text_data}
            )

    async def relay_message(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])
