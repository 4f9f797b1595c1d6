"""scripts/lib/cache.sh through the scripts that source it, with a stand-in for `go` that records its calls and
writes small files instead of compiling: a warm cache answers without Go, a cold one is built once, a second run
waits for a build under way and then finds its result, an interrupted build leaves nothing that looks complete."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts"
K8S_FILES = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy",
             "kubeadm", "etcd", "kwok", "kwok-base-stages.yaml")  # fmt: skip
# A bound on each wait below, not an expectation of how long anything takes.
BOUND_S = 120

# `go install ... PKG@VERSION`: records the call, says it has started, waits for RELEASE when told to (a build
# under way), then writes $GOBIN/<name>; with STUB_GO_FAIL it writes half a binary and fails (an interrupted build).
STUB_GO = r"""#!/usr/bin/env bash
set -eu
echo "$*" >> "$STUB_DIR/calls"
[ "$1" = install ] || { echo "stub go: only install" >&2; exit 2; }
pkg=${!#}; name=${pkg%@*}; name=${name##*/}
touch "$STUB_DIR/started"
if [ -n "${STUB_GO_WAIT:-}" ]; then
  for _ in $(seq 2400); do [ -e "$STUB_DIR/release" ] && break; sleep 0.05; done
fi
mkdir -p "$GOBIN"
echo "half of $name" > "$GOBIN/$name"; chmod +x "$GOBIN/$name"
[ -z "${STUB_GO_FAIL:-}" ] || exit 1
echo "all of $name" > "$GOBIN/$name"
"""


@dataclass
class Stub:
    dir: Path  # the stand-in's calls and markers
    cache: Path  # XDG_CACHE_HOME of the runs
    env: dict[str, str] = field(repr=False)  # not in a failure's report: the test process's environment

    def calls(self) -> list[str]:
        calls = self.dir / "calls"
        return calls.read_text().splitlines() if calls.exists() else []

    def cached(self, key: str) -> Path:
        return self.cache / "taskplatform" / key


@pytest.fixture
def stub(tmp_path: Path) -> Stub:
    """The stand-in go first on PATH, a cache of its own."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "go").write_text(STUB_GO)
    (bin_dir / "go").chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "XDG_CACHE_HOME": str(tmp_path / "cache"),
           "STUB_DIR": str(tmp_path)}  # fmt: skip
    return Stub(tmp_path, tmp_path / "cache", env)


def run(script: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPTS / script)], env=env, capture_output=True, text=True, timeout=BOUND_S)


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + BOUND_S
    while not condition():
        assert time.monotonic() < deadline, f"not within {BOUND_S} s: {what}"
        time.sleep(0.05)


def test_a_cold_cache_is_built_once_and_then_answered_without_go(stub: Stub) -> None:
    kind = stub.cached("kind-v0.30.0") / "kind"
    first = run("build-kind.sh", stub.env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == f"{kind}\n"
    assert first.stderr == "build-kind: building kind v0.30.0\n"
    assert kind.read_text() == "all of kind\n"
    assert sorted(p.name for p in kind.parent.iterdir()) == ["kind"]  # no staging directory left behind

    again = run("build-kind.sh", stub.env)
    assert (again.returncode, again.stdout, again.stderr) == (0, first.stdout, "")
    assert len(stub.calls()) == 1


def test_a_warm_cache_of_several_files_prints_its_directory_without_go(stub: Stub) -> None:
    directory = stub.cached("k8s-v1.35.4-etcd-v3.6.6-kwok-v0.7.0")
    directory.mkdir(parents=True)
    for name in K8S_FILES:
        (directory / name).write_text(name)
    warm = run("build-k8s.sh", stub.env)
    assert (warm.returncode, warm.stdout, warm.stderr) == (0, f"{directory}\n", "")
    assert stub.calls() == []


def test_a_second_run_waits_for_the_build_under_way_then_finds_it(stub: Stub) -> None:
    kind = stub.cached("kind-v0.30.0") / "kind"
    env = {**stub.env, "STUB_GO_WAIT": "1"}
    first_err, second_err = stub.dir / "first.err", stub.dir / "second.err"
    with first_err.open("w") as err:
        first = subprocess.Popen([str(SCRIPTS / "build-kind.sh")], env=env, stdout=subprocess.PIPE, stderr=err,
                                 text=True)  # fmt: skip
    try:
        wait_until((stub.dir / "started").exists, "the first run's build started")
        with second_err.open("w") as err:
            second = subprocess.Popen([str(SCRIPTS / "build-kind.sh")], env=env, stdout=subprocess.PIPE, stderr=err,
                                      text=True)  # fmt: skip
        try:
            # Either the second run says it waits, or (without the lock) it starts a build of its own.
            wait_until(lambda: "waiting" in second_err.read_text() or len(stub.calls()) > 1,
                       "the second run waiting or building")  # fmt: skip
            assert len(stub.calls()) == 1, "the second run built too"
            assert second_err.read_text() == (
                f"build-kind: another run is building {kind.parent}; waiting for it (at most 3600 s)\n"
            )
        finally:
            (stub.dir / "release").touch()
            second_out, _ = second.communicate(timeout=BOUND_S)
    finally:
        (stub.dir / "release").touch()
        first_out, _ = first.communicate(timeout=BOUND_S)
    assert (first.returncode, second.returncode) == (0, 0)
    assert first_out == second_out == f"{kind}\n"
    assert kind.read_text() == "all of kind\n"
    assert len(stub.calls()) == 1


def test_an_interrupted_build_leaves_no_binary_that_looks_complete(stub: Stub) -> None:
    kind = stub.cached("kind-v0.30.0") / "kind"
    failed = run("build-kind.sh", {**stub.env, "STUB_GO_FAIL": "1"})
    assert failed.returncode != 0
    assert not kind.exists()

    retried = run("build-kind.sh", stub.env)
    assert retried.returncode == 0, retried.stderr
    assert retried.stdout == f"{kind}\n"
    assert kind.read_text() == "all of kind\n"
    assert len(stub.calls()) == 2
