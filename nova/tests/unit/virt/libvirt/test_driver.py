"""Tests of LibvirtDriver against fakelibvirt posing as other hosts.

fakelibvirt plays what this machine cannot show: libvirt versions around
the first one that knows stateless loaders (8.6.0), other firmware
packages, and failures on demand. Each test looks at what an operator or a
user would see: the capability the host reports, the domain XML libvirt is
given (parsed, never compared as text), whether a domain, its NVRAM file
and the instance's files exist after an operation.
"""

import itertools
import os
import shutil

import fixtures
from lxml import etree
import os_resource_classes as orc
import os_traits
from oslo_utils import units
from oslo_utils import uuidutils

from nova.compute import provider_tree
from nova import exception
from nova import objects
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import filesystem
from nova.tests.fixtures import libvirt as fakelibvirt
from nova import utils
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host
from nova.virt.libvirt import migration

CODE = fakelibvirt.OVMF_CODE
VARS = fakelibvirt.OVMF_VARS
CODE_MS = fakelibvirt.OVMF_CODE_MS
VARS_MS = fakelibvirt.OVMF_VARS_MS
SECURE_ENROLLED = ('acpi-s3', 'enrolled-keys', 'requires-smm',
                   'secure-boot')

STATELESS_TRAIT = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
SECURE_BOOT_TRAIT = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
NODENAME = 'compute1'

make_flavor = compute_fixture.make_flavor
make_image = compute_fixture.make_image


def make_instance(image: dict, flavor: 'objects.Flavor | None' = None,
                  instance_id: int = 1) -> 'objects.Instance':
    """An instance with ``image`` stashed, as the compute API leaves it."""
    return objects.Instance(
        id=instance_id, uuid=uuidutils.generate_uuid(),
        display_name='vm-%d' % instance_id, image_ref=image['id'],
        host=None, node=None, vm_state='building', task_state=None,
        flavor=flavor or make_flavor(),
        system_metadata=utils.get_system_metadata_from_image(image))


def uefi_image(stateless: str | None = None, **properties) -> dict:
    return make_image(hw_firmware_type='uefi',
                      hw_firmware_stateless=stateless,
                      hw_machine_type=properties.pop('hw_machine_type',
                                                     'q35'),
                      **properties)


def firmware_of(xml: str) -> dict:
    """What a domain XML says about firmware, in plain values.

    Absent elements are None, so a comparison shows both what is wrong
    and what is missing.
    """
    root = etree.fromstring(xml)
    os_node = root.find('os')
    loader = os_node.find('loader')
    nvram = os_node.find('nvram')
    return {
        'firmware': os_node.get('firmware'),
        'features': {f.get('name'): f.get('enabled')
                     for f in os_node.findall('firmware/feature')} or None,
        'loader': None if loader is None else loader.text,
        'loader_attrs': None if loader is None else dict(loader.attrib),
        'nvram': None if nvram is None else {
            'path': nvram.text, 'template': nvram.get('template')},
        'smm': root.find('features/smm') is not None,
    }


def loader_firmware(path: str, *, secure: bool = False,
                    stateless: bool = False,
                    template: str | None = None) -> dict:
    """The expected ``firmware_of`` of an explicit pflash loader."""
    attrs = {'readonly': 'yes', 'type': 'pflash'}
    if secure:
        attrs['secure'] = 'yes'
    if stateless:
        attrs['stateless'] = 'yes'
    return {'firmware': None, 'features': None, 'loader': path,
            'loader_attrs': attrs,
            'nvram': None if template is None else {
                'path': None, 'template': template},
            'smm': secure}


BIOS = {'firmware': None, 'features': None, 'loader': None,
        'loader_attrs': None, 'nvram': None, 'smm': False}
STATELESS_PLAIN = loader_firmware(CODE, stateless=True)
STATEFUL_PLAIN = loader_firmware(CODE, template=VARS)
STATEFUL_SECURE = loader_firmware(CODE_MS, secure=True, template=VARS_MS)


class _DriverTestCase(test.NoDBTestCase):
    """A LibvirtDriver on fakelibvirt, Debian 12's OVMF by default.

    Firmware this machine does not have lives in a temporary directory:
    the driver refuses a loader whose files are missing.
    """

    LV_VER = (8, 6, 0)
    FAKE_ARGS: dict = {}

    def setUp(self):
        super().setUp()
        self.instances_path = self.useFixture(
            compute_fixture.ComputeStateFixture()).instances_path
        self.fake = self.use_fake(lv_ver=self.LV_VER, **self.FAKE_ARGS)
        self.firmware_dir = self.useFixture(fixtures.TempDir()).path
        self.stateless_code = self.firmware_file('OVMF.stateless.fd')
        self.stateless_secure_code = self.firmware_file(
            'OVMF.stateless.secboot.fd')

    def firmware_file(self, name: str) -> str:
        """Install a firmware image; return its path."""
        path = os.path.join(self.firmware_dir, name)
        with open(path, 'wb') as f:
            f.write(b'\0' * 4096)
        return path

    def use_fake(self, **kwargs) -> fakelibvirt.FakeLibvirtFixture:
        self.fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(**kwargs))
        return self.fake

    def start_driver(self) -> libvirt_driver.LibvirtDriver:
        drv = libvirt_driver.LibvirtDriver()
        drv.init_host(NODENAME)
        return drv

    @property
    def domains(self) -> dict:
        return self.fake.hypervisor.domains

    def domain_xml(self, instance: 'objects.Instance') -> str:
        return self.domains[instance.name].XMLDesc(0)

    def instance_dir(self, instance: 'objects.Instance') -> str:
        return os.path.join(self.instances_path, instance.uuid)

    def assert_nothing_left(self, instance: 'objects.Instance') -> None:
        self.assertNotIn(instance.name, self.domains)
        self.assertEqual({}, self.fake.hypervisor.nvram)
        self.assertFalse(os.path.exists(self.instance_dir(instance)))


