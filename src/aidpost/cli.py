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
    args = parser.parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
