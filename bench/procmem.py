"""A server process's memory, read from /proc/<pid>/status (Linux only).

`RssSampler` watches one process during a workload: it resets the kernel's
peak counter (VmHWM, by writing 5 to /proc/<pid>/clear_refs, which needs the
same user or root) and also samples VmRSS every few milliseconds, so a peak
is caught even where the reset is not allowed.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass

FIELDS = ("VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem")


def status(pid: int) -> dict[str, int]:
    """The memory lines of /proc/<pid>/status in bytes; {} if the process is gone."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                name, _, rest = line.partition(":")
                if name in FIELDS:
                    out[name] = int(rest.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


def rss(pid: int) -> int:
    return status(pid).get("VmRSS", 0)


def reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0). False if not allowed."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


@dataclass
class MemoryReading:
    baseline: int  # VmRSS when the workload started
    peak: int  # highest VmRSS seen (sampled, or VmHWM after a reset)
    peak_anon: int  # RssAnon at the highest sample
    peak_file: int  # RssFile (mapped files, e.g. memory-mapped objects) at the highest sample
    after: int  # VmRSS when the workload ended

    @property
    def rise(self) -> int:
        return max(self.peak - self.baseline, 0)

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "rise": self.rise}


class RssSampler:
    """Context manager: `with RssSampler(pid) as s: ...; s.reading`."""

    def __init__(self, pid: int | None, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.reading: MemoryReading | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak = 0
        self._peak_anon = 0
        self._peak_file = 0
        self._hwm_reset = False

    def __enter__(self) -> RssSampler:
        if self.pid is None:
            return self
        self._hwm_reset = reset_peak(self.pid)
        first = status(self.pid)
        self._baseline = first.get("VmRSS", 0)
        self._take(first)
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def _take(self, st: dict[str, int]) -> None:
        value = st.get("VmRSS", 0)
        if value >= self._peak:
            self._peak = value
            self._peak_anon = st.get("RssAnon", 0)
            self._peak_file = st.get("RssFile", 0)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._take(status(self.pid))

    def __exit__(self, *exc) -> None:
        if self.pid is None:
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        last = status(self.pid)
        self._take(last)
        peak = self._peak
        if self._hwm_reset:
            peak = max(peak, last.get("VmHWM", 0))
        self.reading = MemoryReading(self._baseline, peak, self._peak_anon, self._peak_file, last.get("VmRSS", 0))


def mib(n: int | float | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.0f}"


def _selftest() -> None:  # pragma: no cover - manual check
    import os

    with RssSampler(os.getpid()) as s:
        block = bytearray(200 * 2**20)
        time.sleep(0.05)
        del block
    print(s.reading.as_dict())


if __name__ == "__main__":  # pragma: no cover
    _selftest()
