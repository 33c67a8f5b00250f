"""The compute service's side of the flow, around a virt driver.

``ComputeManager`` keeps the node's resource provider in placement in step
with what the driver reports (the resource tracker's job in Nova) and runs
the instance operations, giving back the placement allocation of a build
that fails.
"""

import socket
import typing as ty
import uuid as uuid_lib

from oslo_log import log as logging

import nova.conf
from nova.scheduler.client import report

if ty.TYPE_CHECKING:
    from nova import objects
    from nova.virt import driver as virt_driver

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

#: Namespace of the compute node provider UUIDs derived from node names, so
#: that a restarted compute finds its own provider again.
COMPUTE_NODE_NAMESPACE = uuid_lib.UUID('6b1f9d42-3c1e-4b55-9a43-1f6c0c1c2a7e')


def compute_node_uuid(nodename: str) -> str:
    """The resource provider UUID of a compute node."""
    return str(uuid_lib.uuid5(COMPUTE_NODE_NAMESPACE, nodename))


class ComputeManager:
    """Manages the running instances of one compute node."""

    def __init__(
        self,
        driver: 'virt_driver.ComputeDriver',
        report_client: report.SchedulerReportClient,
        host: ty.Optional[str] = None,
    ) -> None:
        self.driver = driver
        self.report_client = report_client
        self.host = host or CONF.host or socket.gethostname()
        self.nodename = self.host
        self.node_uuid = compute_node_uuid(self.nodename)

    def init_host(self) -> None:
        """Start the driver and report this node to placement."""
        self.driver.init_host(self.host)
        self.update_available_resource()

    def update_available_resource(self) -> None:
        """Sync the node's inventory and traits to placement.

        The driver edits the report client's cached view of the provider,
        read again from placement every ``[compute]
        resource_provider_association_refresh`` seconds. Only what the
        driver changed is written, with the generation it was based on, so
        traits others set in between (an operator's ``CUSTOM_*`` trait) are
        kept. Nothing is sent to placement when nothing changed.
        """
        tree = self.report_client.get_provider_tree_and_ensure_root(
            self.node_uuid, self.nodename)
        self.driver.update_provider_tree(tree, self.nodename)
        self.report_client.update_from_provider_tree(tree)

    def build_and_run_instance(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        image_meta: 'objects.ImageMeta',
    ) -> None:
        """Spawn an instance the scheduler placed on this node.

        If the build fails, the driver has already removed what it created
        and the placement allocation is given back here.
        """
        instance.host = self.host
        instance.node = self.nodename
        try:
            self.driver.spawn(context, instance, image_meta)
        except Exception:
            instance.vm_state = 'error'
            self.report_client.delete_allocation_for_instance(instance.uuid)
            raise
        instance.vm_state = 'active'
        instance.task_state = None

    def terminate_instance(self, context: ty.Any,
                           instance: 'objects.Instance') -> None:
        """Delete an instance and give its resources back."""
        self.driver.destroy(context, instance)
        self.report_client.delete_allocation_for_instance(instance.uuid)
        instance.vm_state = 'deleted'
