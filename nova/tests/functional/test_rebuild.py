"""Rebuild onto an image the instance's host cannot honour.

A rebuild keeps the instance on its host and its allocation, so the
compute API checks what the new image asks of the host against placement:
the traits of the providers the instance is allocated from, and the
allocation itself. A refused rebuild leaves the instance as it was, so it
keeps running and rebooting as before.

Placement is real. The compute hosts are ``ComputeManager`` with
``LibvirtDriver`` on fakelibvirt posing as libvirt 8.5.0 (which cannot boot
stateless firmware) and 8.6.0: this machine's libvirt can boot stateless
firmware, so the host that cannot is posed.
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
OLD, NEW = 'compute-old', 'compute-new'
OLD_LIBVIRT, NEW_LIBVIRT = (8, 5, 0), (8, 6, 0)

STATEFUL_IMAGE = compute_fixture.make_image(
    '0f4f8a1e-5b8e-4f8e-9a59-1f7c3c1d2a01', hw_firmware_type='uefi',
    hw_machine_type='q35')
STATELESS_IMAGE = compute_fixture.make_image(
    '0f4f8a1e-5b8e-4f8e-9a59-1f7c3c1d2a02', hw_firmware_type='uefi',
    hw_machine_type='q35', hw_firmware_stateless='true')
ENCRYPTED_IMAGE = compute_fixture.make_image(
    '0f4f8a1e-5b8e-4f8e-9a59-1f7c3c1d2a03', hw_firmware_type='uefi',
    hw_machine_type='q35', hw_mem_encryption='true')


class RebuildTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.api = compute_api.API(
            report.SchedulerReportClient(self.placement.adapter))
        self.scheduler = scheduler_manager.SchedulerManager(
            report.SchedulerReportClient(self.placement.adapter))
        self.hypervisors = {}
        self.computes = {}
        self._instance_ids = iter(range(1, 1000))

    def start_compute(self, host: str, lv_ver: tuple) -> None:
        fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=lv_ver, hostname=host))
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(),
            report.SchedulerReportClient(self.placement.adapter), host=host)
        compute.init_host()
        self.hypervisors[host] = fake.hypervisor
        self.computes[host] = compute

    def boot(self, image: dict):
        instance, spec = self.api.create(
            compute_fixture.make_flavor(), image,
            instance_id=next(self._instance_ids))
        selection = self.scheduler.select_destinations(spec)
        compute = self.computes[selection.nodename]
        compute.build_and_run_instance(None, instance, instance.image_meta)
        return instance, compute

    def domain(self, instance):
        return self.hypervisors[instance.host].domains[instance.name]

    def test_refused_rebuild_leaves_the_instance_as_it_was(self):
        self.start_compute(OLD, OLD_LIBVIRT)
        instance, compute = self.boot(STATEFUL_IMAGE)
        self.assertEqual(OLD, instance.host)
        before = (dict(instance.system_metadata), instance.image_ref,
                  instance.task_state)

        for image, missing in (
                (STATELESS_IMAGE, 'trait %s' % STATELESS),
                (ENCRYPTED_IMAGE, 'trait %s, resource %s:1' % (
                    os_traits.HW_CPU_X86_AMD_SEV,
                    orc.MEM_ENCRYPTION_CONTEXT))):
            ex = self.assertRaises(exception.RebuildImageNotSupportedByHost,
                                   self.api.rebuild, instance, image)
            self.assertEqual(400, ex.code)
            self.assertEqual(
                'Instance %s cannot be rebuilt onto image %s: the image '
                'requires %s, which its host %s does not provide. Rebuild '
                'onto another image, or create a new server from this one.'
                % (instance.uuid, image['id'], missing, OLD),
                ex.format_message())
            self.assertEqual(before, (instance.system_metadata,
                                      instance.image_ref,
                                      instance.task_state))

        # The instance is still what it was: stateful, and its hard reboot
        # (which rebuilds the XML from the stored properties) works.
        self.assertIsNone(instance.image_meta.properties.get(
            'hw_firmware_stateless'))
        [nvram] = self.hypervisors[OLD].nvram
        compute.driver.reboot(None, instance, None,
                              libvirt_driver.REBOOT_HARD)
        self.assertTrue(self.domain(instance).isActive())
        self.assertEqual([nvram], list(self.hypervisors[OLD].nvram))

    def test_rebuild_on_a_host_that_can_honour_the_image(self):
        self.start_compute(NEW, NEW_LIBVIRT)
        instance, compute = self.boot(STATEFUL_IMAGE)
        self.assertEqual(NEW, instance.host)
        self.assertEqual(1, len(self.hypervisors[NEW].nvram))

        self.api.rebuild(instance, STATELESS_IMAGE)
        self.assertEqual(STATELESS_IMAGE['id'], instance.image_ref)
        compute.driver.rebuild(None, instance, instance.image_meta)
        self.assertTrue(self.domain(instance).isActive())
        self.assertEqual({}, self.hypervisors[NEW].nvram)
        compute.driver.reboot(None, instance, None,
                              libvirt_driver.REBOOT_HARD)
        self.assertEqual({}, self.hypervisors[NEW].nvram)

        # Back to the stateful image: it asks nothing of the host.
        self.api.rebuild(instance, STATEFUL_IMAGE)
        compute.driver.rebuild(None, instance, instance.image_meta)
        self.assertEqual(1, len(self.hypervisors[NEW].nvram))
