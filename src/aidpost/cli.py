"""The ``aidpost`` command: serve, demo, keys."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aidpost.core.settings import InsecureSettingsError, Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from aidpost.app import COMPONENTS, configure_logging, create_app
    from aidpost.core.sockets import WebSocketProtocol

    settings = Settings()
    if args.host:
        settings.core.host = args.host
    if args.port:
        settings.core.port = args.port
    configure_logging(settings)
    components = [args.component] if args.component else list(COMPONENTS)
    try:
        app = create_app(settings, components)
    except (InsecureSettingsError, ValueError) as exc:
        print(f"aidpost: {exc}", file=sys.stderr)
        return 2
    if args.demo:
        from aidpost.demo import seed_after_start

        seed_after_start(app, settings)
    uvicorn.run(
        app,
        host=settings.core.host,
        port=settings.core.port,
        log_config=None,
        timeout_graceful_shutdown=20,
        ws_max_size=1_048_576,
        # Chat frames are a few hundred bytes: compressing each costs CPU per delivery and
        # ~45 KiB of zlib state per socket for next to nothing. Browsers and ESME's clients
        # negotiate it away.
        ws_per_message_deflate=False,
        ws=WebSocketProtocol,
        proxy_headers=True,
    )
    return 0


def _demo(_args: argparse.Namespace) -> int:
    from aidpost.demo import seed

    print(asyncio.run(seed(Settings())))
    return 0


def _migrate(args: argparse.Namespace) -> int:
    from aidpost.app import COMPONENTS, configure_logging
    from aidpost.core.migrate import migrate

    settings = Settings()
    configure_logging(settings)
    components = args.component or list(COMPONENTS)
    unknown = sorted(set(components) - set(COMPONENTS))
    if unknown:
        print(f"aidpost: unknown component {', '.join(unknown)}", file=sys.stderr)
        return 2
    for line in asyncio.run(migrate(settings, components)):
        print(line)
    return 0


def _secrets(args: argparse.Namespace) -> int:
    from pathlib import Path

    from aidpost.deploy import secrets

    root = Path(args.out)
    if args.secrets_command == "check":
        findings = secrets.check(root)
        for finding in findings:
            print(finding)
        if not findings:
            print(f"{root}: every component's secrets are present and strong")
        return 1 if findings else 0
    try:
        written = secrets.generate(Path(args.hosts), root, force=args.force, rotate=args.rotate)
    except secrets.SecretsError as exc:
        print(f"aidpost: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def _healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when this container's process is ready (the image's HEALTHCHECK)."""
    import httpx

    from aidpost.core.settings import CoreSettings

    url = args.url or f"http://127.0.0.1:{CoreSettings().port}/status"
    try:
        response = httpx.get(url, timeout=args.timeout)
    except httpx.HTTPError as exc:
        print(f"aidpost: {url}: {exc or type(exc).__name__}", file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"aidpost: {url} answered {response.status_code}", file=sys.stderr)
        return 1
    return 0


def _rotate_keys(_args: argparse.Namespace) -> int:
    from aidpost.auth.component import AuthComponent
    from aidpost.runtime import Runtime

    async def run() -> str:
        rt = Runtime(Settings())
        auth = AuthComponent(rt)
        await auth.start()
        kid = await auth.keys.rotate()
        await auth.stop()
        await rt.stop()
        return kid

    print(f"new signing key {asyncio.run(run())}; earlier keys verify until their tokens expire")
    return 0


def _cluster(args: argparse.Namespace) -> int:
    import os

    from aidpost.cluster import Cluster, postgres_databases

    server = os.environ.get("AIDPOST_CLUSTER_POSTGRES", "postgresql://postgres@127.0.0.1:5432")
    bus = os.environ.get("AIDPOST_BUS_URL", "redis://127.0.0.1:6379/0")
    cluster = Cluster(postgres_databases(server), bus, args.gateways, args.consumers)
    with cluster:
        print(f"aidpost cluster at {cluster.url} (logs and haproxy.cfg in {cluster.workdir})")
        for process in cluster.processes:
            print(f"  {process.name:<12} {process.url}")
        print("Ctrl-C stops it.", flush=True)
        wait_for_stop_signal()
    return 0


