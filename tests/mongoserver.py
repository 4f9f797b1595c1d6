"""A throwaway MongoDB wire-protocol server: FerretDB (tools/ferretdb, SQLite backend) on a random port."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from pgcluster import free_port
from pymongo import MongoClient
from pymongo.errors import PyMongoError

ROOT = Path(__file__).resolve().parent.parent


def ferretdb_binary() -> str:
    """Built once per source version by scripts/build-ferretdb.sh (cached under ~/.cache/taskplatform)."""
    result = subprocess.run([str(ROOT / "scripts" / "build-ferretdb.sh")], check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


class ThrowawayMongo:
    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="taskplatform-ferretdb-"))
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ThrowawayMongo:
        log = (self.root / "ferretdb.log").open("wb")
        self.process = subprocess.Popen(
            [ferretdb_binary(), "-listen", f"127.0.0.1:{self.port}", "-sqlite-dir", str(self.root / "data")],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                with MongoClient(self.uri, serverSelectionTimeoutMS=500) as client:
                    client.admin.command("ping")
                return self
            except PyMongoError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((self.root / "ferretdb.log").read_text()[-2000:]) from None
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ThrowawayMongo:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
