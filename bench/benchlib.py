"""What the benchmarks share: the machine they ran on, their block in docs/benchmarks.md, wrk and its report,
throwaway HTTP servers, and the CPU time that processes used meanwhile.

The benches run as scripts (`make bench-*`), so this module, beside them, is importable as `benchlib`; the tests'
throwaway servers (the package tests/helpers: helpers.pgcluster, helpers.kubecluster...) are importable because the
Makefile puts tests/ on PYTHONPATH as pyproject puts it on pytest's `pythonpath`.
"""

from __future__ import annotations

import atexit
import functools
import os
import platform
import re
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH_DOC = ROOT / "docs" / "benchmarks.md"
# A bound on a server's start-up, not a speed.
SERVER_READY_WITHIN_S = 60

# --- the machine ---------------------------------------------------------------------------------------------


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> int:
    return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30)


def pg_version() -> str:
    out = subprocess.run(["psql", "--version"], capture_output=True, text=True).stdout
    match = re.search(r"(\d+\.\d+)", out)
    return match.group(1) if match else "?"


def machine() -> str:
    """The machine a bench ran on, as its block in docs/benchmarks.md names it."""
    return f"{os.cpu_count()} cores ({cpu_model()}), {memory_gib()} GiB, Python {platform.python_version()}"


# --- docs/benchmarks.md --------------------------------------------------------------------------------------


def write_doc(section: str, begin: str, end: str) -> None:
    """Replace the section between the markers `begin` and `end` of docs/benchmarks.md (appending it the first
    time)."""
    BENCH_DOC.parent.mkdir(exist_ok=True)
    text = BENCH_DOC.read_text() if BENCH_DOC.exists() else "# Benchmarks\n"
    block = f"{begin}\n{section.rstrip()}\n{end}"
    if begin in text:
        text = re.sub(re.escape(begin) + r".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    BENCH_DOC.write_text(text)


# --- wrk -----------------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", value).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def run_wrk(name: str, url: str, *, seconds: int, connections: int, threads: int, headers: dict[str, str],
            script: Path | None = None) -> WrkResult:  # fmt: skip
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    for key, value in headers.items():
        cmd += ["-H", f"{key}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    out = subprocess.run([*cmd, url], check=True, capture_output=True, text=True).stdout
    return parse_wrk(name, out)


def parse_wrk(name: str, out: str) -> WrkResult:
    """wrk's report (run with --latency) as figures."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return WrkResult(name, rps, p50, p99, int(bad.group(1)) if bad else 0)


# --- throwaway HTTP servers ----------------------------------------------------------------------------------


@functools.cache
def _log_dir() -> Path:
    """The servers' logs (access logs run to tens of MB): one folder per run, removed when the run ends."""
    path = Path(tempfile.mkdtemp(prefix="taskplatform-bench-"))
    atexit.register(shutil.rmtree, path, True)
    return path


def start_server(args: list[str], env: dict[str, str], port: int, ready_path: str) -> subprocess.Popen[bytes]:
    """A server process (`args`, with `env` over this process's environment), once GET `ready_path` on `port`
    answers 200; the caller stops it."""
    log = open(_log_dir() / f"server-{port}.log", "wb")  # noqa: SIM115 (lives as long as the server)
    proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + SERVER_READY_WITHIN_S
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}{ready_path}", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    proc.wait()
    raise RuntimeError(f"server on port {port} did not start")


# --- CPU time ------------------------------------------------------------------------------------------------

Result = TypeVar("Result")
_TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # the fields after "(comm)"


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a process, its reaped children and its live children (a postmaster and its backends,
    uvicorn and its workers)."""
    fields = _stat(pid)
    total = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime, stime, cutime, cstime
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except (OSError, ValueError):
                continue
            if int(child[1]) == pid:
                total += int(child[11]) + int(child[12])
    return total / _TICK


def children_cpu_s() -> float:
    """CPU seconds of this process's reaped children (a finished wrk, a finished migration)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def cpu_during(run: Callable[[], Result], *pids: int) -> tuple[Result, float, list[float]]:
    """run()'s result, its wall seconds, and the CPU seconds used meanwhile by each process tree in `pids`,
    then (last) by this process's children that finished meanwhile."""

    def meter() -> list[float]:
        return [*(tree_cpu_s(pid) for pid in pids), children_cpu_s()]

    before = meter()
    start = time.perf_counter()
    result = run()
    wall = time.perf_counter() - start
    return result, wall, [after - earlier for after, earlier in zip(meter(), before, strict=True)]
