"""Peak memory of the running benchmark process, shared by the benchmarks."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> float:
    """This process's peak resident memory, in MB.

    On Linux this is ``VmHWM``, which belongs to this program alone: ``ru_maxrss``
    carries over the parent's peak into a child across ``fork`` and ``exec``, so a
    child of a large benchmark process would report the parent's size.
    """
    status = Path("/proc/self/status")
    if status.exists():
        for text in status.read_text().splitlines():
            if text.startswith("VmHWM:"):
                return int(text.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
