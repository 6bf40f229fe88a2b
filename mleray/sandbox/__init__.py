"""Sandboxes that run an agent: one interface (`base.Sandbox`), a registry of backends by name
(`registry`: docker, bwrap), the sweep's choice among them (`select`), and `make_sandbox` for a trial."""

from mleray.sandbox.base import ExitInfo, NotStarted, Sandbox, SandboxError, SandboxSpec
from mleray.sandbox.factory import make_sandbox
from mleray.sandbox.registry import backend, names

__all__ = ["ExitInfo", "NotStarted", "Sandbox", "SandboxError", "SandboxSpec", "backend", "make_sandbox", "names"]