class InitHostTestCase(_DriverTestCase):

    def test_stateless_support_follows_libvirt_version(self):
        for lv_ver, supported in (((8, 5, 0), False), ((8, 5, 9), False),
                                  ((8, 6, 0), True), ((8, 6, 1), True),
                                  ((9, 0, 0), True), ((10, 5, 0), True)):
            self.use_fake(lv_ver=lv_ver)
            drv = self.start_driver()
            self.assertIs(supported,
                          drv.capabilities['supports_stateless_firmware'],
                          'libvirt %s' % (lv_ver,))
        # The reason is the version, not the firmware.
        self.use_fake(lv_ver=(8, 5, 0))
        reasons = self.start_driver().host.stateless_firmware_support(
            ).reasons
        self.assertIn('libvirt 8.5.0 is older than 8.6.0', reasons[0])

    def test_no_firmware_descriptors(self):
        self.fake.remove_descriptors()
        drv = self.start_driver()
        self.assertFalse(drv.capabilities['supports_stateless_firmware'])
        self.assertFalse(drv.capabilities['supports_secure_boot'])
        support = drv.host.stateless_firmware_support()
        self.assertIsNone(support.xml_form)
        self.assertIn("no firmware descriptor of mode 'stateless'",
                      support.reasons[-1])

    def test_domain_capabilities_without_the_loader(self):
        # Descriptors installed, but libvirt offers none of their images.
        self.use_fake(loader_paths=('/usr/share/other/CODE.fd',))
        drv = self.start_driver()
        self.assertFalse(drv.capabilities['supports_stateless_firmware'])
        self.assertIn(
            'has its executable among the loader images libvirt offers '
            '(/usr/share/other/CODE.fd)',
            ' '.join(drv.host.stateless_firmware_support().reasons))

    def test_stateless_descriptor_with_autoselection(self):
        # Newer libvirt listing no loader image to name explicitly, and a
        # firmware package shipping a build of mode 'stateless'.
        self.use_fake(lv_ver=(9, 5, 0), loader_paths=())
        self.fake.write_stateless_descriptor('30-stateless.json',
                                             self.stateless_code)
        drv = self.start_driver()
        self.assertTrue(drv.capabilities['supports_stateless_firmware'])
        support = drv.host.stateless_firmware_support()
        self.assertEqual(libvirt_host.XML_FORM_AUTOSELECT, support.xml_form)
        self.assertIsNone(support.loader)

    def test_debian_firmware_uses_explicit_form(self):
        drv = self.start_driver()
        self.assertTrue(drv.capabilities['supports_stateless_firmware'])
        self.assertTrue(drv.capabilities['supports_secure_boot'])
        support = drv.host.stateless_firmware_support()
        self.assertEqual(libvirt_host.XML_FORM_EXPLICIT, support.xml_form)
        self.assertEqual(CODE, support.loader.path)

    def test_libvirt_too_old(self):
        self.use_fake(lv_ver=(6, 10, 0))
        ex = self.assertRaises(exception.InternalError, self.start_driver)
        self.assertEqual('Nova requires libvirt version 7.0.0 or greater.',
                         str(ex))

    def test_qemu_too_old(self):
        self.use_fake(hv_ver=(5, 1, 0))
        ex = self.assertRaises(exception.InternalError, self.start_driver)
        self.assertEqual('Nova requires QEMU version 5.2.0 or greater; this '
                         'host has 5.1.0.', str(ex))

    def test_oldest_supported_versions_start(self):
        self.use_fake(lv_ver=libvirt_driver.MIN_LIBVIRT_VERSION,
                      hv_ver=libvirt_driver.MIN_QEMU_VERSION)
        drv = self.start_driver()
        self.assertFalse(drv.capabilities['supports_stateless_firmware'])

    def test_libvirt_unreachable(self):
        self.fake.set_available(False)
        self.assertRaises(exception.HypervisorUnavailable,
                          self.start_driver)

    def test_two_drivers_keep_their_own_capabilities(self):
        new = self.start_driver()
        self.use_fake(lv_ver=(8, 5, 0))
        old = self.start_driver()
        self.assertTrue(new.capabilities['supports_stateless_firmware'])
        self.assertFalse(old.capabilities['supports_stateless_firmware'])
        self.assertFalse(libvirt_driver.LibvirtDriver.capabilities[
            'supports_stateless_firmware'])


class InitHostQemuVersionTestCase(_DriverTestCase):

    def test_qemu_version_unknown(self):
        # What libvirt says when it could not probe QEMU (its state
        # directory is full, say): not a version to upgrade from.
        for _call in range(2):
            self.fake.fail_next(
                'getVersion', message='internal error: Cannot find '
                                      'suitable emulator for x86_64')
        ex = self.assertRaises(exception.InternalError, self.start_driver)
        self.assertEqual('libvirt cannot tell the QEMU version of this host: '
                         'internal error: Cannot find suitable emulator for '
                         'x86_64', ex.format_message())


class UpdateProviderTreeTestCase(_DriverTestCase):

    def setUp(self):
        super().setUp()
        self.tree = provider_tree.ProviderTree()
        self.tree.new_root(NODENAME, uuidutils.generate_uuid(), 1)
        # An operator's trait and one another service set.
        self.others = {'CUSTOM_GOLD', os_traits.HW_CPU_X86_AVX2}

    def traits_after_update(self, initial: set) -> frozenset:
        self.tree.update_traits(NODENAME, initial)
        self.start_driver().update_provider_tree(self.tree, NODENAME)
        return self.tree.data(NODENAME).traits

    def test_adds_trait_when_supported(self):
        traits = self.traits_after_update(self.others)
        self.assertIn(STATELESS_TRAIT, traits)
        self.assertIn(SECURE_BOOT_TRAIT, traits)
        self.assertLessEqual(self.others, traits)

    def test_removes_trait_when_not_supported(self):
        self.use_fake(lv_ver=(8, 5, 0))
        traits = self.traits_after_update(self.others | {STATELESS_TRAIT})
        self.assertNotIn(STATELESS_TRAIT, traits)
        self.assertLessEqual(self.others, traits)

    def test_removes_trait_without_firmware(self):
        self.fake.remove_descriptors()
        traits = self.traits_after_update(
            self.others | {STATELESS_TRAIT, SECURE_BOOT_TRAIT})
        self.assertEqual(
            self.others | {os_traits.COMPUTE_IMAGE_TYPE_QCOW2,
                           os_traits.COMPUTE_IMAGE_TYPE_RAW,
                           os_traits.HW_ARCH_X86_64},
            traits)

    def test_failed_probe_at_start_retried_at_next_update(self):
        # Both probes at start fail (stateless, then secure boot): neither
        # trait at first, both at the next periodic update.
        for _ in range(2):
            self.fake.fail_next('getDomainCapabilities',
                                message='QEMU probe timed out')
        drv = self.start_driver()
        self.assertEqual(
            {STATELESS_TRAIT: False, SECURE_BOOT_TRAIT: False},
            {t: v for t, v in drv.capabilities_as_traits().items()
             if t in (STATELESS_TRAIT, SECURE_BOOT_TRAIT)})
        self.assertIn('asking again at the next update', self.stdlog.output)
        drv.update_provider_tree(self.tree, NODENAME)
        traits = self.tree.data(NODENAME).traits
        self.assertIn(STATELESS_TRAIT, traits)
        self.assertIn(SECURE_BOOT_TRAIT, traits)
        # Once answered, later updates ask libvirt nothing more.
        calls = drv.host.api_calls['getDomainCapabilities']
        drv.update_provider_tree(self.tree, NODENAME)
        self.assertEqual(calls, drv.host.api_calls['getDomainCapabilities'])

    def test_inventory(self):
        self.start_driver().update_provider_tree(self.tree, NODENAME)
        inventory = self.tree.data(NODENAME).inventory
        self.assertEqual({orc.VCPU, orc.MEMORY_MB, orc.DISK_GB},
                         set(inventory))
        self.assertEqual(4, inventory[orc.VCPU]['total'])
        self.assertEqual(16384, inventory[orc.MEMORY_MB]['total'])
        self.assertEqual(512, inventory[orc.MEMORY_MB]['reserved'])
        disk_gb = shutil.disk_usage(self.instances_path).total // units.Gi
        self.assertEqual(disk_gb, inventory[orc.DISK_GB]['total'])
        self.assertEqual(disk_gb, inventory[orc.DISK_GB]['max_unit'])

    def test_no_disk_inventory_under_one_gib(self):
        # Placement refuses a DISK_GB total of 0: the whole inventory
        # update failed with a 400, VCPU and MEMORY_MB included.
        small = self.useFixture(
            filesystem.SmallFilesystemFixture(64 * units.Mi))
        self.flags(instances_path=small.path)
        self.start_driver().update_provider_tree(self.tree, NODENAME)
        self.assertEqual({orc.VCPU, orc.MEMORY_MB},
                         set(self.tree.data(NODENAME).inventory))

    def test_inventory_follows_host(self):
        self.use_fake(cpus=32, memory_mb=262144)
        self.start_driver().update_provider_tree(self.tree, NODENAME)
        inventory = self.tree.data(NODENAME).inventory
        self.assertEqual(32, inventory[orc.VCPU]['max_unit'])
        self.assertEqual(262144, inventory[orc.MEMORY_MB]['total'])


