"""The compose files, as Docker Compose reads them (Debian's ``docker-compose config``) and
as the Compose Specification's schema has them; the edge's HAProxy configuration."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from aidpost.deploy.haproxy import AUTH_PATHS, COMPOSE_MAXCONN, ROUTES, compose_config
from aidpost.deploy.secrets import COMPONENTS, Layout, generate
from tests.conftest import ON_CI

REPO = Path(__file__).resolve().parents[2]
PROD = REPO / "envs" / "prod"
IMAGE = "ghcr.io/owner/aidpost:0.1.0-abc1234"
APP_SERVICES = {
    "auth": "auth",
    "organizer": "organizer",
    "participant": "participant",
    "messenger-gateway": "messenger",
    "messenger-consumer": "messenger",
    "mailer": "mailer",
    "status": "status",
    "web": "web",
}


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if ON_CI:
            pytest.fail(f"{name} is not installed on CI (.ci/run installs it)")
        pytest.skip(f"{name} not installed")
    return found


def _config(folder: Path, file: str = "compose.yaml") -> dict[str, Any]:
    """What Docker Compose makes of the file: interpolated, merged, validated."""
    done = subprocess.run(
        [_tool("docker-compose"), "-f", str(folder / file), "config"],
        capture_output=True, text=True, cwd=folder, timeout=60,
        env={**os.environ, "AIDPOST_IMAGE": IMAGE},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    loaded: dict[str, Any] = yaml.safe_load(done.stdout)
    return loaded


@pytest.fixture(scope="module")
def prod(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, dict[str, Any]]:
    """The production compose file beside a configuration made by ``aidpost secrets``."""
    folder = tmp_path_factory.mktemp("envs") / "prod"
    shutil.copytree(PROD, folder)
    hosts = folder / "hosts.json"
    hosts.write_text(json.dumps({"domain": "aidpost.example.org"}))
    generate(hosts, folder)
    return Layout(folder), _config(folder)


@pytest.mark.parametrize("path", [REPO / "compose.yaml", PROD / "compose.yaml"])
def test_compose_files_match_the_compose_specification(path: Path) -> None:
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_dev_file_runs_one_process_on_sqlite_with_demo_data() -> None:
    config = _config(REPO)
    (service,) = config["services"].values()
    assert service["command"] == ["serve", "--demo"]
    assert service["build"]["context"] == str(REPO)
    assert service["ports"][0].startswith("127.0.0.1:8000:8000")
    assert service["healthcheck"]["test"] == ["CMD", "aidpost", "healthcheck"]
    assert not any("DATABASE_URL" in k for k in service.get("environment", {}))


def test_every_component_has_its_service_its_env_file_and_no_other(
    prod: tuple[Layout, dict[str, Any]],
) -> None:
    layout, config = prod
    services = config["services"]
    for name, component in APP_SERVICES.items():
        service = services[name]
        assert service["command"] == ["serve", "--component", component], name
        env = service["environment"]
        assert env["AIDPOST_ENV"] == "production"
        # Compose read the generated file: the secrets are there, and only this component's.
        own = (layout.env(component)).read_text()
        assert all(f"{k}={v}" in own for k, v in env.items() if k != "AIDPOST_MESSENGER_ROLES")
    assert services["messenger-gateway"]["environment"]["AIDPOST_MESSENGER_ROLES"] == "gateway"
    assert services["messenger-consumer"]["environment"]["AIDPOST_MESSENGER_ROLES"] == "consumer"
    assert set(COMPONENTS) == set(APP_SERVICES.values())


def test_services_are_healthy_restart_and_start_after_migrations(
    prod: tuple[Layout, dict[str, Any]],
) -> None:
    services = prod[1]["services"]
    for name in APP_SERVICES:
        service = services[name]
        assert service["healthcheck"]["test"] == ["CMD", "aidpost", "healthcheck"], name
        assert service["restart"] == "unless-stopped"
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"] and migrate["restart"] == "no"
    for db in ("db-organizer", "db-participant"):
        assert migrate["depends_on"][db]["condition"] == "service_healthy"
        assert "pg_isready" in services[db]["healthcheck"]["test"][1]
    assert "redis-cli" in services["redis"]["healthcheck"]["test"][1]
    # Redis runs as its own user, its password in a file inside, not on a command line.
    assert services["redis"]["user"] == "redis"
    assert "--requirepass" not in " ".join(services["redis"]["command"])


def test_participant_data_has_a_server_of_its_own(prod: tuple[Layout, dict[str, Any]]) -> None:
    services = prod[1]["services"]
    participant = services["participant"]["environment"]["AIDPOST_PARTICIPANT_DATABASE_URL"]
    organizer = services["organizer"]["environment"]["AIDPOST_ORGANIZER_DATABASE_URL"]
    assert "@db-participant:5432/" in participant and "@db-organizer:5432/" in organizer
    volumes = {s: services[s]["volumes"][0] for s in ("db-organizer", "db-participant")}
    assert volumes["db-organizer"] != volumes["db-participant"]
    for db in volumes:
        assert any("docker-entrypoint-initdb.d" in v for v in services[db]["volumes"])


def test_only_the_edge_is_published_and_the_backend_is_internal(
    prod: tuple[Layout, dict[str, Any]],
) -> None:
    config = prod[1]
    services = config["services"]
    published = {name for name, s in services.items() if s.get("ports")}
    assert published == {"haproxy"}
    ports = {str(p["published"]) for p in services["haproxy"]["ports"]}
    assert ports == {"80", "443"}
    assert config["networks"]["backend"]["internal"] is True
    for name in ("db-organizer", "db-participant", "redis", "auth", "organizer", "web"):
        assert list(services[name]["networks"]) == ["backend"], name


def test_the_image_is_a_release_never_a_default(prod: tuple[Layout, dict[str, Any]]) -> None:
    services = prod[1]["services"]
    assert {services[name]["image"] for name in APP_SERVICES} == {IMAGE}
    done = subprocess.run(
        [_tool("docker-compose"), "-f", str(prod[0].root / "compose.yaml"), "config"],
        capture_output=True, text=True, cwd=prod[0].root, timeout=60,
        env={k: v for k, v in os.environ.items() if k != "AIDPOST_IMAGE"},
    )  # fmt: skip
    assert done.returncode != 0 and "AIDPOST_IMAGE" in done.stderr


def test_the_replicas_can_be_chosen(prod: tuple[Layout, dict[str, Any]]) -> None:
    text = (PROD / "compose.yaml").read_text()
    assert "replicas: ${AIDPOST_GATEWAYS:-2}" in text
    assert prod[1]["services"]["messenger-gateway"]["deploy"]["replicas"] == 2


def test_the_committed_haproxy_config_is_the_rendered_one() -> None:
    assert (PROD / "haproxy.cfg").read_text() == compose_config()


def test_the_edge_has_the_file_descriptors_its_maxconn_needs(
    prod: tuple[Layout, dict[str, Any]],
) -> None:
    """HAProxy refuses to start below two descriptors per connection; a festival's phones
    each hold a WebSocket through it."""
    nofile = prod[1]["services"]["haproxy"]["ulimits"]["nofile"]
    limit = min(nofile.values()) if isinstance(nofile, dict) else int(nofile)
    assert f"maxconn {COMPOSE_MAXCONN}\n" in compose_config()
    assert COMPOSE_MAXCONN >= 50_000
    assert limit >= 2 * COMPOSE_MAXCONN + 1000


def test_haproxy_accepts_the_config_with_a_generated_certificate(
    prod: tuple[Layout, dict[str, Any]], tmp_path: Path
) -> None:
    layout = prod[0]
    text = compose_config().replace(
        "/usr/local/etc/haproxy/certs/aidpost.pem", str(layout.certificate)
    )
    path = tmp_path / "haproxy.cfg"
    path.write_text(text)
    done = subprocess.run(
        [_tool("haproxy"), "-c", "-f", str(path)], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_haproxy_routes_every_prefix_to_its_backend() -> None:
    text = compose_config()
    for backend, paths in ROUTES:
        assert f"acl is_{backend} path_beg {' '.join(paths)}" in text
        assert f"use_backend {backend} if is_{backend}" in text
    assert "/organizer-api/auth/" in AUTH_PATHS
    assert "default_backend organizer" in text
    assert "bind :443 ssl crt /usr/local/etc/haproxy/certs/aidpost.pem" in text
    assert "http-request redirect scheme https" in text
    assert "balance leastconn" in text.split("\nbackend gateways\n")[1]
