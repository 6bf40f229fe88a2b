"""Ray's fake_multinode node provider, for node types that declare `memory`.

mleray books every trial's memory with Ray, so the autoscaler can only plan nodes whose types declare
"memory"; Ray's FakeMultiNodeProvider passes every declared resource but CPU and GPU to the new node as
a custom resource, which Ray refuses for "memory" (RayParams asserts), so no node would ever start.
This subclass drops "memory" from what the new node is told; the node then books the memory Ray detects
on this machine, as a real instance books its own. Nothing else differs: configs/cluster/fake_multinode.yaml
names it as an `external` provider (the monitor imports it with this folder on PYTHONPATH).
"""

from ray.autoscaler._private.fake_multi_node.node_provider import FakeMultiNodeProvider


class FakeMultiNodeProviderWithMemory(FakeMultiNodeProvider):
    def _create_node_with_resources_and_labels(self, node_config, tags, count, resources, labels):
        resources = {key: value for key, value in resources.items() if key != "memory"}
        super()._create_node_with_resources_and_labels(node_config, tags, count, resources, labels)
