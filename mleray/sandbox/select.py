"""Choosing the sandbox backend for a sweep: `choose(kind, agents) -> (backend name, reason)`.

- `auto`: the first backend of the registry (most preferred first) that can run every agent here;
  the reason says why each one before it was passed over.
- a backend's name: that backend, which must be able to run them, else SandboxError with its problem.
"""

from __future__ import annotations

from typing import List, Tuple

from mleray.config import AgentConfig
from mleray.sandbox.base import SandboxError
from mleray.sandbox.registry import backend, names


def choose(kind, agents: List[AgentConfig]) -> Tuple[str, str]:
    """The backend for `kind` ("auto" or a backend's name, or config.SandboxKind) and a one-line reason.
    Raises SandboxError for an unknown kind, or when no backend asked for can run the agents."""
    name = str(getattr(kind, "value", kind)).strip().lower()
    if name != "auto":
        if name not in names():
            raise SandboxError(f"unknown sandbox kind {name!r} (allowed: {', '.join(['auto', *names()])})")
        problem = backend(name).problem(agents)
        if problem:
            raise SandboxError(f"sandbox={name} but {problem}")
        return name, f"sandbox={name} as configured"
    passed_over: List[str] = []
    for name in names():
        problem = backend(name).problem(agents)
        if problem is None:
            first = f"the first of {', '.join(names())} that can run every agent here"
            return name, f"auto: {name}, {'as ' + '; '.join(passed_over) if passed_over else first}"
        passed_over.append(f"{name} cannot: {problem}")
    raise SandboxError(f"no sandbox available: {'; '.join(passed_over)}")