class _GuestConfigTestCase(_DriverTestCase):

    def setUp(self):
        super().setUp()
        self._next_id = itertools.count(1)

    def guest_xml(self, drv: libvirt_driver.LibvirtDriver, image: dict,
                  flavor: 'objects.Flavor | None' = None) -> str:
        instance = make_instance(image, flavor, next(self._next_id))
        return drv._get_guest_xml(instance,
                                  objects.ImageMeta.from_dict(image))


class GuestFirmwareMatrixTestCase(_GuestConfigTestCase):
    """Every combination of the firmware inputs on Debian 12's OVMF."""

    FIRMWARE_TYPES = ('bios', 'uefi', None)
    STATELESS = (None, 'true', 'false')
    POLICIES = (None, 'disabled', 'optional', 'required')
    MACHINES = ('q35', 'pc-q35-7.2', 'pc')

    @staticmethod
    def expected(firmware_type, stateless, policy, machine):
        """The firmware, or the exception, each combination must give."""
        if firmware_type != 'uefi':
            # x86_64 boots BIOS unless told otherwise.
            if policy == 'required':
                return exception.SecureBootRequiresUEFI
            return BIOS
        q35 = machine != 'pc'  # Debian's secure builds target q35 only
        if stateless == 'true':
            if policy == 'required':
                return exception.StatelessSecureBootNotSupported
            return STATELESS_PLAIN
        if policy == 'required':
            return STATEFUL_SECURE if q35 else (
                exception.SecureBootNotSupported)
        if policy == 'optional' and q35:
            return STATEFUL_SECURE
        return STATEFUL_PLAIN

    def test_matrix(self):
        drv = self.start_driver()
        conn = fakelibvirt.open('qemu:///system')
        wrong = []
        for firmware_type, stateless, policy, machine, source in (
                itertools.product(self.FIRMWARE_TYPES, self.STATELESS,
                                  self.POLICIES, self.MACHINES,
                                  ('image', 'flavor'))):
            if policy is None and source == 'flavor':
                continue
            image = make_image(
                hw_firmware_type=firmware_type,
                hw_firmware_stateless=stateless, hw_machine_type=machine,
                os_secure_boot=policy if source == 'image' else None)
            flavor = make_flavor(**({'os:secure_boot': policy}
                                    if source == 'flavor' else {}))
            case = (firmware_type, stateless, policy, machine, source)
            want = self.expected(firmware_type, stateless, policy, machine)
            try:
                xml = self.guest_xml(drv, image, flavor)
            except exception.NovaException as ex:
                if type(ex) is not want:
                    wrong.append((case, want, repr(ex)))
                continue
            got = firmware_of(xml)
            if got != want:
                wrong.append((case, want, got))
                continue
            # libvirt accepts it, and a stateless guest gets no NVRAM.
            domain = conn.defineXML(xml)
            defined = firmware_of(domain.XMLDesc(0))
            if (defined['nvram'] is None) != (want['nvram'] is None):
                wrong.append((case, 'nvram after define', defined))
            domain.undefineFlags(fakelibvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
        self.assertEqual([], wrong)

    def test_stateless_xml_has_no_nvram_and_says_so(self):
        drv = self.start_driver()
        root = etree.fromstring(self.guest_xml(drv, uefi_image('true')))
        loader = root.find('os/loader')
        self.assertEqual('yes', loader.get('stateless'))
        self.assertEqual('yes', loader.get('readonly'))
        self.assertEqual('pflash', loader.get('type'))
        self.assertIsNone(loader.get('secure'))
        self.assertEqual([], root.findall('os/nvram'))
        # UEFI on x86_64 needs ACPI, or libvirt refuses the domain.
        self.assertIsNotNone(root.find('features/acpi'))

    def test_stateless_on_host_without_support(self):
        self.use_fake(lv_ver=(8, 5, 0))
        drv = self.start_driver()
        ex = self.assertRaises(exception.StatelessFirmwareNotSupported,
                               self.guest_xml, drv, uefi_image('true'))
        self.assertIn('libvirt 8.5.0 is older than 8.6.0', str(ex))
        # Stateful UEFI and BIOS still work there.
        self.assertEqual(STATEFUL_PLAIN,
                         firmware_of(self.guest_xml(drv, uefi_image())))
        self.assertEqual(BIOS, firmware_of(self.guest_xml(
            drv, make_image(hw_firmware_stateless='true'))))

    def test_stateless_secure_boot_needs_stateless_build(self):
        # Debian's split secure builds keep their keys in the variable
        # store: without it nothing would enforce secure boot, and their
        # SMM code may not boot at all.
        drv = self.start_driver()
        for image, flavor in (
                (uefi_image('true', os_secure_boot='required'), None),
                (uefi_image('true'),
                 make_flavor(**{'os:secure_boot': 'required'}))):
            ex = self.assertRaises(
                exception.StatelessSecureBootNotSupported,
                self.guest_xml, drv, image, flavor)
            self.assertIsInstance(ex, exception.Invalid)

    def test_stateless_secure_boot_with_stateless_build(self):
        self.fake.write_stateless_descriptor(
            '30-stateless-secure.json', self.stateless_secure_code,
            features=SECURE_ENROLLED)
        secure = loader_firmware(self.stateless_secure_code, secure=True,
                                 stateless=True)
        drv = self.start_driver()
        xml = self.guest_xml(drv, uefi_image('true',
                                             os_secure_boot='required'))
        self.assertEqual(secure, firmware_of(xml))
        # Without secure boot the plain build is used, not the secure one.
        for policy in (None, 'disabled'):
            xml = self.guest_xml(drv, uefi_image('true',
                                                 os_secure_boot=policy))
            self.assertEqual(STATELESS_PLAIN, firmware_of(xml))
        # Optional takes the enforcing build when there is one.
        xml = self.guest_xml(drv, uefi_image('true',
                                             os_secure_boot='optional'))
        self.assertEqual(secure, firmware_of(xml))

    def test_optional_never_claims_unenforced_secure_boot(self):
        # Only secure-boot capable builds without enrolled keys: nothing
        # here enforces secure boot, stateful or stateless.
        self.fake.remove_descriptors()
        self.fake.write_split_descriptor(
            '50-secure.json', fakelibvirt.OVMF_CODE_SECBOOT, VARS,
            features=('acpi-s3', 'requires-smm', 'secure-boot'))
        drv = self.start_driver()
        got = firmware_of(self.guest_xml(drv, uefi_image(
            None, os_secure_boot='optional')))
        self.assertEqual(fakelibvirt.OVMF_CODE_SECBOOT, got['loader'])
        self.assertNotIn('secure', got['loader_attrs'])
        # The build needs SMM even though secure boot is off.
        self.assertTrue(got['smm'])
        # Without its variable store that build stops in the firmware:
        # no stateless guest here.
        self.assertRaises(
            exception.StatelessFirmwareNotSupported, self.guest_xml, drv,
            uefi_image('true', os_secure_boot='optional'))

    def test_explicit_machine_type_alias_and_versioned_agree(self):
        drv = self.start_driver()
        alias = firmware_of(self.guest_xml(drv, uefi_image(
            'true', hw_machine_type='q35')))
        versioned = firmware_of(self.guest_xml(drv, uefi_image(
            'true', hw_machine_type='pc-q35-7.2')))
        self.assertEqual(alias, versioned)

    def test_configured_default_machine_type(self):
        # Without hw_machine_type the configured default decides which
        # builds fit: Debian's secure builds only target q35.
        image = make_image(hw_firmware_type='uefi',
                           os_secure_boot='required')
        self.flags(hw_machine_type=['x86_64=q35'], group='libvirt')
        drv = self.start_driver()
        root = etree.fromstring(self.guest_xml(drv, image))
        self.assertEqual('q35', root.find('os/type').get('machine'))
        self.assertEqual(STATEFUL_SECURE,
                         firmware_of(etree.tostring(root)))
        self.flags(hw_machine_type=[], group='libvirt')
        drv = self.start_driver()
        self.assertRaises(exception.SecureBootNotSupported,
                          self.guest_xml, drv, image)


class AArch64GuestFirmwareTestCase(_GuestConfigTestCase):
    """An aarch64 host, where an image that says nothing boots UEFI."""

    FAKE_ARGS = {
        'debian_firmware': False, 'arch': 'aarch64',
        'emulator': '/usr/bin/qemu-system-aarch64',
        'machine_types': {'virt': 'virt-7.2', 'virt-7.2': None},
        'default_machine_type': 'virt-7.2',
    }

    def setUp(self):
        super().setUp()
        self.aavmf_code = self.firmware_file('AAVMF_CODE.fd')
        self.aavmf_vars = self.firmware_file('AAVMF_VARS.fd')
        self.fake.write_split_descriptor(
            '60-edk2-aarch64.json', self.aavmf_code, self.aavmf_vars,
            arch='aarch64', machines=('virt-*',))

    def test_unset_firmware_boots_uefi(self):
        drv = self.start_driver()
        xml = self.guest_xml(drv, make_image(hw_architecture='aarch64'))
        self.assertEqual(
            loader_firmware(self.aavmf_code, template=self.aavmf_vars),
            firmware_of(xml))
        self.assertEqual('aarch64',
                         etree.fromstring(xml).find('os/type').get('arch'))

    def test_unset_firmware_stateless(self):
        drv = self.start_driver()
        self.assertTrue(drv.capabilities['supports_stateless_firmware'])
        xml = self.guest_xml(drv, make_image(hw_architecture='aarch64',
                                             hw_firmware_stateless='true'))
        self.assertEqual(loader_firmware(self.aavmf_code, stateless=True),
                         firmware_of(xml))
        fakelibvirt.open().defineXML(xml)

    def test_emulated_guest_gets_a_64_bit_cpu_and_no_apic(self):
        # QEMU's default CPU of the virt machine is a 32-bit Cortex-A15,
        # which cannot run 64-bit UEFI; the APIC is an x86 device.
        drv = self.start_driver()
        root = etree.fromstring(self.guest_xml(
            drv, make_image(hw_architecture='aarch64')))
        self.assertEqual('maximum', root.find('cpu').get('mode'))
        self.assertIsNone(root.find('features/apic'))
        self.assertIsNotNone(root.find('features/acpi'))

    def test_architecture_default_machine_type(self):
        # libvirt's own default for aarch64 is a board without UEFI.
        self.flags(hw_machine_type=[], group='libvirt')
        drv = self.start_driver()
        self.assertEqual('virt', drv.host.get_default_machine_type(
            'aarch64'))
        self.assertIsNone(drv.host.get_default_machine_type('x86_64'))
        self.flags(hw_machine_type=['aarch64=virt-7.2'], group='libvirt')
        self.assertEqual('virt-7.2', drv.host.get_default_machine_type(
            'aarch64'))

    def test_explicit_bios_has_no_loader(self):
        drv = self.start_driver()
        xml = self.guest_xml(drv, make_image(hw_architecture='aarch64',
                                             hw_firmware_type='bios'))
        self.assertEqual(BIOS, firmware_of(xml))

    def test_image_without_architecture_boots_uefi(self):
        # The guest architecture is the host's when the image does not
        # say: UEFI here, and a stateless request is honoured.
        drv = self.start_driver()
        xml = self.guest_xml(drv, make_image())
        self.assertEqual(
            loader_firmware(self.aavmf_code, template=self.aavmf_vars),
            firmware_of(xml))
        xml = self.guest_xml(drv, make_image(hw_firmware_stateless='true'))
        self.assertEqual(loader_firmware(self.aavmf_code, stateless=True),
                         firmware_of(xml))

    def test_image_architecture_decides_over_the_hosts(self):
        # An x86_64 image naming no firmware boots BIOS, as x86_64 guests
        # do, on this aarch64 host where a guest of the host's own
        # architecture boots UEFI; a stateless request for it is one for
        # BIOS, which has no variable store: ignored, no loader.
        drv = self.start_driver()
        for stateless in (None, 'true'):
            xml = self.guest_xml(drv, make_image(
                hw_architecture='x86_64', hw_firmware_stateless=stateless))
            self.assertEqual(BIOS, firmware_of(xml))
            self.assertEqual(
                'x86_64', etree.fromstring(xml).find('os/type').get('arch'))
        self.assertEqual(
            loader_firmware(self.aavmf_code, template=self.aavmf_vars),
            firmware_of(self.guest_xml(
                drv, make_image(hw_architecture='aarch64'))))

    def test_image_without_architecture_stateless_unsupported(self):
        self.use_fake(lv_ver=(8, 5, 0), **self.FAKE_ARGS)
        self.fake.write_split_descriptor(
            '60-edk2-aarch64.json', self.aavmf_code, self.aavmf_vars,
            arch='aarch64', machines=('virt-*',))
        drv = self.start_driver()
        self.assertRaises(exception.StatelessFirmwareNotSupported,
                          self.guest_xml, drv,
                          make_image(hw_firmware_stateless='true'))

    def test_reports_its_architecture(self):
        tree = provider_tree.ProviderTree()
        tree.new_root(NODENAME, uuidutils.generate_uuid(), 1)
        self.start_driver().update_provider_tree(tree, NODENAME)
        traits = tree.data(NODENAME).traits
        self.assertIn(os_traits.HW_ARCH_AARCH64, traits)
        self.assertNotIn(os_traits.HW_ARCH_X86_64, traits)


class AutoselectGuestFirmwareTestCase(_GuestConfigTestCase):
    """A newer libvirt that can only autoselect stateless firmware."""

    LV_VER = (9, 5, 0)
    FAKE_ARGS = {'loader_paths': ()}

    def setUp(self):
        super().setUp()
        self.fake.write_stateless_descriptor('30-stateless.json',
                                             self.stateless_code)

    def autoselected(self, features: dict | None) -> dict:
        return {'firmware': 'efi', 'features': features, 'loader': None,
                'loader_attrs': {'stateless': 'yes'}, 'nvram': None,
                'smm': False}

    def test_form_per_policy(self):
        drv = self.start_driver()
        self.assertEqual(
            libvirt_host.XML_FORM_AUTOSELECT,
            drv.host.stateless_firmware_support().xml_form)
        for policy, features in (
                (None, {'secure-boot': 'no'}),
                ('disabled', {'secure-boot': 'no'}),
                ('optional', None)):
            xml = self.guest_xml(drv, uefi_image('true',
                                                 os_secure_boot=policy))
            self.assertEqual(self.autoselected(features), firmware_of(xml),
                             policy)

    def test_required_with_stateless_secure_build(self):
        self.fake.write_stateless_descriptor(
            '20-stateless-secure.json', self.stateless_secure_code,
            features=SECURE_ENROLLED)
        drv = self.start_driver()
        xml = self.guest_xml(drv, uefi_image('true',
                                             os_secure_boot='required'))
        self.assertEqual(
            self.autoselected({'secure-boot': 'yes',
                               'enrolled-keys': 'yes'}),
            firmware_of(xml))

    def test_required_without_stateless_secure_build(self):
        # libvirt would refuse to start it; it must fail before anything
        # is defined, as with the explicit form.
        drv = self.start_driver()
        instance = make_instance(uefi_image('true',
                                            os_secure_boot='required'))
        self.assertRaises(exception.StatelessSecureBootNotSupported,
                          drv.spawn, None, instance, instance.image_meta)
        self.assert_nothing_left(instance)

    def test_spawn_autoselected(self):
        drv = self.start_driver()
        instance = make_instance(uefi_image('true'))
        drv.spawn(None, instance, instance.image_meta)
        self.assertTrue(self.domains[instance.name].isActive())
        self.assertEqual({}, self.fake.hypervisor.nvram)


class LifecycleTestCase(_DriverTestCase):
    """Which operations keep a stateful guest's NVRAM, which remove it."""

    #: A UEFI variable the guest set, e.g. its boot entry.
    VARIABLE = ('Boot0001', 'debian')

    def setUp(self):
        super().setUp()
        self.drv = self.start_driver()

    def spawn(self, image: dict, instance_id: int = 1) -> 'objects.Instance':
        instance = make_instance(image, instance_id=instance_id)
        self.drv.spawn(None, instance, instance.image_meta)
        return instance

    def nvram_path(self, instance: 'objects.Instance') -> str:
        return os.path.join(self.fake.config.nvram_dir,
                            '%s_VARS.fd' % instance.name)

    def spawn_stateful(self) -> 'objects.Instance':
        instance = self.spawn(uefi_image())
        variables = self.fake.hypervisor.nvram[self.nvram_path(instance)]
        variables.update([self.VARIABLE])
        return instance

    def assert_variables_kept(self, instance: 'objects.Instance') -> None:
        self.assertEqual(dict([self.VARIABLE]),
                         self.fake.hypervisor.nvram.get(
                             self.nvram_path(instance)))

    def assert_running(self, instance: 'objects.Instance') -> None:
        self.assertEqual(libvirt_driver.POWER_RUNNING,
                         self.drv.get_info(instance))

    def test_spawn_stateless(self):
        instance = self.spawn(uefi_image('true'))
        self.assert_running(instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertEqual({}, self.fake.hypervisor.nvram)
        self.assertTrue(os.path.exists(os.path.join(
            self.instance_dir(instance), libvirt_driver.DISK_NAME)))

    def test_spawn_stateful_creates_nvram(self):
        instance = self.spawn(uefi_image())
        self.assert_running(instance)
        self.assertEqual({self.nvram_path(instance): {}},
                         self.fake.hypervisor.nvram)

    def test_destroy_removes_nvram(self):
        instance = self.spawn_stateful()
        self.drv.destroy(None, instance)
        self.assert_nothing_left(instance)
        self.assertEqual(libvirt_driver.POWER_NOSTATE,
                         self.drv.get_info(instance))

    def test_destroy_of_a_stopped_guest(self):
        instance = self.spawn_stateful()
        self.drv.power_off(instance)
        self.drv.destroy(None, instance)
        self.assert_nothing_left(instance)

    def test_hard_reboot_keeps_nvram(self):
        instance = self.spawn_stateful()
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self.assert_variables_kept(instance)

    def test_power_off_and_on_keep_nvram(self):
        instance = self.spawn_stateful()
        self.drv.power_off(instance)
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.drv.get_info(instance))
        self.drv.power_on(None, instance)
        self.assert_running(instance)
        self.assert_variables_kept(instance)

    def test_rescue_and_unrescue_keep_nvram(self):
        instance = self.spawn_stateful()
        self.drv.rescue(None, instance, None,
                        objects.ImageMeta.from_dict(make_image()))
        disks = etree.fromstring(self.domain_xml(instance)).findall(
            'devices/disk/source')
        self.assertEqual(
            [libvirt_driver.RESCUE_DISK_NAME, libvirt_driver.DISK_NAME],
            [os.path.basename(d.get('file')) for d in disks])
        self.assert_running(instance)
        self.assert_variables_kept(instance)
        self.drv.unrescue(None, instance)
        disks = etree.fromstring(self.domain_xml(instance)).findall(
            'devices/disk/source')
        self.assertEqual([libvirt_driver.DISK_NAME],
                         [os.path.basename(d.get('file')) for d in disks])
        self.assert_running(instance)
        self.assert_variables_kept(instance)

    def test_rescue_keeps_stateless(self):
        # The rescue image is a plain BIOS image; the instance's own
        # stashed properties decide the firmware.
        instance = self.spawn(uefi_image('true'))
        self.drv.rescue(None, instance, None,
                        objects.ImageMeta.from_dict(make_image()))
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.drv.unrescue(None, instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertEqual({}, self.fake.hypervisor.nvram)

    def test_finish_migration_keeps_nvram(self):
        instance = self.spawn_stateful()
        self.drv.migrate_disk_and_power_off(None, instance, NODENAME,
                                            instance.flavor)
        instance.flavor = make_flavor()
        instance.flavor.memory_mb = 512
        instance.flavor.root_gb = 2
        self.drv.finish_migration(None, None, instance, '', None,
                                  instance.image_meta, True)
        self.assert_running(instance)
        self.assert_variables_kept(instance)
        memory = etree.fromstring(self.domain_xml(instance)).find('memory')
        self.assertEqual(str(512 * units.Ki), memory.text)

    def test_hard_reboot_keeps_stateless(self):
        instance = self.spawn(uefi_image('true'))
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertEqual({}, self.fake.hypervisor.nvram)

    def test_failed_hard_reboot_keeps_domain_and_nvram(self):
        instance = self.spawn_stateful()
        self.fake.fail_next('createWithFlags')
        self.assertRaises(fakelibvirt.libvirtError, self.drv.reboot, None,
                          instance, None, libvirt_driver.REBOOT_HARD)
        # The guest is down but intact: another hard reboot brings it
        # back with its variables.
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.drv.get_info(instance))
        self.assert_variables_kept(instance)
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self.assert_variables_kept(instance)

    def test_define_refused_at_hard_reboot_keeps_domain_and_nvram(self):
        instance = self.spawn_stateful()
        self.fake.fail_next('defineXML', fakelibvirt.VIR_ERR_XML_DETAIL,
                            error_domain=fakelibvirt.VIR_FROM_DOMAIN)
        self.assertRaises(fakelibvirt.libvirtError, self.drv.reboot, None,
                          instance, None, libvirt_driver.REBOOT_HARD)
        # The old definition stays, with its NVRAM: nothing is orphaned
        # and destroy removes both.
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.drv.get_info(instance))
        self.assert_variables_kept(instance)
        self.drv.destroy(None, instance)
        self.assert_nothing_left(instance)

    def _install_newer_firmware(self, **kwargs) -> str:
        """A firmware package installed after the guests were created,
        whose descriptor sorts first; the service restarts.
        """
        code = self.firmware_file('OVMF_CODE.new.fd')
        self.fake.write_split_descriptor(
            '30-newer.json', code, self.firmware_file('OVMF_VARS.new.fd'),
            **kwargs)
        self.drv = self.start_driver()
        return code

    def test_stateful_guest_keeps_its_loader(self):
        instance = self.spawn_stateful()
        created = firmware_of(self.domain_xml(instance))
        self.assertEqual(CODE, created['loader'])
        newer = self._install_newer_firmware()
        # A new guest gets the newer build...
        other = self.spawn(uefi_image(), instance_id=2)
        self.assertEqual(newer, firmware_of(self.domain_xml(other))['loader'])

        # ...the existing one keeps the build its variables were made
        # by, through a hard reboot, a power cycle and a resize.
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assertEqual(created, firmware_of(self.domain_xml(instance)))
        self.drv.power_off(instance)
        self.drv.power_on(None, instance)
        self.assertEqual(created, firmware_of(self.domain_xml(instance)))
        self.drv.migrate_disk_and_power_off(None, instance, NODENAME,
                                            instance.flavor)
        instance.flavor = make_flavor(memory_mb=512, flavor_id=2)
        self.drv.finish_migration(None, None, instance, '', None,
                                  instance.image_meta, True)
        self.assertEqual(created, firmware_of(self.domain_xml(instance)))
        self.drv.finish_revert_migration(None, instance, None)
        self.assertEqual(created, firmware_of(self.domain_xml(instance)))
        self.assert_running(instance)
        self.assert_variables_kept(instance)

    def test_stateful_guest_keeps_smm_and_secure_loader(self):
        instance = self.spawn(uefi_image(os_secure_boot='required'))
        created = firmware_of(self.domain_xml(instance))
        self.assertEqual(CODE_MS, created['loader'])
        self._install_newer_firmware(features=SECURE_ENROLLED)
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assertEqual(created, firmware_of(self.domain_xml(instance)))

    def test_resize_to_another_secure_boot_policy_rechooses(self):
        instance = self.spawn_stateful()
        self.drv.power_off(instance)
        instance.flavor = make_flavor(flavor_id=2,
                                      **{'os:secure_boot': 'required'})
        self.drv.finish_migration(None, None, instance, '', None,
                                  instance.image_meta, False)
        got = firmware_of(self.domain_xml(instance))
        self.assertEqual(CODE_MS, got['loader'])
        self.assertEqual('yes', got['loader_attrs']['secure'])

    def test_stateless_guest_rechooses_its_loader(self):
        instance = self.spawn(uefi_image('true'))
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.fake.write_stateless_descriptor(
            '30-stateless.json', executable=self.stateless_code)
        self.drv = self.start_driver()
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assertEqual(loader_firmware(self.stateless_code,
                                         stateless=True),
                         firmware_of(self.domain_xml(instance)))
        self.assertEqual({}, self.fake.hypervisor.nvram)

    def _restart_with_failing_probes(self, count: int) -> None:
        for _ in range(count):
            self.fake.fail_next('getDomainCapabilities',
                                message='QEMU probe timed out')
        self.drv = self.start_driver()

    def test_existing_stateless_guest_starts_after_a_failed_probe(self):
        instance = self.spawn(uefi_image('true'))
        self.drv.power_off(instance)
        # The service restarts and libvirt fails its first probe.
        self._restart_with_failing_probes(1)
        self.assertFalse(self.drv.capabilities['supports_stateless_firmware'])

        self.drv.power_on(None, instance)

        self.assert_running(instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertTrue(self.drv.host.supports_stateless_firmware)

    def test_existing_stateless_guest_starts_while_probes_fail(self):
        instance = self.spawn(uefi_image('true'))
        # Every probe fails: the guest keeps the loader of its definition.
        self._restart_with_failing_probes(3)
        self.drv.reboot(None, instance, None, libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertIn('Starting stateless guest %s on the loader of its '
                      'definition' % instance.name, self.stdlog.output)
        self.assertEqual({}, self.fake.hypervisor.nvram)
        # A new stateless guest is still refused while libvirt fails.
        self.fake.fail_next('getDomainCapabilities')
        self.drv.host._domain_caps.clear()
        other = make_instance(uefi_image('true'), instance_id=2)
        self.assertRaises(exception.StatelessFirmwareNotSupported,
                          self.drv.spawn, None, other, other.image_meta)
        self.assert_nothing_left(other)

    def test_move_to_another_host_needs_shared_storage(self):
        instance = self.spawn_stateful()
        ex = self.assertRaises(
            exception.MigrationPreCheckError,
            self.drv.migrate_disk_and_power_off, None, instance,
            'compute2', instance.flavor)
        self.assertIn('needs shared instance storage', str(ex))
        # Refused before anything was touched.
        self.assert_running(instance)
        self.drv.migrate_disk_and_power_off(None, instance, 'compute2',
                                            instance.flavor,
                                            shared_storage=True)
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.drv.get_info(instance))

    def test_confirm_removes_the_source_domain_only_after_a_move(self):
        instance = self.spawn_stateful()
        self.drv.power_off(instance)
        instance.host = NODENAME
        self.drv.confirm_migration(None, None, instance)
        self.assert_variables_kept(instance)
        instance.host = 'compute2'
        self.drv.confirm_migration(None, None, instance)
        self.assertNotIn(instance.name, self.domains)
        self.assertEqual({}, self.fake.hypervisor.nvram)
        # The disks, on shared storage, are the destination's now.
        self.assertTrue(os.path.exists(os.path.join(
            self.instance_dir(instance), libvirt_driver.DISK_NAME)))

    def test_shared_storage_check(self):
        data = self.drv.check_instance_shared_storage_local(
            None, make_instance(uefi_image()))
        self.assertTrue(self.drv.check_instance_shared_storage_remote(
            None, data))
        self.drv.check_instance_shared_storage_cleanup(None, data)
        self.assertFalse(self.drv.check_instance_shared_storage_remote(
            None, data))

    def test_start_failure_during_spawn_leaves_nothing(self):
        self.fake.fail_next('createWithFlags',
                            fakelibvirt.VIR_ERR_OPERATION_FAILED,
                            'QEMU unexpectedly closed the monitor')
        instance = make_instance(uefi_image())
        ex = self.assertRaises(fakelibvirt.libvirtError, self.drv.spawn,
                               None, instance, instance.image_meta)
        self.assertIn('QEMU unexpectedly closed the monitor', str(ex))
        self.assert_nothing_left(instance)

    def test_define_failure_during_spawn_leaves_nothing(self):
        self.fake.fail_next('defineXML', fakelibvirt.VIR_ERR_XML_DETAIL,
                            error_domain=fakelibvirt.VIR_FROM_DOMAIN)
        instance = make_instance(uefi_image('true'))
        self.assertRaises(fakelibvirt.libvirtError, self.drv.spawn, None,
                          instance, instance.image_meta)
        self.assert_nothing_left(instance)

    def test_connection_lost_during_spawn(self):
        self.fake.drop_connection_on('createWithFlags')
        instance = make_instance(uefi_image())
        self.assertRaises(exception.HypervisorUnavailable, self.drv.spawn,
                          None, instance, instance.image_meta)
        # The driver reconnected and cleaned up.
        self.assertEqual([], self.drv.list_instances())
        self.assert_nothing_left(instance)
        # And it works again.
        instance = self.spawn(uefi_image('true'), instance_id=2)
        self.assertEqual([instance.name], self.drv.list_instances())

    def test_unsupported_request_fails_before_anything_exists(self):
        for image in (uefi_image('true', os_secure_boot='required'),
                      uefi_image(hw_machine_type='pc',
                                 os_secure_boot='required')):
            instance = make_instance(image)
            self.assertRaises(exception.Invalid, self.drv.spawn, None,
                              instance, instance.image_meta)
            self.assert_nothing_left(instance)

    def test_stateless_not_supported_fails_before_anything_exists(self):
        self.use_fake(lv_ver=(8, 5, 0))
        self.drv = self.start_driver()
        instance = make_instance(uefi_image('true'))
        self.assertRaises(exception.StatelessFirmwareNotSupported,
                          self.drv.spawn, None, instance,
                          instance.image_meta)
        self.assert_nothing_left(instance)

    def test_rebuild_stateful_to_stateless_drops_nvram(self):
        instance = self.spawn_stateful()
        image = uefi_image('true')
        instance.system_metadata = utils.replace_image_system_metadata(
            instance.system_metadata, image)
        self.drv.rebuild(None, instance, instance.image_meta)
        self.assert_running(instance)
        self.assertEqual(STATELESS_PLAIN,
                         firmware_of(self.domain_xml(instance)))
        self.assertEqual({}, self.fake.hypervisor.nvram)

    def test_rebuild_onto_unbootable_image_keeps_guest(self):
        instance = self.spawn_stateful()
        image = objects.ImageMeta.from_dict(
            uefi_image('true', os_secure_boot='required'))
        self.assertRaises(exception.StatelessSecureBootNotSupported,
                          self.drv.rebuild, None, instance, image)
        self.assert_running(instance)
        self.assert_variables_kept(instance)


class LiveMigrationTestCase(_DriverTestCase):
    """The checks both ends make before a live migration starts."""

    def destination(self, lv_ver=(8, 6, 0), **kwargs
                    ) -> libvirt_driver.LibvirtDriver:
        self.use_fake(lv_ver=lv_ver, **kwargs)
        return self.start_driver()

    def test_old_destination_refuses_stateless_instance(self):
        dest = self.destination(lv_ver=(8, 5, 0))
        instance = make_instance(uefi_image('true'))
        ex = self.assertRaises(exception.MigrationPreCheckError,
                               dest.check_can_live_migrate_destination,
                               None, instance)
        self.assertIn(instance.uuid, str(ex))
        self.assertIn('destination host does not support it', str(ex))
        self.assertIn('libvirt 8.5.0 is older than 8.6.0', str(ex))

    def test_old_destination_takes_stateful_instance(self):
        dest = self.destination(lv_ver=(8, 5, 0))
        for image in (uefi_image(), uefi_image('false'), make_image(
                hw_firmware_stateless='true')):
            data = dest.check_can_live_migrate_destination(
                None, make_instance(image))
            self.assertFalse(data.dst_supports_stateless_firmware)

    def test_new_destination_reports_its_loader(self):
        dest = self.destination()
        data = dest.check_can_live_migrate_destination(
            None, make_instance(uefi_image('true')))
        self.assertIsInstance(data, migration.LibvirtLiveMigrateData)
        self.assertTrue(data.dst_supports_stateless_firmware)
        self.assertEqual(CODE, data.dst_os_loader)
        self.assertIsNone(data.dst_os_firmware)
        data = dest.check_can_live_migrate_destination(
            None, make_instance(uefi_image(os_secure_boot='required')))
        self.assertEqual(CODE_MS, data.dst_os_loader)

    def test_destination_reports_its_inbound_address(self):
        dest = self.destination()
        instance = make_instance(uefi_image('true'))
        self.assertIsNone(dest.check_can_live_migrate_destination(
            None, instance).target_connect_addr)
        self.flags(live_migration_inbound_addr='192.0.2.20',
                   group='libvirt')
        self.assertEqual('192.0.2.20', dest.check_can_live_migrate_destination(
            None, instance).target_connect_addr)

    def test_destination_firmware_elsewhere(self):
        self.use_fake(debian_firmware=False)
        code = self.firmware_file('CODE.fd')
        self.fake.write_split_descriptor(
            '60-edk2.json', code, self.firmware_file('VARS.fd'))
        dest = self.start_driver()
        data = dest.check_can_live_migrate_destination(
            None, make_instance(uefi_image('true')))
        self.assertEqual(code, data.dst_os_loader)

    def test_destination_cannot_build_firmware(self):
        dest = self.destination()
        instance = make_instance(uefi_image('true',
                                            os_secure_boot='required'))
        ex = self.assertRaises(exception.MigrationPreCheckError,
                               dest.check_can_live_migrate_destination,
                               None, instance)
        self.assertIn('cannot build the firmware', str(ex))

    def test_bios_instance_needs_no_loader(self):
        dest = self.destination()
        data = dest.check_can_live_migrate_destination(
            None, make_instance(make_image()))
        self.assertIsNone(data.dst_os_loader)

    def test_source_refuses_unsupported_destination(self):
        source = self.start_driver()
        instance = make_instance(uefi_image('true'))
        ex = self.assertRaises(
            exception.MigrationPreCheckError,
            source.check_can_live_migrate_source, None, instance,
            migration.LibvirtLiveMigrateData(
                dst_supports_stateless_firmware=False))
        self.assertIn(instance.uuid, str(ex))
        data = migration.LibvirtLiveMigrateData(
            dst_supports_stateless_firmware=True, dst_os_loader=CODE)
        self.assertIs(data, source.check_can_live_migrate_source(
            None, instance, data))

    def test_source_accepts_stateful_to_any_destination(self):
        source = self.start_driver()
        data = migration.LibvirtLiveMigrateData()
        self.assertIs(data, source.check_can_live_migrate_source(
            None, make_instance(uefi_image()), data))

    def test_updated_xml_of_running_stateless_guest(self):
        source = self.start_driver()
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)
        xml = source.get_updated_guest_xml(
            instance, migration.LibvirtLiveMigrateData(
                dst_supports_stateless_firmware=True,
                dst_os_loader='/opt/edk2/CODE.fd'))
        self.assertEqual(loader_firmware('/opt/edk2/CODE.fd',
                                         stateless=True),
                         firmware_of(xml))

    def test_destination_xml_leaves_out_what_the_start_added(self):
        # The live XML says how libvirt checked the guest CPU at start,
        # which the source's definition does not: a destination refuses
        # XML that differs from it there (libvirt's ABI check).
        source = self.start_driver()
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)
        xml = source.get_updated_guest_xml(
            instance, migration.LibvirtLiveMigrateData(
                dst_supports_stateless_firmware=True, dst_os_loader=CODE))
        self.assertEqual('full', etree.fromstring(
            self.domain_xml(instance)).find('cpu').get('check'))
        self.assertEqual('none', etree.fromstring(xml).find('cpu').get(
            'check'))


