"""``aidpost secrets``: strong, private, never overwritten by accident, checked honestly."""

from __future__ import annotations

import json
import math
import stat
from collections import Counter
from pathlib import Path

import pytest

from aidpost.cli import main
from aidpost.core.settings import SECRETS, SHARED_SECRETS
from aidpost.deploy.secrets import (
    COMPONENTS,
    Layout,
    SecretsError,
    check,
    generate,
    load_hosts,
    read_env,
    settings_of,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def hosts(tmp_path: Path) -> Path:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps({"domain": "aidpost.example.org"}))
    return path


@pytest.fixture
def layout(tmp_path: Path, hosts: Path) -> Layout:
    generate(hosts, tmp_path / "prod")
    return Layout(tmp_path / "prod")


def _leaves(value: object) -> list[str]:
    if isinstance(value, dict):
        return [leaf for v in value.values() for leaf in _leaves(v)]
    return [str(value)]


def _entropy_bits(secret: str) -> float:
    """Shannon estimate of the characters seen: a floor check, not a proof."""
    counts = Counter(secret)
    per_char = -sum(n / len(secret) * math.log2(n / len(secret)) for n in counts.values())
    return per_char * len(secret)


def test_every_generated_secret_is_long_random_and_unique(layout: Layout) -> None:
    vault = json.loads(layout.vault.read_text())
    values = [v for v in _leaves(vault) if v]  # the SMTP password is the provider's, not ours
    assert len(values) == 14  # 2 PostgreSQL superusers, 6 roles, Redis, 3 API keys, web, admin
    assert len(set(values)) == len(values), "no secret serves twice"
    for value in values:
        assert len(value) >= 32
        assert _entropy_bits(value) > 128
        assert value.replace("-", "").replace("_", "").isalnum(), "safe inside URLs"


def test_two_runs_share_no_secret(tmp_path: Path, hosts: Path) -> None:
    generate(hosts, tmp_path / "a")
    generate(hosts, tmp_path / "b")
    a = set(_leaves(json.loads((tmp_path / "a" / "vault.json").read_text()))) - {""}
    b = set(_leaves(json.loads((tmp_path / "b" / "vault.json").read_text()))) - {""}
    assert not a & b


