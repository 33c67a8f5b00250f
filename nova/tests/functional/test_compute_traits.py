"""Two compute hosts, one that can boot stateless firmware and one that
cannot, registering themselves with real placement.

Each compute is what a compute service is: a ``ComputeManager`` with its
own ``LibvirtDriver`` and report client. fakelibvirt poses as libvirt 8.5.0
on one host and 8.6.0 on the other; each driver keeps the connection it
opened to its own fake hypervisor. Requests go through the compute API
(``API.create``) and the scheduler (``select_destinations``), which asks
placement for allocation candidates with the ``ResourceRequest`` built from
the image. Upgrades and downgrades are service restarts: a new driver and
manager on the same host name, posing as the new version.
"""

from lxml import etree
import os_traits

from nova.compute import api as compute_api
from nova.compute import manager as compute_manager
from nova import exception
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova.scheduler import utils as scheduler_utils
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt import driver as virt_driver
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
OLD, NEW = 'compute-old', 'compute-new'
OLD_LIBVIRT, NEW_LIBVIRT = (8, 5, 0), (8, 6, 0)
OPERATOR_TRAIT = 'CUSTOM_RACK_A'
ARM = 'compute-arm'
SECURE = 'compute-secure'
STATELESS_SB_CODE = '/usr/share/OVMF/OVMF.stateless.secboot.fd'
AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd'
AAVMF_VARS = '/usr/share/AAVMF/AAVMF_VARS.fd'
#: An aarch64 host, which boots UEFI unless an image says otherwise.
ARM_HOST = {'debian_firmware': False, 'arch': 'aarch64',
            'emulator': '/usr/bin/qemu-system-aarch64',
            'machine_types': {'virt': 'virt-7.2', 'virt-7.2': None},
            'default_machine_type': 'virt-7.2'}
#: Fits once on a host (16384 MiB, 512 reserved), not twice.
BIG_MEMORY_MB = 10000

make_flavor = compute_fixture.make_flavor
make_image = compute_fixture.make_image


STATELESS_IMAGE = make_image(hw_firmware_type='uefi',
                             hw_firmware_stateless='true')
OTHER_IMAGES = (
    make_image(),
    make_image(hw_firmware_type='uefi'),
    make_image(hw_firmware_type='uefi', hw_firmware_stateless='false'),
    # BIOS holds no state: the property is ignored, not a constraint.
    make_image(hw_firmware_type='bios', hw_firmware_stateless='true'),
)


class ComputeTraitsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.operator = self.placement.adapter
        self.scheduler = scheduler_manager.SchedulerManager(
            report.SchedulerReportClient(self.operator))
        self.api = compute_api.API()
        self.hypervisors: dict[str, fakelibvirt.FakeHypervisor] = {}
        self.computes: dict[str, compute_manager.ComputeManager] = {}
        self._instance_ids = iter(range(1, 1000))
        self.start_compute(OLD, OLD_LIBVIRT)
        self.start_compute(NEW, NEW_LIBVIRT)

    def start_compute(self, host: str, lv_ver: tuple,
                      failing_probes: int = 0,
                      stateless_secure_firmware: bool = False,
                      **host_config
                      ) -> compute_manager.ComputeManager:
        """Start (or restart) the compute service of ``host``.

        The fake hypervisor installed here serves the connection the new
        driver opens in ``init_host``; the driver keeps that connection
        when the next host's fake is installed. ``failing_probes``: that
        many domain capabilities calls fail first, as a QEMU probe that
        times out while the host is busy.
        """
        fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=lv_ver, hostname=host, **host_config))
        if stateless_secure_firmware:
            # A firmware made for stateless use, its keys enrolled in the
            # executable, as built for confidential guests.
            fake.write_stateless_descriptor(
                '30-stateless-secure.json', executable=STATELESS_SB_CODE,
                features=('enrolled-keys', 'requires-smm', 'secure-boot'))
        if host_config.get('arch') == 'aarch64':
            fake.write_split_descriptor(
                '60-edk2-aarch64.json', AAVMF_CODE, AAVMF_VARS,
                arch='aarch64', machines=('virt-*',))
        for _ in range(failing_probes):
            fake.fail_next('getDomainCapabilities',
                           message='QEMU probe timed out')
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(),
            report.SchedulerReportClient(self.operator), host=host)
        compute.init_host()
        self.hypervisors[host] = fake.hypervisor
        self.computes[host] = compute
        return compute

    def rp_uuid(self, host: str) -> str:
        return compute_manager.compute_node_uuid(host)

    def traits(self, host: str) -> set:
        resp = self.operator.get(
            '/resource_providers/%s/traits' % self.rp_uuid(host),
            microversion='1.6')
        self.assertEqual(200, resp.status_code, resp.text)
        return set(resp.json()['traits'])

    def create(self, image: dict, memory_mb: int = 256):
        return self.api.create(make_flavor(memory_mb), image,
                               instance_id=next(self._instance_ids))

    def candidate_hosts(self, image: dict) -> set:
        """The hosts placement offers for a server of ``image``."""
        _instance, spec = self.create(image)
        resource_request = scheduler_utils.ResourceRequest.from_request_spec(
            spec)
        alloc_reqs, _summaries, _version = (
            self.scheduler.report_client.get_allocation_candidates(
                resource_request))
        by_uuid = {self.rp_uuid(host): host for host in self.computes}
        return {by_uuid[rp] for ar in alloc_reqs for rp in ar['allocations']}

    def schedule(self, image: dict, memory_mb: int = 256):
        instance, spec = self.create(image, memory_mb)
        return instance, self.scheduler.select_destinations(spec)

    def build(self, image: dict, memory_mb: int = 256) -> str:
        """Schedule and build a server; return the host it runs on."""
        instance, selection = self.schedule(image, memory_mb)
        self.computes[selection.nodename].build_and_run_instance(
            None, instance, instance.image_meta)
        domain = self.hypervisors[selection.nodename].domains[instance.name]
        self.assertTrue(domain.isActive())
        return selection.nodename

    # --- registration

    def test_each_host_reports_what_it_can(self):
        self.assertNotIn(STATELESS, self.traits(OLD))
        self.assertIn(STATELESS, self.traits(NEW))
        # The periodic sync of each keeps reporting its own host.
        for compute in self.computes.values():
            compute.update_available_resource()
        self.assertNotIn(STATELESS, self.traits(OLD))
        self.assertIn(STATELESS, self.traits(NEW))
        # Each driver still talks to its own hypervisor.
        self.assertEqual(OLD_LIBVIRT, self.computes[OLD].driver.host
                         .get_libvirt_version())
        self.assertEqual(NEW_LIBVIRT, self.computes[NEW].driver.host
                         .get_libvirt_version())

    # --- scheduling

    def test_stateless_image_only_on_capable_host(self):
        self.assertEqual({NEW}, self.candidate_hosts(STATELESS_IMAGE))
        for _ in range(3):
            self.assertEqual(NEW, self.build(STATELESS_IMAGE))
        self.assertEqual({}, self.hypervisors[OLD].domains)
        self.assertEqual({}, self.hypervisors[NEW].nvram)

    def test_other_images_on_either_host(self):
        for image in OTHER_IMAGES:
            self.assertEqual({OLD, NEW}, self.candidate_hosts(image),
                             image['properties'])
        # Both hosts take them: fill one, the next goes to the other.
        hosts = {self.build(make_image(hw_firmware_type='uefi'),
                            BIG_MEMORY_MB) for _ in range(2)}
        self.assertEqual({OLD, NEW}, hosts)

    def test_no_room_on_capable_host(self):
        self.assertEqual(NEW, self.build(STATELESS_IMAGE, BIG_MEMORY_MB))
        instance, spec = self.create(STATELESS_IMAGE, BIG_MEMORY_MB)
        ex = self.assertRaises(exception.NoValidHost,
                               self.scheduler.select_destinations, spec)
        self.assertIn('required=%s' % STATELESS, str(ex))
        self.assertEqual({}, self.scheduler.report_client
                         .get_allocations_for_consumer(instance.uuid))

    # --- upgrade and downgrade

    def test_upgrade_makes_old_host_eligible(self):
        self.assertEqual(NEW, self.build(STATELESS_IMAGE, BIG_MEMORY_MB))
        # In between, an operator tags the old host.
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid(OLD), OPERATOR_TRAIT)

        compute = self.start_compute(OLD, NEW_LIBVIRT)

        # Now like the new host, and the operator's trait is still there.
        self.assertEqual(self.traits(NEW) | {OPERATOR_TRAIT},
                         self.traits(OLD))
        self.assertEqual({OLD, NEW}, self.candidate_hosts(STATELESS_IMAGE))
        # The new host is full, so the next one lands on the upgraded one.
        self.assertEqual(OLD, self.build(STATELESS_IMAGE, BIG_MEMORY_MB))
        # The periodic sync afterwards changes nothing.
        writes = compute.report_client.write_count
        compute.update_available_resource()
        self.assertEqual(writes, compute.report_client.write_count)
        self.assertIn(OPERATOR_TRAIT, self.traits(OLD))

    def test_downgrade_removes_trait_keeps_custom(self):
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid(NEW), OPERATOR_TRAIT)

        self.start_compute(NEW, OLD_LIBVIRT)

        traits = self.traits(NEW)
        self.assertNotIn(STATELESS, traits)
        self.assertIn(OPERATOR_TRAIT, traits)
        self.assertEqual(set(), self.candidate_hosts(STATELESS_IMAGE))
        instance, spec = self.create(STATELESS_IMAGE)
        self.assertRaises(exception.NoValidHost,
                          self.scheduler.select_destinations, spec)
        self.assertEqual({OLD, NEW}, self.candidate_hosts(OTHER_IMAGES[0]))

    def test_failed_probe_at_restart_retried_at_next_periodic(self):
        # The restart fails the probes of init_host and of the sync that
        # follows it: the trait is withdrawn.
        compute = self.start_compute(NEW, NEW_LIBVIRT, failing_probes=3)
        self.assertNotIn(STATELESS, self.traits(NEW))
        self.assertEqual(set(), self.candidate_hosts(STATELESS_IMAGE))

        compute.update_available_resource()

        self.assertIn(STATELESS, self.traits(NEW))
        self.assertIn(os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT,
                      self.traits(NEW))
        self.assertEqual(NEW, self.build(STATELESS_IMAGE))

    def test_host_architecture_decides_when_the_image_does_not(self):
        # An image with stateless firmware and nothing else boots BIOS on
        # the x86 hosts (met by nature) and UEFI on an aarch64 one, which
        # therefore needs the trait.
        image = make_image(hw_firmware_stateless='true')
        self.start_compute(ARM, OLD_LIBVIRT, **ARM_HOST)
        self.assertIn(os_traits.HW_ARCH_AARCH64, self.traits(ARM))
        self.assertNotIn(STATELESS, self.traits(ARM))
        self.assertEqual({OLD, NEW}, self.candidate_hosts(image))

        compute = self.start_compute(ARM, NEW_LIBVIRT, **ARM_HOST)
        self.assertIn(STATELESS, self.traits(ARM))
        self.assertEqual({OLD, NEW, ARM}, self.candidate_hosts(image))
        # On the aarch64 host the guest boots stateless UEFI.
        instance, _spec = self.create(image)
        compute.build_and_run_instance(None, instance, instance.image_meta)
        domain = self.hypervisors[ARM].domains[instance.name]
        os_node = etree.fromstring(domain.XMLDesc(0)).find('os')
        self.assertEqual('aarch64', os_node.find('type').get('arch'))
        self.assertEqual(AAVMF_CODE, os_node.findtext('loader'))
        self.assertEqual('yes', os_node.find('loader').get('stateless'))
        self.assertIsNone(os_node.find('nvram'))
        self.assertEqual({}, self.hypervisors[ARM].nvram)

    def test_stateless_secure_boot_only_where_a_firmware_enforces_it(self):
        image = make_image(hw_firmware_type='uefi',
                           hw_firmware_stateless='true',
                           hw_machine_type='q35', os_secure_boot='required')
        # NEW reports both standard traits, but its OVMF enforces secure
        # boot only with a variable store: refused before any compute.
        self.assertLessEqual(
            {STATELESS, os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT},
            self.traits(NEW))
        _instance, spec = self.create(image)
        self.assertRaises(exception.NoValidHost,
                          self.scheduler.select_destinations, spec)

        self.start_compute(SECURE, NEW_LIBVIRT,
                           stateless_secure_firmware=True)
        self.assertIn(virt_driver.STATELESS_SECURE_BOOT_TRAIT,
                      self.traits(SECURE))
        self.assertNotIn(virt_driver.STATELESS_SECURE_BOOT_TRAIT,
                         self.traits(NEW))
        self.assertEqual({SECURE}, self.candidate_hosts(image))
        self.assertEqual(SECURE, self.build(image))
        [domain] = self.hypervisors[SECURE].domains.values()
        loader = etree.fromstring(domain.XMLDesc(0)).find('os/loader')
        self.assertEqual(STATELESS_SB_CODE, loader.text)
        self.assertEqual('yes', loader.get('secure'))
        self.assertEqual('yes', loader.get('stateless'))
