"""The GPU device request a container gets is exactly the device ids Ray assigned (fake GPUs:
`ray.init(num_gpus=2)`, two actors of 0.5 GPU each share one device)."""

from __future__ import annotations

import pytest
import ray
from helpers import make_spec

from mleray.sandbox.docker import container_kwargs


@pytest.fixture(scope="module")
def fake_gpu_ray():
    if ray.is_initialized():
        ray.shutdown()
    ray.init(address="local", num_cpus=2, num_gpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@ray.remote(num_gpus=0.5, num_cpus=0)
class Holder:
    def ids(self):
        import os

        return [str(g) for g in ray.get_gpu_ids()], os.environ.get("CUDA_VISIBLE_DEVICES")


def test_device_request_matches_ray_assignment(fake_gpu_ray, trial_dirs):
    holders = [Holder.remote() for _ in range(4)]  # 4 x 0.5 GPU on 2 fake GPUs
    assigned = ray.get([h.ids.remote() for h in holders])
    seen = {}
    for gpu_ids, cuda_env in assigned:
        assert len(gpu_ids) == 1 and cuda_env == gpu_ids[0]
        seen.setdefault(gpu_ids[0], 0)
        seen[gpu_ids[0]] += 1
        kwargs = container_kwargs(make_spec(trial_dirs, ["true"], gpu_ids=gpu_ids, gpu_fraction=0.5))
        (request,) = kwargs["device_requests"]
        assert request["DeviceIDs"] == gpu_ids
        assert request["Capabilities"] == [["gpu"]]
        assert not request.get("Count")  # exact ids, never "all"
        env = kwargs["environment"]
        # inside, the runtime exposes only the requested device, as device 0
        assert env["CUDA_VISIBLE_DEVICES"] == "0"
        assert env["MLERAY_GPU_FRACTION"] == "0.5" and env["MLERAY_GPU_IDS"] == gpu_ids[0]
    assert seen == {"0": 2, "1": 2}  # two actors per device
    for h in holders:
        ray.kill(h)


def test_no_gpu_no_device_request(trial_dirs):
    kwargs = container_kwargs(make_spec(trial_dirs, ["true"]))
    assert "device_requests" not in kwargs
    assert kwargs["environment"]["CUDA_VISIBLE_DEVICES"] == ""
    assert kwargs["environment"]["MLERAY_GPU_FRACTION"] == "0.0"


def test_two_whole_gpus(trial_dirs):
    kwargs = container_kwargs(make_spec(trial_dirs, ["true"], gpu_ids=["2", "3"], gpu_fraction=1.0))
    assert kwargs["device_requests"][0]["DeviceIDs"] == ["2", "3"]
    assert kwargs["environment"]["CUDA_VISIBLE_DEVICES"] == "0,1"


def test_gpu_request_on_the_real_engine(docker_client, base_image, trial_dirs):
    """Where the engine has no NVIDIA runtime, asking for a GPU is a clear SandboxError naming the
    NVIDIA Container Toolkit and leaves no container behind; where it has one, the container starts
    with exactly the requested device."""
    from mleray.sandbox.base import SandboxError
    from mleray.sandbox.docker import DockerSandbox

    has_nvidia = "nvidia" in (docker_client.info().get("Runtimes") or {})
    spec = make_spec(trial_dirs, ["true"], gpu_ids=["0"], gpu_fraction=0.5, image=base_image)
    box = DockerSandbox(spec)
    try:
        if has_nvidia:
            box.start()
            (container,) = docker_client.containers.list(all=True, filters={"label": f"mleray.trial={spec.trial_id}"})
            (request,) = container.attrs["HostConfig"]["DeviceRequests"]
            assert request["DeviceIDs"] == ["0"]
        else:
            with pytest.raises(SandboxError, match="NVIDIA Container Toolkit"):
                box.start()
            assert docker_client.containers.list(all=True, filters={"label": f"mleray.trial={spec.trial_id}"}) == []
    finally:
        box.kill()
