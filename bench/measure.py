"""What the benchmarks share: the project root on sys.path (each is run as `python bench/NAME.py`), the
process's own RSS and CPU time, and writing a result as NAME.json and NAME.md beside each other."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def rss_mib() -> float:
    """This process's resident memory now (VmRSS), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_s() -> float:
    """This process's CPU seconds so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_report(report: dict, out: Path, markdown: Callable[[dict], str]) -> None:
    """`out`.json (the figures) and `out`.md (`markdown(report)`, also printed)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    out.with_suffix(".md").write_text(text)
    print(text)
