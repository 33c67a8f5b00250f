"""A stateless guest moved between two compute hosts, on real QEMU.

Two compute services in one process, each a ``ComputeManager`` with its
own ``LibvirtDriver`` and its own resource provider in one real placement:
``compute1`` on the process's embedded QEMU driver (``qemu:///embed``),
``compute2`` on the host's libvirt daemon (``qemu:///system``). libvirt
embeds one root per process, and the daemon is the other hypervisor this
machine has; each has its own domains and its own NVRAM directory, which
is where a variable store would appear. The two share the instance
directory, as compute hosts on shared storage (NFS) do.

Once a process has opened an embedded driver, libvirt opens no other
connection in it ("Missing URI parameter 'root'" for ``qemu:///system``),
while a connection opened before keeps working. So these tests run each in
a process of its own (``test_moves`` starts them), where ``compute2``
connects to the daemon before ``compute1`` embeds its driver; this module
is not collected by the test runner itself.

The steps Nova's conductor takes (moving the source allocation to the
migration, scheduling, calling each host in turn) are taken here in the
same order; every decision and every write is the services' code. What the
tests check is what each host shows: which libvirt runs the guest, the
flash drives QEMU got, the NVRAM directories, and placement's allocations.

Live migration needs a libvirt daemon on each end and cannot run between
the embedded driver and the daemon: ``two_daemon_live_migration`` runs it
between the host's daemon and a second one in namespaces of its own.
Between hosts whose libvirt want the two different XML forms of a
stateless guest it is tested on fakelibvirt
(``LiveMigrationBetweenXMLFormsTestCase`` in the unit tests): this
machine's libvirt accepts only the explicit one.
"""

import os

import os_resource_classes as orc
import os_traits
from oslo_utils import uuidutils

from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova.scheduler import utils as scheduler_utils
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt_embed
from nova.tests.fixtures import libvirt_system
from nova.tests.fixtures import placement as placement_fixture
from nova.tests.functional.libvirt import base
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
HOST1, HOST2 = 'compute1', 'compute2'

#: Seconds to wait for OVMF on a guest's console (TCG, shared cores).
FIRMWARE_TIMEOUT = 90

STATELESS_IMAGE = compute_fixture.make_image(
    hw_firmware_type='uefi', hw_firmware_stateless='true',
    hw_machine_type='q35')
STATEFUL_IMAGE = compute_fixture.make_image(
    hw_firmware_type='uefi', hw_machine_type='q35')


class MovesBetweenHostsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        embed = self.useFixture(libvirt_embed.EmbeddedLibvirtFixture())
        self.system = self.useFixture(libvirt_system.SystemLibvirtFixture())
        state = self.useFixture(compute_fixture.ComputeStateFixture(
            embed.uri))
        # QEMU under the daemon runs unprivileged and must reach the
        # shared instance directory.
        os.chmod(state.state_path, 0o755)
        os.makedirs(state.instances_path, mode=0o755, exist_ok=True)
        self.uris = {HOST1: embed.uri, HOST2: self.system.uri}
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.client = report.SchedulerReportClient(self.placement.adapter)
        self.scheduler = scheduler_manager.SchedulerManager(self.client)
        # The daemon first: no connection opens after the embedded one.
        self.computes = {host: self.start_compute(host)
                         for host in (HOST2, HOST1)}
        self.flavor = compute_fixture.make_flavor()

    def start_compute(self, host: str) -> compute_manager.ComputeManager:
        self.flags(connection_uri=self.uris[host], group='libvirt')
        driver = libvirt_driver.LibvirtDriver()
        self.flags(connection_uri=self.uris[HOST1], group='libvirt')
        compute = compute_manager.ComputeManager(
            driver, report.SchedulerReportClient(self.placement.adapter),
            host=host)
        compute.init_host()
        self.assertEqual(self.uris[host], driver.host.uri)
        return compute

    # --- the steps of Nova's API and conductor

    def create(self, image: dict = STATELESS_IMAGE):
        instance, spec = compute_api.API().create(
            self.flavor, image,
            instance_id=libvirt_system.unique_instance_id())
        self.system.domain_names.append(instance.name)
        return instance, spec

    def schedule(self, spec, host: str) -> None:
        """Claim ``host`` for the request, as Nova's scheduler does with a
        requested destination; the request requires the stateless firmware
        trait, so ``host`` must report it.
        """
        resource_request = scheduler_utils.ResourceRequest.from_request_spec(
            spec)
        self.assertEqual(
            bool(spec.image.properties.get('hw_firmware_stateless')),
            STATELESS in resource_request.required_traits)
        alloc_reqs, _summaries, _version = (
            self.client.get_allocation_candidates(resource_request))
        rp_uuid = self.rp(host)
        [alloc_req] = [ar for ar in alloc_reqs
                       if list(ar['allocations']) == [rp_uuid]]
        self.assertTrue(self.client.claim_resources(
            spec.instance_uuid, alloc_req, compute_manager.PROJECT_ID,
            compute_manager.USER_ID))

    def boot(self, host: str, image: dict = STATELESS_IMAGE):
        instance, spec = self.create(image)
        self.schedule(spec, host)
        self.computes[host].build_and_run_instance(None, instance,
                                                   instance.image_meta)
        if image is STATELESS_IMAGE:
            self.assert_runs_stateless_on(host, instance, wait=False)
        return instance, spec

    def start_move(self, instance, spec, dest: str,
                   new_flavor=None) -> compute_manager.Migration:
        migration = compute_manager.Migration(
            uuid=uuidutils.generate_uuid(), source_compute=instance.host,
            dest_compute=dest, old_flavor=instance.flavor,
            new_flavor=new_flavor or instance.flavor)
        self.assertTrue(self.client.move_allocations(
            instance.uuid, migration.uuid, compute_manager.PROJECT_ID,
            compute_manager.USER_ID))
        if new_flavor is not None:
            spec.flavor = new_flavor
        self.schedule(spec, dest)
        source = self.computes[migration.source_compute]
        source.resize_instance(None, instance, migration,
                               self.computes[dest])
        self.assertTrue(migration.shared_storage)
        self.forget_console(instance)
        self.computes[dest].finish_resize(None, instance, migration)
        return migration

    # --- evidence

    def rp(self, host: str) -> str:
        return compute_manager.compute_node_uuid(host)

    def traits(self, host: str) -> set:
        resp = self.placement.adapter.get(
            '/resource_providers/%s/traits' % self.rp(host),
            microversion='1.6')
        return set(resp.json()['traits'])

    def allocations(self, consumer: str) -> dict:
        """host -> MEMORY_MB the consumer holds there."""
        hosts = {self.rp(h): h for h in self.computes}
        return {hosts[rp]: resources[orc.MEMORY_MB]
                for rp, resources in
                self.client.get_allocations_for_consumer(consumer).items()}

    def domain_names(self, host: str) -> list[str]:
        return self.computes[host].driver.list_instances()

    def forget_console(self, instance) -> None:
        # Both hosts write the one console file of the shared instance
        # directory: remove the last boot's output before the next start.
        console = self.computes[HOST1].driver.console_log_path(instance)
        if os.path.exists(console):
            os.unlink(console)

    def nvram(self, host: str, instance) -> list[str]:
        return boot_evidence.nvram_files(self.uris[host], instance.name)

    def assert_no_nvram(self, instance) -> None:
        for host in self.computes:
            self.assertEqual([], boot_evidence.nvram_files(
                self.uris[host], instance.name), host)

    def assert_runs_stateless_on(self, host: str, instance,
                                 wait: bool = True) -> None:
        """The guest runs on ``host`` only, from one read-only flash drive,
        with no variable store on either host.
        """
        driver = self.computes[host].driver
        other = HOST2 if host == HOST1 else HOST1
        self.assertEqual(libvirt_driver.POWER_RUNNING,
                         driver.get_info(instance))
        self.assertNotEqual(libvirt_driver.POWER_RUNNING,
                            self.computes[other].driver.get_info(instance))
        config = driver._get_guest(instance).get_config()
        self.assertTrue(config.os_loader_stateless)
        self.assertIsNone(config.os_nvram)
        drives = boot_evidence.pflash_drives(
            boot_evidence.last_qemu_command_line(self.uris[host],
                                                 instance.name))
        self.assertEqual([(0, config.os_loader, True)],
                         [(d.unit, d.filename, d.read_only) for d in drives])
        self.assert_no_nvram(instance)
        self.assertEqual(host, instance.host)
        if wait:
            marker = boot_evidence.wait_for_firmware(
                driver.console_log_path(instance), FIRMWARE_TIMEOUT)
            self.assertIsNotNone(marker, 'no firmware output on %s' % host)

    # --- the moves

    def test_cold_migrate_with_resize_revert_and_confirm(self):
        self.assertIn(STATELESS, self.traits(HOST2))
        instance, spec = self.boot(HOST1)
        bigger = compute_fixture.make_flavor(memory_mb=384, name='bigger',
                                             flavor_id=2)

        migration = self.start_move(instance, spec, HOST2, bigger)

        self.assert_runs_stateless_on(HOST2, instance)
        self.assertEqual(384 * 1024, self.computes[HOST2].driver._get_guest(
            instance).get_config().memory)
        self.assertEqual({HOST2: 384}, self.allocations(instance.uuid))
        self.assertEqual({HOST1: 256}, self.allocations(migration.uuid))
        # The source keeps its stopped definition for a revert.
        self.assertIn(instance.name, self.domain_names(HOST1))

        self.computes[HOST2].revert_resize(None, instance, migration)
        self.forget_console(instance)
        self.computes[HOST1].finish_revert_resize(None, instance, migration)

        self.assert_runs_stateless_on(HOST1, instance)
        self.assertNotIn(instance.name, self.domain_names(HOST2))
        self.assertEqual({HOST1: 256}, self.allocations(instance.uuid))
        self.assertEqual({}, self.allocations(migration.uuid))

        spec.flavor = self.flavor
        migration = self.start_move(instance, spec, HOST2)
        self.computes[HOST1].confirm_resize(None, instance, migration)

        self.assert_runs_stateless_on(HOST2, instance)
        self.assertNotIn(instance.name, self.domain_names(HOST1))
        self.assertEqual({HOST2: 256}, self.allocations(instance.uuid))
        self.assertEqual({}, self.allocations(migration.uuid))

        self.computes[HOST2].terminate_instance(None, instance)
        self.assert_no_nvram(instance)
        self.assertEqual({}, self.allocations(instance.uuid))

    def test_shelve_offload_and_unshelve_to_another_host(self):
        instance, spec = self.boot(HOST1)

        self.computes[HOST1].shelve_offload_instance(None, instance)

        for host in self.computes:
            self.assertNotIn(instance.name, self.domain_names(host))
        self.assert_no_nvram(instance)
        self.assertEqual({}, self.allocations(instance.uuid))

        self.forget_console(instance)
        self.schedule(spec, HOST2)
        self.computes[HOST2].unshelve_instance(None, instance)

        self.assert_runs_stateless_on(HOST2, instance)
        self.assertEqual({HOST2: 256}, self.allocations(instance.uuid))
        self.computes[HOST2].terminate_instance(None, instance)
        self.assert_no_nvram(instance)

    def test_evacuate_from_a_failed_host(self):
        instance, spec = self.boot(HOST1)
        # The host fails: its QEMU is gone, its compute service down.
        self.computes[HOST1].driver._get_guest(instance).poweroff()

        self.forget_console(instance)
        self.schedule(spec, HOST2)
        self.computes[HOST2].rebuild_instance(None, instance)

        self.assert_runs_stateless_on(HOST2, instance)
        # Until the failed host is cleaned up the instance holds both.
        self.assertEqual({HOST1: 256, HOST2: 256},
                         self.allocations(instance.uuid))

        # The failed host comes back and removes what was evacuated.
        self.computes[HOST1].destroy_evacuated_instances(
            None, [(instance, self.computes[HOST2])])

        self.assertNotIn(instance.name, self.domain_names(HOST1))
        self.assert_runs_stateless_on(HOST2, instance, wait=False)
        self.assertEqual({HOST2: 256}, self.allocations(instance.uuid))
        # The shared disk was left to the instance's new host.
        self.assertTrue(os.path.exists(os.path.join(
            os.path.dirname(self.computes[HOST2].driver.console_log_path(
                instance)), libvirt_driver.DISK_NAME)))
        self.computes[HOST2].terminate_instance(None, instance)
        self.assert_no_nvram(instance)

    def test_stateful_guest_gets_a_new_store_on_another_host(self):
        # For the support matrix: the variable store is libvirt's, per
        # host, and does not travel with a cold migration.
        instance, spec = self.boot(HOST1, STATEFUL_IMAGE)
        self.computes[HOST1].driver.power_off(instance)
        [source_store] = self.nvram(HOST1, instance)
        base.write_nvram_marker(source_store)

        migration = self.start_move(instance, spec, HOST2)

        [dest_store] = self.nvram(HOST2, instance)
        self.assertFalse(base.has_nvram_marker(dest_store))
        # Kept on the source for a revert...
        self.assertEqual([source_store], self.nvram(HOST1, instance))
        self.computes[HOST2].revert_resize(None, instance, migration)
        self.computes[HOST1].finish_revert_resize(None, instance, migration)
        self.assertEqual([], self.nvram(HOST2, instance))
        self.assertEqual([source_store], self.nvram(HOST1, instance))
        self.assertTrue(base.has_nvram_marker(source_store))

        # ...and removed with the source domain on confirm.
        migration = self.start_move(instance, spec, HOST2)
        self.computes[HOST1].confirm_resize(None, instance, migration)
        self.assertEqual([], self.nvram(HOST1, instance))
        [dest_store] = self.nvram(HOST2, instance)
        self.assertFalse(base.has_nvram_marker(dest_store))
        self.computes[HOST2].terminate_instance(None, instance)
        self.assert_no_nvram(instance)
