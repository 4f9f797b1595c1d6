"""`taskplatform-api`: serve the API or apply the database migrations."""

from __future__ import annotations

import argparse
import inspect
import os
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from taskplatform.api.config import Settings, get_settings
from taskplatform.api.logging_setup import configure_logging
from taskplatform.api.migrate import upgrade_head, wait_for_database

STARTUP_FAILURE = 3  # what uvicorn exits with when the app fails to start


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="taskplatform-api")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the API server")
    serve.add_argument("--host", default=os.environ.get("HOST", "0.0.0.0"))  # noqa: S104 (a container listens on all)
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    serve.add_argument("--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", "1")))
    serve.add_argument("--migrate", action="store_true", help="apply migrations before serving")
    migrate = sub.add_parser("migrate", help="alembic upgrade head on DATABASE_URL")
    migrate.add_argument(
        "--wait",
        type=float,
        default=float(os.environ.get("DB_WAIT_S", "0")),
        help="seconds to wait for the database to accept connections first (a Job started beside its database)",
    )
    args = parser.parse_args(argv)

    settings = get_settings()
    if args.command == "migrate" or args.migrate:
        wait_for_database(settings.database_url, getattr(args, "wait", 0.0))
        upgrade_head(settings.database_url)
    if args.command == "serve":
        if settings.metrics_port == args.port:
            parser.error(f"METRICS_PORT ({settings.metrics_port}) must differ from the API's port")
        run_server(settings, args.host, args.port, args.workers)


def run_server(settings: Settings, host: str, port: int, workers: int) -> None:
    """uvicorn on the API's port and, unless 0, the metrics port: every worker serves both sockets, and the app
    tells them apart by the port a request came in on (observability.MetricsPortMiddleware). What uvicorn.run
    does for one socket."""
    configure_logging(settings)  # uvicorn logs each socket it binds ("Uvicorn running on ...")
    trusted_proxies = settings.trusted_proxies
    config = uvicorn.Config(
        "taskplatform.api.main:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,  # our JSON logging, configured in create_app
        # The client address (login throttling, the log) is the peer's, or behind TRUSTED_PROXIES the
        # right-most X-Forwarded-For entry that is not one of them; never what a client can write itself.
        proxy_headers=bool(trusted_proxies),
        forwarded_allow_ips=trusted_proxies or None,
        server_header=False,
    )
    sockets = [config.bind_socket()]
    if settings.metrics_port:
        sockets.append(uvicorn.Config(config.app, host=host, port=settings.metrics_port, log_config=None).bind_socket())
    server = uvicorn.Server(config)
    if workers > 1:
        # uvicorn's supervisor takes the workers' target in older releases (0.32, the lowest allowed); newer ones
        # make it from the config.
        if "target" in inspect.signature(Multiprocess).parameters:
            Multiprocess(config, target=server.run, sockets=sockets).run()  # type: ignore[call-arg,unused-ignore]
        else:
            Multiprocess(config, sockets=sockets).run()
    else:
        server.run(sockets=sockets)
        if not server.started:
            sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