def test_files_with_secrets_are_private(layout: Layout) -> None:
    private = [layout.vault, layout.certificate, *(layout.env(n) for n in layout.env_names())]
    for path in private:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (layout.root / "servers", layout.root / "tls"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    assert stat.S_IMODE(layout.example.stat().st_mode) == 0o644


def test_nothing_is_overwritten_without_force(layout: Layout, hosts: Path) -> None:
    before = layout.env("auth").read_text()
    with pytest.raises(SecretsError, match=r"auth\.env exists; --force"):
        generate(hosts, layout.root)
    assert layout.env("auth").read_text() == before
    assert main(["secrets", "generate", "--hosts", str(hosts), "--out", str(layout.root)]) == 2


def test_force_rewrites_with_the_same_secrets_and_rotate_makes_new_ones(
    layout: Layout, hosts: Path
) -> None:
    vault = layout.vault.read_text()
    certificate = layout.certificate.read_bytes()
    layout.env("web").chmod(0o644)  # a loosened file is tightened again
    generate(hosts, layout.root, force=True)
    assert layout.vault.read_text() == vault
    assert layout.certificate.read_bytes() == certificate
    assert stat.S_IMODE(layout.env("web").stat().st_mode) == 0o600
    generate(hosts, layout.root, force=True, rotate=True)
    assert not set(_leaves(json.loads(vault))) - {""} & set(
        _leaves(json.loads(layout.vault.read_text()))
    )
    assert layout.certificate.read_bytes() != certificate


def test_each_component_gets_its_own_secrets_and_no_others(layout: Layout) -> None:
    vault = json.loads(layout.vault.read_text())
    secret_values = set(_leaves(vault)) - {""}
    for component in COMPONENTS:
        env = read_env(layout.env(component))
        for name in (*SECRETS[component], *SHARED_SECRETS):
            assert env.get(name), f"{component} lacks {name}"
        allowed = {n for n in (*SECRETS[component], *SHARED_SECRETS)}
        for name, value in env.items():
            if any(s in value for s in secret_values):
                assert name in allowed, f"{component}'s {name} holds a secret it does not use"
        settings = settings_of(env)
        settings.check_production([component])
        assert settings.core.env == "production"


def test_organizer_and_participant_data_are_on_separate_servers(tmp_path: Path) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(
        json.dumps(
            {"domain": "a.example.org", "organizer_db": "pg1:5432", "participant_db": "pg2:5432"}
        )
    )
    generate(path, tmp_path / "prod")
    auth = read_env(Layout(tmp_path / "prod").env("auth"))
    assert "@pg1:5432/aidpost_organizer" in auth["AIDPOST_ORGANIZER_DATABASE_URL"]
    assert "@pg2:5432/aidpost_participant" in auth["AIDPOST_PARTICIPANT_DATABASE_URL"]
    servers = Layout(tmp_path / "prod")
    assert read_env(servers.env("db-participant"))["AIDPOST_DB_USERS"] == "participant"
    assert "participant" not in read_env(servers.env("db-organizer"))["AIDPOST_DB_USERS"]


def test_redis_over_tls_for_managed_services(tmp_path: Path) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(
        json.dumps({"domain": "a.example.org", "redis": "cache.aws:6379", "redis_tls": True})
    )
    generate(path, tmp_path / "prod")
    env = read_env(Layout(tmp_path / "prod").env("web"))
    assert env["AIDPOST_BUS_URL"].startswith("rediss://:")
    assert env["AIDPOST_BUS_URL"].endswith("@cache.aws:6379/0")
    assert check(tmp_path / "prod") == []


def test_a_fresh_configuration_checks_clean_and_check_is_idempotent(layout: Layout) -> None:
    listing = sorted(p.name for p in layout.root.rglob("*"))
    assert check(layout.root) == []
    assert check(layout.root) == []
    assert sorted(p.name for p in layout.root.rglob("*")) == listing, "check writes nothing"
    assert main(["secrets", "check", "--out", str(layout.root)]) == 0


@pytest.mark.parametrize(
    ("component", "key", "value", "fragment"),
    [
        ("organizer", "AIDPOST_ORGANIZER_API_KEY", "change-me", "placeholder"),
        ("web", "AIDPOST_WEB_SECRET", "short", "at least 16"),
        ("auth", "AIDPOST_AUTH_DATABASE_URL", None, "AIDPOST_AUTH_DATABASE_URL is missing"),
        ("messenger", "AIDPOST_BUS_URL", "redis://:secret@redis:6379/0", "password"),
        ("status", "AIDPOST_CORS_ORIGINS", '["*"]', "AIDPOST_CORS_ORIGINS"),
        ("web", "AIDPOST_WEB_SECURE_COOKIES", "never", "plain HTTP"),
        ("mailer", "AIDPOST_MAILER_BATCH", "0", "not valid settings"),
    ],
)
def test_check_reports_weak_missing_and_placeholder_values(
    layout: Layout, component: str, key: str, value: str | None, fragment: str
) -> None:
    path = layout.env(component)
    env = read_env(path)
    if value is None:
        del env[key]
    else:
        env[key] = value
    path.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    findings = [str(f) for f in check(layout.root)]
    assert any(str(path) in f and fragment in f for f in findings), findings
    assert main(["secrets", "check", "--out", str(layout.root)]) == 1


def test_check_reports_files_others_can_read_and_missing_ones(layout: Layout) -> None:
    layout.env("participant").chmod(0o644)
    layout.env("status").unlink()
    findings = [str(f) for f in check(layout.root)]
    assert any("participant.env: mode 0644" in f for f in findings)
    assert any("status.env: missing" in f for f in findings)


def test_smtp_login_needs_the_providers_password(tmp_path: Path) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(
        json.dumps(
            {
                "domain": "a.example.org",
                "smtp": "smtp+starttls://smtp.example.org:587",
                "smtp_username": "aidpost",
            }
        )
    )
    generate(path, tmp_path / "prod")
    findings = [str(f) for f in check(tmp_path / "prod")]
    assert any("AIDPOST_MAILER_SMTP_PASSWORD is a placeholder" in f for f in findings)
    vault_path = tmp_path / "prod" / "vault.json"
    vault = json.loads(vault_path.read_text())
    vault["smtp_password"] = "the-providers-app-password-1234"
    vault_path.write_text(json.dumps(vault))
    generate(path, tmp_path / "prod", force=True)
    assert check(tmp_path / "prod") == []


@pytest.mark.parametrize(
    ("hosts", "fragment"),
    [
        ({}, "'domain' is a required property"),
        ({"domain": "Not A Domain"}, "domain"),
        ({"domain": "a.example.org", "redis": "redis"}, "redis"),
        ({"domain": "a.example.org", "organizer_db": "x:5432/evil"}, "organizer_db"),
        ({"domain": "a.example.org", "surprise": 1}, "surprise"),
    ],
)
def test_a_bad_hosts_file_is_refused_with_the_reason(
    tmp_path: Path, hosts: dict[str, str], fragment: str
) -> None:
    path = tmp_path / "hosts.json"
    path.write_text(json.dumps(hosts))
    with pytest.raises(SecretsError, match=fragment):
        load_hosts(path)
    path.write_text("{not json")
    with pytest.raises(SecretsError, match=r"hosts\.json"):
        load_hosts(path)
    assert not (tmp_path / "prod").exists()


def test_the_committed_example_holds_no_secret_and_is_current(tmp_path: Path) -> None:
    """envs/prod/.env.example is what generate writes from hosts.example.json."""
    generate(REPO / "envs" / "prod" / "hosts.example.json", tmp_path / "prod")
    committed = (REPO / "envs" / "prod" / ".env.example").read_text()
    assert committed == (tmp_path / "prod" / ".env.example").read_text()
    secrets = set(_leaves(json.loads((tmp_path / "prod" / "vault.json").read_text()))) - {""}
    assert not any(s in committed for s in secrets)
    for component in COMPONENTS:
        assert f"# servers/{component}.env" in committed


def test_generated_outputs_are_ignored_by_git() -> None:
    ignored = (REPO / "envs" / "prod" / ".gitignore").read_text().split()
    for entry in ("hosts.json", ".env", "vault.json", "servers/", "tls/", "clients/"):
        assert entry in ignored


def test_esmes_clients_are_configured_for_the_edge(layout: Layout) -> None:
    organizer = json.loads(layout.client("organizer-ui").read_text())
    assert organizer == {
        "organizer_api_url": "https://aidpost.example.org",
        "messenger_api_url": "https://aidpost.example.org",
        "messenger_ws_url": "wss://aidpost.example.org",
    }
    assert "participant_api_url" in json.loads(layout.client("participant-ui").read_text())
