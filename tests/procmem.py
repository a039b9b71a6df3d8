"""A process's resident memory, from /proc/<pid>/status (Linux only)."""

from __future__ import annotations

from pathlib import Path


def memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (the peak), in bytes."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) * 1024
    return fields


def reset_peak(pid: int) -> int:
    """Start VmHWM afresh at the current RSS (Linux >= 4.0); the idle baseline."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return memory(pid)["VmRSS"]
