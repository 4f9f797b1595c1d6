"""What a test of a node's confinement inspects on the host: kernel settings, iptables rules, processes."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

KERNEL_SETTINGS = ("vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops")


def kernel_settings() -> dict[str, str]:
    return {key: Path("/proc/sys", key).read_text().strip() for key in KERNEL_SETTINGS}


def every_iptables_rule() -> str:
    """Every table of both iptables backends (nf_tables and legacy), IPv4 and IPv6."""
    commands = ("iptables-nft-save", "iptables-legacy-save", "ip6tables-nft-save", "ip6tables-legacy-save")
    return "\n".join(
        subprocess.run([command], capture_output=True, text=True, check=True).stdout
        for command in commands
        if shutil.which(command)
    )


def processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in Path("/proc").iterdir():
        try:
            command = (pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if pid.name.isdigit() and text in command:
            found.append(f"{pid.name}: {command}")
    return found
