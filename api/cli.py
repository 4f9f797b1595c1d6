"""`taskplatform-api`: serve the API or apply the database migrations."""

from __future__ import annotations

import argparse
import os

import uvicorn

from taskplatform.api.config import get_settings
from taskplatform.api.migrate import upgrade_head, wait_for_database


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
        uvicorn.run(
            "taskplatform.api.main:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,  # our JSON logging, configured in create_app
            # The client address (login throttling, the log) is the peer's, or behind TRUSTED_PROXIES the
            # right-most X-Forwarded-For entry that is not one of them; never what a client can write itself.
            proxy_headers=bool(settings.trusted_proxies),
            forwarded_allow_ips=settings.trusted_proxies or None,
            server_header=False,
        )


if __name__ == "__main__":
    main()
