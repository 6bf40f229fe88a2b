"""The sandbox backends by name, in auto's order of preference; each is loaded when first asked for."""

from __future__ import annotations

import importlib
from typing import List, Type

from mleray.sandbox.base import Sandbox, SandboxError

BACKENDS = {  # name -> "module:class", most preferred first
    "docker": "mleray.sandbox.docker:DockerSandbox",
    "bwrap": "mleray.sandbox.bwrap:BwrapSandbox",
}


def names() -> List[str]:
    """Every backend's name, most preferred first."""
    return list(BACKENDS)


def backend(name: str) -> Type[Sandbox]:
    """The Sandbox class registered as `name`. Raises SandboxError for a name not registered."""
    if name not in BACKENDS:
        raise SandboxError(f"unknown sandbox kind {name!r} (allowed: {', '.join(BACKENDS)})")
    module, _, cls = BACKENDS[name].partition(":")
    return getattr(importlib.import_module(module), cls)
