"""Builds the sandbox a trial runs in: the backend, plus the outside validation server."""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from mleray.sandbox.base import Sandbox, SandboxSpec
from mleray.sandbox.registry import backend


@contextlib.contextmanager
def make_sandbox(kind: str, spec: SandboxSpec, prepared=None, grace_period: float = 10.0,
                 max_submission_mb: float = 1024.0) -> Iterator[Sandbox]:
    """Yields a started sandbox of the backend named `kind` (registry.BACKENDS); kills it on exit,
    whatever happened. Raises SandboxError for an unknown kind or one that cannot start.

    With `prepared`, a validation server holding the answers runs outside the sandbox for its life;
    each backend mounts its socket and starts the shim inside from `spec.validate_socket`; an upload
    over `max_submission_mb` is refused there.
    """
    with contextlib.ExitStack() as stack:
        if prepared is not None:
            from mleray.grading import validate_only
            from mleray.sandbox import validation

            sock_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mleray-val-")))
            spec.validate_socket = sock_dir / "validate.sock"
            stack.enter_context(validation.ValidationServer(lambda path: validate_only(prepared, path),
                                                            spec.validate_socket,
                                                            max_bytes=int(max_submission_mb * 2**20)))
        sandbox = backend(kind)(spec, grace_period=grace_period)
        stack.callback(sandbox.kill)
        sandbox.start()
        yield sandbox