def _mailer(args: argparse.Namespace) -> int:
    from aidpost.app import configure_logging
    from aidpost.core.bus import stop_all
    from aidpost.mailer.component import MailerComponent
    from aidpost.mailer.jobs import JobError
    from aidpost.runtime import Runtime

    async def run() -> int:
        settings = Settings()
        configure_logging(settings)
        rt = Runtime(settings)
        try:
            mailer = MailerComponent(rt)
            await mailer.prepare()
            if args.once:
                # Pending bus events first (they may schedule emails due now), then send.
                for sub in mailer.subscriptions:
                    while await sub.run_once(block_ms=0):
                        pass
                handled = await mailer.service.run_once()
                print(f"aidpost mailer: {handled} emails handled")
                return 0
            import signal

            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            for sub in mailer.subscriptions:
                sub.start_background()
            await mailer.service.run(stop)
            await stop_all(mailer.subscriptions)
            return 0
        except JobError as exc:
            print(f"aidpost: {exc}", file=sys.stderr)
            return 2
        finally:
            await rt.stop()

    return asyncio.run(run())


def wait_for_stop_signal() -> None:
    import signal

    stops = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, stops)  # after the children started
    signal.sigwait(stops)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aidpost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run aidpost (all components, or one)")
    serve.add_argument("--component", help="run only this component")
    serve.add_argument("--host")
    serve.add_argument("--port", type=int)
    serve.add_argument("--demo", action="store_true", help="seed demo data at start")
    serve.set_defaults(func=_serve)
    demo = sub.add_parser("demo", help="seed demo data and print how to sign in")
    demo.set_defaults(func=_demo)
    migrate = sub.add_parser(
        "migrate", help="apply the database migrations, then exit (a deployment's one-shot job)"
    )
    migrate.add_argument(
        "--component", action="append", help="only this component's databases (repeatable)"
    )
    migrate.set_defaults(func=_migrate)
    secrets_cmd = sub.add_parser("secrets", help="generate or check a production configuration")
    secrets_sub = secrets_cmd.add_subparsers(dest="secrets_command", required=True)
    generate = secrets_sub.add_parser(
        "generate", help="strong secrets and per-component env files from a hosts file"
    )
    generate.add_argument("--hosts", default="envs/prod/hosts.json", help="the hosts file")
    generate.add_argument("--out", default="envs/prod", help="where to write (envs/prod)")
    generate.add_argument(
        "--force", action="store_true", help="rewrite existing files (secrets kept)"
    )
    generate.add_argument(
        "--rotate", action="store_true", help="with --force: new secrets and certificate"
    )
    generate.set_defaults(func=_secrets)
    check = secrets_sub.add_parser("check", help="report weak, missing or placeholder values")
    check.add_argument("--out", default="envs/prod", help="the folder to check (envs/prod)")
    check.set_defaults(func=_secrets)
    health = sub.add_parser("healthcheck", help="exit 0 when the local process is ready")
    health.add_argument("--url", help="default: http://127.0.0.1:$AIDPOST_PORT/status")
    health.add_argument("--timeout", type=float, default=3.0)
    health.set_defaults(func=_healthcheck)
    keys = sub.add_parser("rotate-keys", help="make a new signing key")
    keys.set_defaults(func=_rotate_keys)
    mailer = sub.add_parser("mailer", help="the email worker")
    mailer_sub = mailer.add_subparsers(dest="mailer_command", required=True)
    mailer_run = mailer_sub.add_parser("run", help="schedule and send emails until stopped")
    mailer_run.add_argument(
        "--once", action="store_true", help="send what is due now and exit (for cron)"
    )
    mailer_run.set_defaults(func=_mailer)
    cluster = sub.add_parser(
        "cluster", help="every component as processes behind HAProxy (PostgreSQL, Redis)"
    )
    cluster.add_argument("--gateways", type=int, default=2)
    cluster.add_argument("--consumers", type=int, default=2)
    cluster.set_defaults(func=_cluster)
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
