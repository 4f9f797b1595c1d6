"""A throwaway MongoDB wire-protocol server: FerretDB (tools/ferretdb, SQLite backend) on a random port."""

from __future__ import annotations

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from helpers import environments
from helpers.throwaway import ThrowawayServer, built_binary


class ThrowawayMongo(ThrowawayServer):
    name = "ferretdb"
    environment_marker = environments.MONGO

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"

    def command(self) -> list[str]:
        return [built_binary("build-ferretdb.sh"), "-listen", f"127.0.0.1:{self.port}",
                "-sqlite-dir", str(self.root / "data")]  # fmt: skip

    def ready(self) -> bool:
        try:
            with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                client.admin.command("ping")
        except PyMongoError:
            return False
        return True
