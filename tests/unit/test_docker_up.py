"""scripts/docker-up.sh with stand-ins for `docker` and `dockerd`: the daemon it starts keeps none of its caller's
descriptors. Started under `flock` (as the suite's node runs are), a daemon that inherited the lock's descriptor
held the lock for as long as it ran, and every later run waited for it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# `docker info` answers once the stand-in daemon has started; the daemon records its descriptors, then waits for
# the test to let it go (bounded: 60 s).
STUB_DOCKER = '#!/usr/bin/env bash\n[ -e "$STUB_DIR/up" ]\n'
STUB_DOCKERD = r"""#!/usr/bin/env bash
ls /proc/$$/fd > "$STUB_DIR/fds"
touch "$STUB_DIR/up"
for _ in $(seq 600); do [ -e "$STUB_DIR/release" ] && exit 0; sleep 0.1; done
"""


def test_the_daemon_holds_no_descriptor_of_its_caller(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in {"docker": STUB_DOCKER, "dockerd": STUB_DOCKERD}.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    lock = tmp_path / "lock"
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "STUB_DIR": str(tmp_path),
           "DOCKERD_LOG": str(tmp_path / "dockerd.log")}  # fmt: skip
    try:
        started = subprocess.run(["flock", str(lock), "bash", str(ROOT / "scripts" / "docker-up.sh")], env=env,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert started.returncode == 0, started.stderr
        # Standard input, output and error only (255: the stand-in's own shell reading its script).
        assert set((tmp_path / "fds").read_text().split()) - {"255"} == {"0", "1", "2"}
        # The caller's lock is free again while the daemon runs.
        assert subprocess.run(["flock", "--nonblock", str(lock), "true"], timeout=30).returncode == 0
    finally:
        (tmp_path / "release").touch()
