"""The chat transcript, end to end against a real ``aidpost serve``: a participant asks for
it with their help request, chats, staff close the chat, and the conversation arrives by
SMTP. Without the wish, nothing is sent."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.conftest import Api
from tests.contract.server import serve
from tests.mailer.smtp import Received, SmtpServer
from tests.messenger.client import Client
from tests.messenger.test_chat_flow import World


async def test_the_participant_gets_the_conversation_if_asked(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    env = {
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "AIDPOST_MAILER_TRANSPORT_URL": smtp.url,
        "AIDPOST_MAILER_POLL_SECONDS": "0.2",
    }
    with serve(tmp_path, env, "--demo") as base:
        world = World(base)
        participant = await world.token("participant", "participant")
        staff_token = await world.token("organizer", "support")
        headers = {"Authorization": f"Bearer {participant}"}
        for _ in range(400):
            events = (await world.http.get("/participant-api/events", headers=headers)).json()
            if events:
                break
            await asyncio.sleep(0.05)
        body = {"eventId": events[0]["id"], "description": "my knee <hurts>", "problemType":
                "medical", "lat": 52.1, "lng": 21.0, "sendTranscript": True}  # fmt: skip
        r = await world.http.post("/participant-api/chat-requests", json=body, headers=headers)
        assert r.status_code == 200, r.text
        assert r.json()["sendTranscript"] is True

        staff = await Client.connect(base, staff_token, get_chats=False)
        chat_id = (await staff.start_chat(within=20))["id"]
        await staff.send("send_message", {"chatId": chat_id, "message": "A medic is coming."})
        await staff.next("user_message")
        await staff.next("user_message")
        await staff.send("close_chat", {"chatId": chat_id})
        await staff.next("closed_chat")

        def transcripts() -> list[Received]:
            return [m for m in smtp.received if "conversation" in str(m.message["Subject"])]

        for _ in range(200):
            if transcripts():
                break
            await asyncio.sleep(0.05)
        [mail] = transcripts()
        assert mail.recipients == ["participant@demo.aidpost.example"]
        assert str(mail.message["Subject"]).startswith("Your conversation at ")
        text = mail.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
        assert "You: Problem description: my knee <hurts>" in text
        assert "Staff: A medic is coming." in text
        html = mail.message.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "my knee &lt;hurts&gt;" in html

        # asked again, without the wish: nothing more is sent
        body["sendTranscript"] = False
        for _ in range(100):  # the lock of the first request is released through the bus
            r = await world.http.post("/participant-api/chat-requests", json=body, headers=headers)
            if r.status_code == 200:
                break
            await asyncio.sleep(0.05)
        assert r.status_code == 200, r.text
        chat_id = (await staff.start_chat(within=20))["id"]
        await staff.send("close_chat", {"chatId": chat_id})
        await staff.next("closed_chat")
        await asyncio.sleep(1.5)
        assert len(transcripts()) == 1
        await world.http.aclose()


async def test_the_transcript_api_wants_the_key_and_an_ended_chat(api: Api) -> None:
    path = "/messenger-api/internal/chats/abc/transcript"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "wrong"}):
        r = await api.client.get(path, headers=headers)
        assert r.status_code == 401 and r.json()["message"] == "invalid api key"
    key = {"Authorization": f"Bearer {api.app.state.runtime.settings.messenger.api_key}"}
    for chat in ("abc", "x" * 5000, "%00"):
        r = await api.client.get(f"/messenger-api/internal/chats/{chat}/transcript", headers=key)
        assert r.status_code == 400 and r.json()["message"] == "chat not found"
