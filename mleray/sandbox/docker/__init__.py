"""The Docker backend: `engine` (the one client factory), `spec` (the container a SandboxSpec makes,
pure), `sandbox` (the lifecycle: DockerSandbox). Images are built by mleray.sandbox.images (`mleray images build`)."""

from mleray.sandbox.docker.sandbox import DockerSandbox
from mleray.sandbox.docker.spec import container_kwargs

__all__ = ["DockerSandbox", "container_kwargs"]
