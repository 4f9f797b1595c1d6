"""A throwaway server process for the tests: a built binary on a random loopback port, with a folder of its own
for data and log, removed when it stops. Subclasses say how to start it and how to tell it is ready."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self

from helpers import environments
from helpers.pgcluster import free_port

ROOT = Path(__file__).resolve().parents[2]


def built_binary(script: str) -> str:
    """The path a scripts/build-*.sh prints: built once per version, cached under ~/.cache/taskplatform."""
    result = subprocess.run([str(ROOT / "scripts" / script)], check=True, capture_output=True, text=True)
    return result.stdout.strip().splitlines()[-1]


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s; always reaped."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class ThrowawayServer:
    name = "server"
    environment_marker = ""  # the pytest marker of what it runs (helpers.environments)

    def __init__(self) -> None:
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix=f"taskplatform-{self.name}-"))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str] | None:
        return None  # the test process's own

    def ready(self) -> bool:
        raise NotImplementedError

    def start(self) -> Self:
        environments.started(self.environment_marker)
        log_path = self.root / f"{self.name}.log"
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                            env=self.environment())  # fmt: skip
        deadline = time.monotonic() + 30
        while not self.ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(log_path.read_text()[-2000:])
            time.sleep(0.1)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
