"""The libvirt Host on this machine's real libvirt and QEMU.

Runs on the embedded QEMU driver (``qemu:///embed``, TCG) with the
firmware this machine has installed, so the stateless decision is checked
against what libvirt really offers and what really boots. The first test
of a process waits a few seconds for libvirt to probe QEMU.
"""

import os
import time

import fixtures
from lxml import etree
import os_traits

import nova.conf
from nova import exception
from nova import test
from nova.tests.fixtures import libvirt_embed
from nova.virt import driver as virt_driver
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import firmware
from nova.virt.libvirt import host

CONF = nova.conf.CONF

#: What OVMF prints on the serial console when it stops on an exception.
FIRMWARE_EXCEPTION = 'X64 Exception Type'


def stateless_domain_xml(name: str, loader_path: str, smm: bool = False,
                         console: str | None = None) -> str:
    serial = ''
    if console is not None:
        serial = (f"<devices><serial type='file'><source path='{console}'/>"
                  f"</serial></devices>")
    return f"""
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>128</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader readonly='yes' type='pflash' stateless='yes'>{loader_path}</loader>
  </os>
  <features><acpi/>{'<smm/>' if smm else ''}</features>
  {serial}
</domain>"""


def wait_for_console(path: str, needles: tuple[str, ...],
                     timeout: float = 90) -> str:
    """The console text once it holds one of ``needles`` (or timed out)."""
    deadline = time.monotonic() + timeout
    text = ''
    while time.monotonic() < deadline:
        try:
            with open(path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            pass
        if any(needle in text for needle in needles):
            break
        time.sleep(0.5)
    return text


class RealHostTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.embed = self.useFixture(libvirt_embed.EmbeddedLibvirtFixture())
        self.host = host.Host(host.default_uri())

    def test_stateless_firmware_supported_with_explicit_loader(self):
        support = self.host.stateless_firmware_support()

        self.assertTrue(support.supported, support.reasons)
        self.assertEqual(host.XML_FORM_EXPLICIT, support.xml_form)
        self.assertGreaterEqual(support.libvirt_version,
                                host.MIN_LIBVIRT_STATELESS_FIRMWARE)
        loader = support.loader
        # A read-only CODE image libvirt offers, used without its VARS.
        self.assertTrue(loader.stateless)
        self.assertTrue(loader.readonly)
        self.assertEqual('pflash', loader.loader_type)
        self.assertIsNone(loader.nvram_template)
        self.assertFalse(loader.secure_boot)
        self.assertIn(loader.descriptor.mode,
                      (firmware.MODE_SPLIT, firmware.MODE_STATELESS))
        self.assertEqual(loader.descriptor.executable, loader.path)
        self.assertTrue(os.path.isfile(loader.path))
        caps = self.host.get_domain_capabilities_for('x86_64', 'q35')
        self.assertIn(loader.path, caps.os.loader_paths)
        if loader.descriptor.mode == firmware.MODE_SPLIT:
            self.assertNotEqual(loader.descriptor.nvram_template,
                                loader.path)

    def test_reasons_name_missing_stateless_descriptor(self):
        descriptors = self.host.firmware_descriptors
        if any(d.mode == firmware.MODE_STATELESS for d in descriptors):
            self.fail('this machine has a stateless firmware descriptor; '
                      'the expectations below describe Debian 12')
        support = self.host.stateless_firmware_support()
        self.assertTrue(any(
            "no firmware descriptor of mode 'stateless'" in reason
            for reason in support.reasons), support.reasons)
        self.assertIn('Stateless firmware support: True',
                      self.stdlog.output)

    def test_autoselection_really_fails_without_stateless_descriptor(self):
        # The premise of choosing the explicit form on this machine:
        # libvirt accepts the autoselection XML and fails at start.
        domain = self.host.write_instance_config("""
<domain type='qemu'>
  <name>autoselect-stateless</name>
  <memory unit='MiB'>128</memory>
  <os firmware='efi'>
    <type arch='x86_64' machine='q35'>hvm</type>
    <loader stateless='yes'/>
  </os>
  <features><acpi/></features>
</domain>""")
        ex = self.assertRaises(host.libvirt.libvirtError, domain.create)
        self.assertIn("Unable to find any firmware to satisfy 'efi'",
                      str(ex))

    def test_chosen_loader_boots_without_nvram(self):
        loader = self.host.stateless_firmware_support().loader
        domain = self.host.write_instance_config(
            stateless_domain_xml('stateless-boot', loader.path))
        defined = etree.fromstring(domain.XMLDesc(0))
        self.assertEqual('yes', defined.find('os/loader').get('stateless'))
        self.assertIsNone(defined.find('os/nvram'))

        domain.create()
        self.assertTrue(domain.isActive())
        running = etree.fromstring(domain.XMLDesc(0))
        self.assertIsNone(running.find('os/nvram'))
        self.assertFalse(os.path.exists(os.path.join(
            self.embed.nvram_dir, 'stateless-boot_VARS.fd')))
        domain.destroy()

    def test_domain_capabilities_fetched_once(self):
        all_caps = self.host.get_domain_capabilities()
        self.host.get_domain_capabilities()
        self.host.get_loader('x86_64', 'q35')
        self.host.get_loader('x86_64', 'q35', stateless=True)
        self.host.stateless_firmware_support()
        self.assertEqual(1, self.host.api_calls['getDomainCapabilities'])
        caps = all_caps['x86_64']['q35']
        self.assertIs(caps, all_caps['x86_64'][caps.machine_type])
        self.assertTrue(caps.machine_type.startswith('pc-q35-'))

    def test_secure_boot_stateful_only(self):
        self.assertTrue(self.host.supports_secure_boot)
        secure = self.host.get_loader('x86_64', 'q35', secure_boot=True)
        self.assertIsNotNone(secure.nvram_template)
        self.assertTrue(secure.descriptor.enrolled_keys)
        # No descriptor here enforces secure boot without a variable store.
        self.assertRaises(exception.UEFILoaderNotFound, self.host.get_loader,
                          'x86_64', 'q35', secure_boot=True, stateless=True)
        self.assertFalse(self.host.supports_stateless_secure_boot())
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('real')
        self.assertEqual(
            {os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE: True,
             os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT: True,
             virt_driver.STATELESS_SECURE_BOOT_TRAIT: False},
            {trait: value for trait, value in
             driver.capabilities_as_traits().items()
             if 'SECURITY' in trait})

    def test_domain_helpers(self):
        loader = self.host.stateless_firmware_support().loader
        self.host.write_instance_config(
            stateless_domain_xml('helper-domain', loader.path))
        self.assertIn('helper-domain', self.host.list_instance_names())
        self.assertEqual('helper-domain',
                         self.host.get_domain('helper-domain').name())
        self.assertRaises(exception.InstanceNotFound, self.host.get_domain,
                          'no-such-domain')


class MaskedPlainFirmwareTestCase(test.NoDBTestCase):
    """Debian's OVMF with its plain build masked, as an operator may do
    with an empty file of the same name in a later descriptor directory:
    only the secure boot builds, which require SMM, are left.
    """

    PLAIN = '60-edk2-x86_64.json'

    def setUp(self):
        super().setUp()
        self.embed = self.useFixture(libvirt_embed.EmbeddedLibvirtFixture())
        self.work = self.useFixture(fixtures.TempDir()).path
        mask = os.path.join(self.work, 'firmware')
        os.makedirs(mask)
        with open(os.path.join(mask, self.PLAIN), 'w'):
            pass
        self.flags(firmware_descriptor_dirs=list(
            CONF.libvirt.firmware_descriptor_dirs) + [mask],
            group='libvirt')
        self.flags(instances_path=os.path.join(self.work, 'instances'))

    def test_smm_builds_stop_without_a_variable_store(self):
        # The premise of the rule, on this machine's QEMU and OVMF: the
        # builds left boot with their variable store but stop in the
        # firmware when mapped read-only alone, SMM emulated or not.
        descriptors = host.Host(self.embed.uri).firmware_descriptors
        self.assertNotIn(self.PLAIN, [d.name for d in descriptors])
        # This host's own architecture: AAVMF has secure boot builds too.
        [secure] = [d for d in descriptors if d.secure_boot and
                    not d.enrolled_keys and
                    'x86_64' in (arch for arch, _globs in d.targets)]
        self.assertTrue(secure.requires_smm)
        self.assertFalse(firmware.boots_stateless(secure))

        console = os.path.join(self.work, 'smm-stateless.console')
        domain = self.embed.host.write_instance_config(stateless_domain_xml(
            'smm-stateless', secure.executable, smm=True, console=console))
        domain.create()
        text = wait_for_console(console, (FIRMWARE_EXCEPTION,) +
                                boot_evidence.FIRMWARE_MARKERS)
        domain.destroy()
        self.assertIn(FIRMWARE_EXCEPTION + ' - 06(#UD', text)
        self.assertNotIn('BdsDxe:', text)

    def test_no_stateless_support_and_no_trait(self):
        support = host.Host(self.embed.uri).stateless_firmware_support()

        self.assertFalse(support.supported, support.reasons)
        self.assertIsNone(support.loader)
        self.assertIn('OVMF_CODE_4M.secboot.fd) stop in the firmware',
                      support.reasons[1])
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('masked')
        traits = driver.capabilities_as_traits()
        self.assertFalse(
            traits[os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE])
        # Stateful guests and secure boot are still offered.
        self.assertTrue(traits[os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT])
