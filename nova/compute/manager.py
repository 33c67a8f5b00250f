"""The compute service's side of the flow, around a virt driver.

``ComputeManager`` keeps the node's resource provider in placement in step
with what the driver reports (the resource tracker's job in Nova) and runs
the instance operations, giving back the placement allocation of a build
that fails.

Moves between hosts run as in Nova, one step on each host: the caller
(Nova's conductor) moves the instance's allocation on its source to the
migration (``SchedulerReportClient.move_allocations``) and schedules the
destination, then calls ``resize_instance`` on the source and
``finish_resize`` on the destination; ``confirm_resize`` on the source or
``revert_resize`` on the destination then ``finish_revert_resize`` on the
source end it. Where Nova's compute calls another host through the compute
RPC API, these methods take that host's manager.
"""

import dataclasses
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


#: The project and user the placement allocations of this tree are made
#: for, as the scheduler's.
PROJECT_ID = USER_ID = 'demo'


@dataclasses.dataclass
class Migration:
    """A cold migration or resize: the part of Nova's ``Migration`` used.

    ``uuid`` is also the placement consumer holding the source's resources
    while the move is unconfirmed.
    """

    uuid: str
    source_compute: str
    dest_compute: str
    old_flavor: 'objects.Flavor'
    new_flavor: 'objects.Flavor'
    #: Whether both hosts share the instance directory; found out by the
    #: source in ``resize_instance``.
    shared_storage: bool = False


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

    # --- shared storage (Nova's check_instance_shared_storage RPC)

    def check_instance_shared_storage(self, context: ty.Any,
                                      data: dict) -> bool:
        """Whether the test file another host created is visible here."""
        return self.driver.check_instance_shared_storage_remote(context,
                                                                data)

    def _is_instance_storage_shared(self, context: ty.Any,
                                    instance: 'objects.Instance',
                                    other: 'ComputeManager') -> bool:
        data = self.driver.check_instance_shared_storage_local(context,
                                                               instance)
        try:
            return other.check_instance_shared_storage(context, data)
        finally:
            self.driver.check_instance_shared_storage_cleanup(context, data)

    # --- cold migration and resize

    def resize_instance(self, context: ty.Any, instance: 'objects.Instance',
                        migration: Migration,
                        dest: 'ComputeManager') -> None:
        """Source: power the instance off for its destination."""
        migration.shared_storage = (
            dest is self or
            self._is_instance_storage_shared(context, instance, dest))
        self.driver.migrate_disk_and_power_off(
            context, instance, migration.dest_compute, migration.new_flavor,
            shared_storage=migration.shared_storage)
        instance.task_state = 'resize_migrated'

    def finish_resize(self, context: ty.Any, instance: 'objects.Instance',
                      migration: Migration) -> None:
        """Destination: start the instance here with its new flavor."""
        instance.flavor = migration.new_flavor
        instance.host = self.host
        instance.node = self.nodename
        self.driver.finish_migration(
            context, migration, instance, '', None, instance.image_meta,
            resize_instance=(migration.new_flavor.root_gb !=
                             migration.old_flavor.root_gb))
        instance.vm_state = 'resized'
        instance.task_state = None

    def confirm_resize(self, context: ty.Any, instance: 'objects.Instance',
                       migration: Migration) -> None:
        """Source: forget the instance here, and what it held."""
        self.driver.confirm_migration(context, migration, instance)
        self.report_client.delete_allocation_for_instance(migration.uuid)
        instance.vm_state = 'active'

    def revert_resize(self, context: ty.Any, instance: 'objects.Instance',
                      migration: Migration) -> None:
        """Destination: remove the instance here and give the source's
        resources back to it; ``finish_revert_resize`` follows on the
        source.
        """
        self.driver.destroy(context, instance,
                            destroy_disks=not migration.shared_storage)
        self.report_client.move_allocations(migration.uuid, instance.uuid,
                                            PROJECT_ID, USER_ID)
        instance.task_state = 'resize_reverting'

    def finish_revert_resize(self, context: ty.Any,
                             instance: 'objects.Instance',
                             migration: Migration) -> None:
        """Source: start the instance again with its old flavor."""
        instance.flavor = migration.old_flavor
        instance.host = self.host
        instance.node = self.nodename
        self.driver.finish_revert_migration(context, instance, None,
                                            migration)
        instance.vm_state = 'active'
        instance.task_state = None

    # --- shelve

    def shelve_offload_instance(self, context: ty.Any,
                                instance: 'objects.Instance') -> None:
        """Remove the instance from this host and free what it held.

        In Nova the shelve snapshot in Glance keeps its disk; unshelve
        builds it again wherever the scheduler places it.
        """
        self.driver.power_off(instance)
        self.driver.destroy(context, instance)
        self.report_client.delete_allocation_for_instance(instance.uuid)
        instance.host = instance.node = None
        instance.vm_state = 'shelved_offloaded'

    def unshelve_instance(self, context: ty.Any,
                          instance: 'objects.Instance') -> None:
        """Build a shelved-offloaded instance on this host, scheduled here.

        Its stashed image properties say how it boots, as at create.
        """
        self.build_and_run_instance(context, instance, instance.image_meta)

    # --- evacuate

    def rebuild_instance(self, context: ty.Any,
                         instance: 'objects.Instance') -> None:
        """Evacuate: recreate, on this host, an instance whose host is down.

        On shared instance storage its disk is used as it is. The
        allocation on the source stays until the source is cleaned up
        (``destroy_evacuated_instances``).
        """
        instance.host = self.host
        instance.node = self.nodename
        self.driver.spawn(context, instance, instance.image_meta)
        instance.vm_state = 'active'
        instance.task_state = None

    def destroy_evacuated_instances(
            self, context: ty.Any,
            evacuated: list[tuple['objects.Instance', 'ComputeManager']]
    ) -> None:
        """At the start of a host that was down: remove the guests that
        were evacuated from it meanwhile, and what they held here.

        ``evacuated`` pairs each instance with its new host (Nova reads
        both from the migration records of the evacuations).
        """
        for instance, dest in evacuated:
            shared = self._is_instance_storage_shared(context, instance,
                                                      dest)
            self.driver.destroy(context, instance, destroy_disks=not shared)
            self.report_client.remove_provider_from_allocation(
                instance.uuid, self.node_uuid, PROJECT_ID, USER_ID)
