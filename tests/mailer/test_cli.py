"""``aidpost mailer run --once`` as cron runs it: what is due is sent, overlapping runs
send nothing twice, and a bad job file stops it with a clear message."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from aidpost.core.db import Database
from aidpost.core.migrate import upgrade
from tests.mailer.smtp import SmtpServer
from tests.mailer.world import World


async def run_once(tmp_path: Path, smtp: SmtpServer, *extra: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aidpost.cli", "mailer", "run", "--once", *extra,
        env={**os.environ, "AIDPOST_DATA_DIR": str(tmp_path), "AIDPOST_ENV": "test",
             "AIDPOST_MAILER_TRANSPORT_URL": smtp.url, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def test_overlapping_once_runs_send_each_due_email_once(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'mailer.db'}")
    await upgrade(db, "mailer")
    world = World(db, smtp)
    world.clock.set(world.clock.now().replace(year=2020))  # due by the time the runs look
    await world.service().seed_templates()
    await world.staff()
    for aid in range(1, 21):
        await world.agency(aid, "insert", approved=False, name=f"Agency {aid}")
    await db.dispose()

    results = await asyncio.gather(run_once(tmp_path, smtp), run_once(tmp_path, smtp))
    assert [code for code, _ in results] == [0, 0], results
    handled = sum(int(out.rsplit(": ", 1)[1].split()[0]) for _, out in results)
    assert handled == 40  # 20 to the admins, 20 to the owners (18 unknown: failed)
    ids = [str(r.message["Message-ID"]) for r in smtp.received]
    assert len(ids) == 22 and len(set(ids)) == 22
    code, out = await run_once(tmp_path, smtp)
    assert (code, out.strip().splitlines()[-1]) == (0, "aidpost mailer: 0 emails handled")


async def test_a_bad_job_file_stops_the_worker(tmp_path: Path, smtp: SmtpServer) -> None:
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / "oops.json").write_text(json.dumps({"name": "oops", "template": "nope"}))
    code, out = await run_once(tmp_path, smtp, AIDPOST_MAILER_JOBS_DIR=str(jobs))
    assert code == 2
    assert "oops.json: at (top level): 'trigger' is a required property" in out
    (jobs / "oops.json").write_text(json.dumps({
        "name": "oops", "trigger": {"event": "help.requested.v1"}, "source": "x",
        "to": [{"platform_admins": True}], "template": "nope"}))  # fmt: skip
    code, out = await run_once(tmp_path, smtp, AIDPOST_MAILER_JOBS_DIR=str(jobs))
    assert code == 2 and "oops.json: template 'nope' does not exist" in out
