"""The node-side reaper: removes mleray containers (any sweep) whose labelled deadline is long past.

A container whose driver or actor died stops itself at its time limit plus grace (spec.limit_command);
this removes what is left, running or exited, once `mleray.deadline` + 2 x `mleray.grace` + MARGIN_S
has passed: by then mleray's own SIGTERM, SIGKILL and 30 s wait are over, so no living trial's container
is touched. Containers without a deadline label (no time limit) are never removed here.

Cheap enough to call often: one filtered list call. DockerSandbox.start() calls `reap_overdue_soon()`
(at most once a minute per process, in a daemon thread), so every node that starts trials reaps;
`python -m mleray.sandbox.docker.reaper` is the same as a one-shot (cron, a node's start-up script).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional

import docker

from mleray.errors import one_line
from mleray.sandbox.docker import engine
from mleray.sandbox.docker.spec import LABEL_DEADLINE, LABEL_GRACE

MARGIN_S = 30.0
EVERY_S = 60.0
_last = [0.0]
_lock = threading.Lock()


def overdue(labels: dict, now: float) -> bool:
    """Whether a container with these labels is past deadline + 2 x grace + MARGIN_S (False unlabelled)."""
    try:
        deadline, grace = float(labels[LABEL_DEADLINE]), float(labels.get(LABEL_GRACE, 10))
    except (KeyError, ValueError):
        return False
    return now > deadline + 2 * max(grace, 1.0) + MARGIN_S


def reap_overdue(now: Optional[float] = None, client: Optional[docker.DockerClient] = None) -> int:
    """Removes every overdue mleray container on the engine; returns how many. Raises EngineError when
    no engine answers."""
    now = time.time() if now is None else now
    found = (client or engine.client(30)).containers.list(all=True, filters={"label": LABEL_DEADLINE})
    removed = 0
    for container in found:
        if overdue(container.labels, now):
            try:
                container.remove(force=True)
                removed += 1
            except docker.errors.APIError:  # gone meanwhile, or being removed by its own trial
                pass
    return removed


def reap_overdue_soon() -> None:
    """reap_overdue() in a daemon thread, at most once per EVERY_S in this process; never raises."""
    with _lock:
        if time.monotonic() - _last[0] < EVERY_S and _last[0]:
            return
        _last[0] = time.monotonic()

    def quietly() -> None:
        try:
            reap_overdue()
        except Exception:
            pass  # the trial's own start says what is wrong with the engine

    threading.Thread(target=quietly, name="docker-reaper", daemon=True).start()


def main() -> int:
    try:
        removed = reap_overdue()
    except Exception as err:
        print(f"mleray: cannot reap containers: {one_line(err)}", file=sys.stderr)
        return 2
    print(f"mleray: removed {removed} overdue container(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
