"""Tests of the compute manager with real placement and fakelibvirt.

Placement is the real openstack-placement, embedded; the driver is the
libvirt driver on fakelibvirt. What is checked is what placement holds
afterwards and how many writes it took to get there.
"""

import os_resource_classes as orc
import os_traits

from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
from nova import exception
from nova import objects
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt import driver as virt_driver
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
SECURE_BOOT = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
HOST = 'compute1'

make_flavor = compute_fixture.make_flavor
make_image = compute_fixture.make_image


class _ComputeTestCase(test.NoDBTestCase):

    LV_VER = (8, 6, 0)

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.fake = self.useFixture(
            fakelibvirt.FakeLibvirtFixture(lv_ver=self.LV_VER))
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.client = self.placement.client
        self.operator = self.placement.adapter
        self.compute = self.start_compute()
        self.rp_uuid = compute_manager.compute_node_uuid(HOST)

    def start_compute(self) -> compute_manager.ComputeManager:
        """Start a compute service: a new driver and manager, one client
        of their own, as a restarted service has.
        """
        client = report.SchedulerReportClient(
            self.placement.interference)
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(), client, host=HOST)
        compute.init_host()
        return compute

    def placement_traits(self) -> set:
        return set(self.client.get_provider_traits(self.rp_uuid).traits)

    def placement_usages(self) -> dict:
        resp = self.operator.get(
            '/resource_providers/%s/usages' % self.rp_uuid,
            microversion='1.9')
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()['usages']


class UpdateAvailableResourceTestCase(_ComputeTestCase):

    def test_init_host_registers_node(self):
        provider = self.client.get_provider_by_name(HOST)
        self.assertEqual(self.rp_uuid, provider['uuid'])
        self.assertEqual({STATELESS, SECURE_BOOT,
                          os_traits.COMPUTE_IMAGE_TYPE_QCOW2,
                          os_traits.COMPUTE_IMAGE_TYPE_RAW,
                          os_traits.HW_ARCH_X86_64},
                         self.placement_traits())
        resp = self.operator.get(
            '/resource_providers/%s/inventories' % self.rp_uuid,
            microversion='1.26')
        inventories = resp.json()['inventories']
        self.assertEqual(4, inventories[orc.VCPU]['total'])
        self.assertEqual(16384, inventories[orc.MEMORY_MB]['total'])
        self.assertEqual(512, inventories[orc.MEMORY_MB]['reserved'])
        self.assertIn(orc.DISK_GB, inventories)

    def test_unchanged_node_costs_no_write(self):
        client = self.compute.report_client
        before = client.write_count
        for _ in range(3):
            self.compute.update_available_resource()
        self.assertEqual(before, client.write_count)

    def test_operator_trait_kept_without_a_write(self):
        placement_fixture.operator_add_traits(self.operator, self.rp_uuid,
                                              'CUSTOM_RACK_A')
        client = self.compute.report_client
        before = client.write_count
        self.compute.update_available_resource()
        self.assertEqual(before, client.write_count)
        self.assertIn('CUSTOM_RACK_A', self.placement_traits())
        self.assertIn(STATELESS, self.placement_traits())

    def test_lost_capability_removed_in_one_write(self):
        # The firmware package was removed and the service restarted.
        self.fake.remove_descriptors()
        placement_fixture.operator_add_traits(self.operator, self.rp_uuid,
                                              'CUSTOM_RACK_A')
        compute = self.start_compute()
        self.assertEqual({'traits': 1}, dict(
            compute.report_client.write_counts))
        traits = self.placement_traits()
        self.assertNotIn(STATELESS, traits)
        self.assertNotIn(SECURE_BOOT, traits)
        self.assertIn('CUSTOM_RACK_A', traits)

    def test_concurrent_operator_write_does_not_lose_trait(self):
        # Another writer adds a trait right before the compute's write:
        # placement refuses the stale write, the compute re-reads and
        # both traits end up there.
        self.fake.remove_descriptors()
        self.placement.interference.lose_next_writes(1)
        self.start_compute()
        traits = self.placement_traits()
        self.assertNotIn(STATELESS, traits)
        self.assertLessEqual(
            set(self.placement.interference.concurrent_traits), traits)

    def test_placement_unreachable(self):
        self.placement.interference.cut()
        # Nothing changed and the cached provider is fresh: the sync needs
        # no request at all.
        self.compute.update_available_resource()
        # Once the provider has to be read again, the sync fails cleanly.
        self.compute.report_client.invalidate_resource_provider(
            self.rp_uuid)
        self.assertRaises(exception.PlacementAPIConnectFailure,
                          self.compute.update_available_resource)
        self.placement.interference.restore()
        self.compute.update_available_resource()
        self.assertIn(STATELESS, self.placement_traits())


