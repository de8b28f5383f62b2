"""What the benchmarks share: the machine's CPU load during a timing, and the code version a
report was made with. Standard library only (the throughput benchmark's coordinating process
imports no TensorFlow)."""

from __future__ import annotations

import os
import resource
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


class CpuShare:
    """CPU time used on the machine between start and stop (Linux /proc/stat; None elsewhere):
    by this process and its finished children (``own``), by other processes at nice > 0 (the
    kernel counts niced time apart) and by other processes at normal priority, each as a share
    of all cores. ``children=True`` counts the children this process has waited for as its own
    (the throughput benchmark's workers)."""

    def __init__(self, children=False):
        self.children = children
        self.start = self._read()

    def _read(self):
        try:
            with open("/proc/stat") as f:
                user, nice, system, idle, iowait, irq, softirq = (int(v) for v in f.readline().split()[1:8])
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        own = resource.getrusage(resource.RUSAGE_SELF)
        own_s = own.ru_utime + own.ru_stime
        if self.children:
            kids = resource.getrusage(resource.RUSAGE_CHILDREN)
            own_s += kids.ru_utime + kids.ru_stime
        return time.monotonic(), (user + system + irq + softirq) / ticks, nice / ticks, own_s

    def stop(self):
        """{"own", "niced", "normal"}: shares of all cores, or None where /proc/stat is missing.
        This process's own time is taken out of the niced column when it runs niced itself."""
        end = self._read()
        if self.start is None or end is None:
            return None
        wall = (end[0] - self.start[0]) * os.cpu_count()
        normal, niced, own = (e - s for e, s in zip(end[1:], self.start[1:]))
        if os.nice(0) > 0:
            niced = max(niced - own, 0.0)
        else:
            normal = max(normal - own, 0.0)
        return {"own": own / wall, "niced": niced / wall, "normal": normal / wall}


def code_version(paths=("camri_utils",)):
    """Short commit of the repository, and whether ``paths`` have uncommitted changes."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *paths], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return commit + (f" with uncommitted changes to {', '.join(paths)}" if dirty else "")
