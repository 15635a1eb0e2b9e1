"""The ``aidpost`` command: serve, demo, keys."""

from __future__ import annotations

import argparse
import asyncio
import sys

from aidpost.core.settings import InsecureSettingsError, Settings


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from aidpost.app import COMPONENTS, configure_logging, create_app

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
        proxy_headers=True,
    )
    return 0


def _demo(_args: argparse.Namespace) -> int:
    from aidpost.demo import seed

    print(asyncio.run(seed(Settings())))
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