class LiveMigrationBetweenXMLFormsTestCase(_DriverTestCase):
    """Live migration between hosts whose libvirt want different XML.

    On fakelibvirt: this machine cannot live-migrate between two embedded
    libvirt drivers (there is no daemon to migrate to). ``explicit`` is
    Debian 12's libvirt 9.0 with its OVMF, booting a read-only loader;
    ``autoselect`` a libvirt that offers no pflash loader to name but has a
    firmware of mode 'stateless', which it finds itself.
    """

    def start_host(self, hostname: str, autoselect: bool
                   ) -> libvirt_driver.LibvirtDriver:
        if autoselect:
            fake = self.use_fake(lv_ver=(10, 0, 0), hostname=hostname,
                                 loader_types=('rom',))
            fake.write_stateless_descriptor(
                '30-stateless.json', executable=self.stateless_code)
        else:
            fake = self.use_fake(lv_ver=(9, 0, 0), hostname=hostname)
        drv = self.start_driver()
        self.assertEqual(
            libvirt_host.XML_FORM_AUTOSELECT if autoselect
            else libvirt_host.XML_FORM_EXPLICIT,
            drv.host.stateless_firmware_support().xml_form)
        self.hosts[hostname] = fake.hypervisor
        return drv

    def setUp(self):
        super().setUp()
        self.hosts = {}
        self.calls = []

    def migrate(self, source, dest, dest_name, instance):
        data = dest.check_can_live_migrate_destination(None, instance)
        data = source.check_can_live_migrate_source(None, instance, data)
        source.live_migration(
            None, instance, dest_name,
            lambda *args: self.calls.append('post'),
            lambda *args: self.calls.append('recover'),
            migrate_data=data)

    def os_of(self, host: str, instance, flags: int = 0) -> dict:
        return firmware_of(self.hosts[host].domains[instance.name].XMLDesc(
            flags))

    def test_explicit_to_autoselect(self):
        source = self.start_host('src', autoselect=False)
        dest = self.start_host('dst', autoselect=True)
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)

        self.migrate(source, dest, 'dst', instance)

        self.assertEqual(['post'], self.calls)
        self.assertEqual({}, self.hosts['src'].domains)
        # Defined as the destination writes it, the loader left to its
        # libvirt, which put its own stateless build in the live XML.
        inactive = self.os_of('dst', instance,
                              fakelibvirt.VIR_DOMAIN_XML_INACTIVE)
        self.assertEqual('efi', inactive['firmware'])
        self.assertIsNone(inactive['loader'])
        self.assertEqual({'secure-boot': 'no'}, inactive['features'])
        live = self.os_of('dst', instance)
        self.assertEqual(self.stateless_code, live['loader'])
        self.assertEqual('yes', live['loader_attrs']['stateless'])
        self.assertIsNone(live['nvram'])
        self.assertEqual({}, self.hosts['dst'].nvram)
        self.assertEqual({}, self.hosts['src'].nvram)

    def test_autoselect_to_explicit(self):
        source = self.start_host('src', autoselect=True)
        dest = self.start_host('dst', autoselect=False)
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)
        # The running source shows the build its libvirt chose.
        self.assertEqual(self.stateless_code,
                         self.os_of('src', instance)['loader'])

        self.migrate(source, dest, 'dst', instance)

        self.assertEqual(['post'], self.calls)
        self.assertEqual({}, self.hosts['src'].domains)
        for flags in (0, fakelibvirt.VIR_DOMAIN_XML_INACTIVE):
            self.assertEqual(STATELESS_PLAIN,
                             self.os_of('dst', instance, flags))
        self.assertEqual({}, self.hosts['dst'].nvram)

    def test_failed_migration_recovers_on_the_source(self):
        source = self.start_host('src', autoselect=False)
        dest = self.start_host('dst', autoselect=True)
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)
        self.hosts['dst'].fail_next('migrateToURI3')
        self.assertRaises(fakelibvirt.libvirtError, self.migrate, source,
                          dest, 'dst', instance)
        self.assertEqual(['recover'], self.calls)
        self.assertEqual({}, self.hosts['dst'].domains)
        self.assertTrue(self.hosts['src'].domains[instance.name].isActive())

    def test_libvirt_chooses_where_the_memory_goes_by_default(self):
        source = self.start_host('src', autoselect=False)
        dest = self.start_host('dst', autoselect=False)
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)

        self.migrate(source, dest, 'dst', instance)

        [params] = self.hosts['dst'].incoming_migrations
        self.assertNotIn(fakelibvirt.VIR_MIGRATE_PARAM_URI, params)
        self.assertNotIn(fakelibvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS,
                         params)

    def test_memory_goes_to_the_destination_inbound_address(self):
        source = self.start_host('src', autoselect=False)
        dest = self.start_host('dst', autoselect=False)
        instance = make_instance(uefi_image('true'))
        source.spawn(None, instance, instance.image_meta)
        # Set on the destination, which reports it to the source; a name
        # the fake hosts resolve, as an address of a migration network.
        self.flags(live_migration_inbound_addr='dst', group='libvirt')

        self.migrate(source, dest, 'compute-dst', instance)

        self.assertEqual(['post'], self.calls)
        self.assertIn(instance.name, self.hosts['dst'].domains)
        [params] = self.hosts['dst'].incoming_migrations
        self.assertEqual('tcp://dst',
                         params[fakelibvirt.VIR_MIGRATE_PARAM_URI])
        self.assertEqual(
            'dst', params[fakelibvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS])