class BuildTestCase(_ComputeTestCase):

    def schedule(self, image: dict, flavor=None) -> 'objects.Instance':
        instance, spec = compute_api.API().create(
            flavor or make_flavor(), image)
        selection = scheduler_manager.SchedulerManager(
            self.client).select_destinations(spec)
        self.assertEqual(HOST, selection.nodename)
        self.assertEqual({orc.VCPU: 1, orc.MEMORY_MB: 256, orc.DISK_GB: 1},
                         self.placement_usages())
        return instance

    def build(self, instance: 'objects.Instance') -> None:
        self.compute.build_and_run_instance(None, instance,
                                            instance.image_meta)

    def assert_allocation_given_back(self, instance) -> None:
        self.assertEqual({}, self.client.get_allocations_for_consumer(
            instance.uuid))
        self.assertEqual({orc.VCPU: 0, orc.MEMORY_MB: 0, orc.DISK_GB: 0},
                         self.placement_usages())
        self.assertEqual('error', instance.vm_state)
        self.assertNotIn(instance.name, self.fake.hypervisor.domains)

    def test_build_keeps_allocation(self):
        instance = self.schedule(make_image(hw_firmware_type='uefi',
                                            hw_firmware_stateless='true'))
        self.build(instance)
        self.assertEqual('active', instance.vm_state)
        self.assertEqual(HOST, instance.host)
        self.assertEqual({self.rp_uuid: {orc.VCPU: 1, orc.MEMORY_MB: 256,
                                         orc.DISK_GB: 1}},
                         self.client.get_allocations_for_consumer(
                             instance.uuid))
        self.assertTrue(
            self.fake.hypervisor.domains[instance.name].isActive())

    def test_start_failure_gives_allocation_back(self):
        instance = self.schedule(make_image(hw_firmware_type='uefi',
                                            hw_firmware_stateless='true'))
        self.fake.fail_next('createWithFlags')
        self.assertRaises(fakelibvirt.libvirtError, self.build, instance)
        self.assert_allocation_given_back(instance)

    def test_stateless_secure_boot_refused_by_the_scheduler(self):
        # The host has both standard traits but no stateless build that
        # enforces secure boot: no host is chosen and nothing is claimed,
        # rather than a build failing on the compute host.
        self.assertLessEqual({STATELESS, SECURE_BOOT},
                             self.placement_traits())
        _instance, spec = compute_api.API().create(make_flavor(), make_image(
            hw_firmware_type='uefi', hw_firmware_stateless='true',
            hw_machine_type='q35', os_secure_boot='required'))
        ex = self.assertRaises(
            exception.NoValidHost,
            scheduler_manager.SchedulerManager(self.client)
            .select_destinations, spec)
        self.assertIn(virt_driver.STATELESS_SECURE_BOOT_TRAIT, str(ex))
        self.assertEqual({orc.VCPU: 0, orc.MEMORY_MB: 0, orc.DISK_GB: 0},
                         self.placement_usages())

    def test_terminate_gives_allocation_back(self):
        instance = self.schedule(make_image(hw_firmware_type='uefi'))
        self.build(instance)
        self.compute.terminate_instance(None, instance)
        self.assertEqual('deleted', instance.vm_state)
        self.assertEqual({}, self.client.get_allocations_for_consumer(
            instance.uuid))
        self.assertEqual({}, self.fake.hypervisor.domains)
        self.assertEqual({}, self.fake.hypervisor.nvram)
