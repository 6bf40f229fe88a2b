"""The gateway's pieces inside the sandbox, as validation's are (`mleray.sandbox.validation`).

The gateway's socket folder (holding the socket and a copy of the stdlib relay `validate_shim.py`) is
bind-mounted read-only at /home/.mleray-llm; `wrap_command` starts the relay on 127.0.0.1:`PORT` before
the agent, so `OPENAI_BASE_URL=http://localhost:PORT/v1` and `ANTHROPIC_BASE_URL=http://localhost:PORT`
reach the gateway with network none. The API keys the agent sees are its per-trial token.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Tuple

from mleray.sandbox.base import SandboxSpec
from mleray.sandbox.validation import INSIDE_DIR, SHIM_NAME, WRAP_MARK

CONTAINER_DIR = "/home/.mleray-llm"
SOCKET_NAME = "llm.sock"
PORT = 5001
LLM_MARK = "mleray-llm"


def agent_env(token: str, port: int = PORT) -> Dict[str, str]:
    """What the agent gets to talk to a model: base URLs on localhost and its per-trial token as keys."""
    return {"OPENAI_BASE_URL": f"http://localhost:{port}/v1", "ANTHROPIC_BASE_URL": f"http://localhost:{port}",
            "OPENAI_API_KEY": token, "ANTHROPIC_API_KEY": token, "MLERAY_LLM_PORT": str(port)}


def place_relay(folder: Path) -> None:
    """Copies the relay into the socket's folder: one mount carries both."""
    shutil.copyfile(INSIDE_DIR / SHIM_NAME, folder / SHIM_NAME)
    (folder / SHIM_NAME).chmod(0o644)


def inside_mounts(spec: SandboxSpec) -> List[Tuple[Path, str, str]]:
    socket = getattr(spec, "llm_socket", None)
    return [(Path(socket).parent, CONTAINER_DIR, "ro")] if socket is not None else []


def inside_env(spec: SandboxSpec) -> Dict[str, str]:
    socket = getattr(spec, "llm_socket", None)
    return {"MLERAY_LLM_SOCKET": f"{CONTAINER_DIR}/{Path(socket).name}"} if socket is not None else {}


def wrap(spec: SandboxSpec, command: List[str]) -> List[str]:
    """`command` wrapped with the relay when the spec has a gateway socket, else unchanged."""
    return wrap_command(command) if getattr(spec, "llm_socket", None) is not None else list(command)


def wrap_command(command: List[str], port: int = PORT) -> List[str]:
    """`command` preceded by the relay to the gateway (bound before the agent runs); under a validation
    wrapper the relay goes inside it. Idempotent. Without $MLERAY_LLM_SOCKET or python3 the agent just runs."""
    if len(command) >= 4 and command[:2] == ["/bin/sh", "-c"]:
        if command[3] == LLM_MARK:
            return list(command)
        if command[3] == WRAP_MARK:
            return command[:4] + wrap_command(command[4:], port)
    script = (
        'if [ -n "$MLERAY_LLM_SOCKET" ] && command -v python3 >/dev/null 2>&1; then '
        f'python3 -I -S {CONTAINER_DIR}/{SHIM_NAME} serve --socket "$MLERAY_LLM_SOCKET" --port {port} '
        '|| echo "mleray: the LLM gateway relay did not start" >&2; fi; exec "$@"'
    )
    return ["/bin/sh", "-c", script, LLM_MARK, *command]
