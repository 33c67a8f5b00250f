"""Tests of the scheduler with real placement and a fakelibvirt compute.

The compute node registers itself as a compute service does (libvirt
driver on fakelibvirt, ``ComputeManager.init_host``); the scheduler then
asks the real embedded placement for candidates and claims one.
"""

import os_resource_classes as orc
import os_traits

from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
from nova import exception
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
HOST = 'compute1'
STATELESS_IMAGE = {'hw_firmware_type': 'uefi',
                   'hw_firmware_stateless': 'true'}

make_flavor = compute_fixture.make_flavor
make_image = compute_fixture.make_image


class _SchedulerTestCase(test.NoDBTestCase):

    LV_VER = (8, 6, 0)

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.useFixture(fakelibvirt.FakeLibvirtFixture(lv_ver=self.LV_VER))
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(),
            report.SchedulerReportClient(self.placement.adapter), host=HOST)
        compute.init_host()
        self.rp_uuid = compute.node_uuid
        self.client = self.placement.client
        self.scheduler = scheduler_manager.SchedulerManager(self.client)

    def request(self, image_properties: dict, flavor=None):
        return compute_api.API().create(flavor or make_flavor(),
                                        make_image(**image_properties))

    def allocations(self, instance) -> dict:
        return self.client.get_allocations_for_consumer(instance.uuid)


class SelectDestinationsTestCase(_SchedulerTestCase):

    def test_claims_on_capable_host(self):
        instance, spec = self.request(STATELESS_IMAGE)
        selection = self.scheduler.select_destinations(spec)
        self.assertEqual(HOST, selection.nodename)
        self.assertEqual(self.rp_uuid, selection.compute_node_uuid)
        self.assertIn(STATELESS, selection.resource_request.required_traits)
        self.assertEqual({self.rp_uuid: {orc.VCPU: 1, orc.MEMORY_MB: 256,
                                         orc.DISK_GB: 1}},
                         self.allocations(instance))

    def test_each_claim_takes_resources(self):
        # 16384 MiB, 512 reserved: one 10000 MiB guest fits, not two.
        flavor = make_flavor(memory_mb=10000)
        first, spec = self.request({}, flavor)
        self.scheduler.select_destinations(spec)
        second, spec = self.request({}, flavor)
        ex = self.assertRaises(exception.NoValidHost,
                               self.scheduler.select_destinations, spec)
        self.assertIn('MEMORY_MB:10000', str(ex))
        self.assertNotEqual({}, self.allocations(first))
        self.assertEqual({}, self.allocations(second))

    def test_no_host_for_unknown_trait(self):
        instance, spec = self.request(
            {}, make_flavor(**{'trait:CUSTOM_GPU_A100': 'required'}))
        ex = self.assertRaises(exception.NoValidHost,
                               self.scheduler.select_destinations, spec)
        self.assertIn('required=CUSTOM_GPU_A100', str(ex))
        self.assertEqual({}, self.allocations(instance))


class OldHostTestCase(_SchedulerTestCase):
    """The only host runs libvirt 8.5.0: no stateless firmware there."""

    LV_VER = (8, 5, 0)

    def test_no_valid_host_names_the_query(self):
        instance, spec = self.request(STATELESS_IMAGE)
        ex = self.assertRaises(exception.NoValidHost,
                               self.scheduler.select_destinations, spec)
        self.assertIn('required=%s' % STATELESS, str(ex))
        self.assertIn('resources=DISK_GB:1,MEMORY_MB:256,VCPU:1', str(ex))
        self.assertEqual({}, self.allocations(instance))

    def test_other_requests_still_land(self):
        for properties in ({}, {'hw_firmware_type': 'uefi'},
                           {'hw_firmware_type': 'uefi',
                            'hw_firmware_stateless': 'false'},
                           {'hw_firmware_type': 'bios',
                            'hw_firmware_stateless': 'true'}):
            instance, spec = self.request(properties)
            selection = self.scheduler.select_destinations(spec)
            self.assertEqual(HOST, selection.nodename, properties)
            self.assertNotIn(STATELESS,
                             selection.resource_request.required_traits)
            self.assertIn(self.rp_uuid, self.allocations(instance))
