"""A throwaway S3-compatible server: the Versity S3 Gateway (scripts/build-s3server.sh, posix backend: objects
are files) on a random loopback port, with one bucket."""

from __future__ import annotations

import os
import secrets
import socket
from pathlib import Path

from helpers import environments
from helpers.throwaway import ThrowawayServer, built_binary

BUCKET = "backups"


class ThrowawayS3(ThrowawayServer):
    name = "versitygw"
    environment_marker = environments.S3

    def __init__(self) -> None:
        super().__init__()
        self.endpoint = f"127.0.0.1:{self.port}"
        self.access_key, self.secret_key = "taskplatform", secrets.token_urlsafe(24)
        (self.root / "data" / BUCKET).mkdir(parents=True)

    @property
    def env(self) -> dict[str, str]:
        """What a client of this server needs in its environment."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key}

    def object_path(self, key: str) -> Path:
        return self.root / "data" / BUCKET / key

    def command(self) -> list[str]:
        return [built_binary("build-s3server.sh"), "--port", self.endpoint, "posix", str(self.root / "data")]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "ROOT_ACCESS_KEY": self.access_key, "ROOT_SECRET_KEY": self.secret_key}

    def ready(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
        except OSError:
            return False
        return True
