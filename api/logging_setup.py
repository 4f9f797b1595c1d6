"""Structured logging: JSON lines (or plain text for humans) to stderr and optionally a rotated file."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from pythonjsonlogger.json import JsonFormatter

from taskplatform.api.config import Settings

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure_logging(settings: Settings) -> None:
    formatter: logging.Formatter
    if settings.log_format == "json":
        formatter = JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    else:
        formatter = logging.Formatter(_TEXT_FORMAT)

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if settings.log_file:
        handlers.append(
            logging.handlers.RotatingFileHandler(
                settings.log_file,
                maxBytes=settings.log_file_max_bytes,
                backupCount=settings.log_file_backups,
                encoding="utf-8",
            )
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_taskplatform", False):
            root.removeHandler(handler)
    for handler in handlers:
        handler.setFormatter(formatter)
        handler._taskplatform = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # uvicorn's own access log would duplicate our per-request line.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers = []
        logging.getLogger(name).propagate = True
