"""The bubblewrap backend: `sandbox.py` (the lifecycle), `launch.py` (uid drop, clean launch environment),
`seccomp.py` (the BPF filter), `cgroup.py` (pids, memory, cpu limits), `network.py` (egress via slirp4netns)."""

from mleray.sandbox.bwrap.sandbox import BwrapSandbox

__all__ = ["BwrapSandbox"]
