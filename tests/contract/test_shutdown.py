"""Graceful shutdown: on SIGTERM the server stops accepting, finishes what is in flight,
then exits."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aidpost.cluster import free_port


def test_requests_in_flight_finish_after_sigterm(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "AIDPOST_DATA_DIR": str(tmp_path),
        "AIDPOST_AUTH_SUPERADMIN_EMAIL": "root@aidpost.example",
        "AIDPOST_AUTH_SUPERADMIN_PASSWORD": "root-password-for-shutdown",
        "AIDPOST_RATE_LIMIT": "100000/minute",
        "PATH": "/usr/bin:/bin",
    }
    # Full-strength argon2id, so that sign-ins take long enough to be caught in flight.
    proc = subprocess.Popen(
        [sys.executable, "-m", "aidpost.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(base + "/status", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        payload = json.dumps(
            {"email": "root@aidpost.example", "password": "root-password-for-shutdown"}
        ).encode()
        # One sign-in first: the server is past its warm-up, so it reads each request below
        # as it comes (uvicorn closes, unanswered, a connection whose request it has not
        # read yet when the signal comes: that request was never in flight).
        signed = httpx.post(
            base + "/organizer-api/auth/sign-in",
            content=payload,
            headers={"Content-Type": "application/json"},
            timeout=30,
        )
        assert signed.status_code == 200
        request = (
            b"POST /organizer-api/auth/sign-in HTTP/1.1\r\nHost: t\r\n"
            b"Content-Type: application/json\r\nConnection: close\r\n"
            + f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        # Every request is fully written before the signal: all of them are in flight.
        sockets = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(16)]
        for sock in sockets:
            sock.sendall(request)
        time.sleep(0.2)  # read by the server; each sign-in's argon2id takes longer than this
        proc.send_signal(signal.SIGTERM)
        codes = []
        for sock in sockets:
            with sock:
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            codes.append(int(reply.split(b" ", 2)[1]) if reply else 0)
        assert codes == [200] * 16
        # uvicorn re-raises the signal once it has shut down cleanly: the usual exit by SIGTERM
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
        try:
            httpx.get(base + "/status", timeout=1)
            raise AssertionError("still accepting after shutdown")
        except httpx.ConnectError:
            pass
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
