"""Tests of the libvirt config objects.

The capabilities and domain documents under ``data/`` were captured from
libvirt 9.0.0 / QEMU 7.2 on this kind of host, so parsing is tested on what
libvirt really reports rather than on hand-written XML.
"""

import os

from lxml import etree

from nova import exception
from nova import test
from nova.virt.libvirt import config

DATA_DIR = os.path.join(os.path.dirname(__file__), 'data')

CODE_FD = '/usr/share/OVMF/OVMF_CODE_4M.fd'
SECBOOT_CODE_FD = '/usr/share/OVMF/OVMF_CODE_4M.secboot.fd'
VARS_FD = '/usr/share/OVMF/OVMF_VARS_4M.fd'
NVRAM = '/var/lib/nova/nvram/instance-00000001_VARS.fd'
INSTANCE_DIR = '/var/lib/nova/instances/f3ee54e0-3f2e-4a3c-9d8c-1a8a2d3c9b11'


def load_data(name: str) -> str:
    with open(os.path.join(DATA_DIR, name), encoding='utf-8') as f:
        return f.read()


def _normalise(xml: str | etree._Element) -> str:
    """XML text that compares equal for equal documents.

    Whitespace between elements, comments and attribute order (which C14N
    sorts) do not count; the result is pretty printed so that a failing
    comparison shows a readable diff.
    """
    if not isinstance(xml, str):
        xml = etree.tostring(xml, encoding='unicode')
    canonical = etree.canonicalize(xml, strip_text=True)
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(canonical, parser),
                          encoding='unicode', pretty_print=True)


class XMLTestCase(test.NoDBTestCase):

    def assertXmlEqual(self, expected, actual) -> None:
        self.assertEqual(_normalise(expected), _normalise(actual))

    def _os_of(self, xml: str) -> etree._Element:
        parser = etree.XMLParser(remove_blank_text=True,
                                 remove_comments=True)
        return etree.fromstring(xml.encode(), parser).find('os')


class LibvirtConfigObjectTest(XMLTestCase):

    def test_to_xml_and_parse_str(self):
        obj = config.LibvirtConfigObject(root_name='demo')
        self.assertEqual('<demo/>\n', obj.to_xml())
        self.assertEqual('<demo/>', obj.to_xml(pretty_print=False))
        obj.parse_str('<demo/>')

    def test_parse_wrong_root_fails(self):
        obj = config.LibvirtConfigObject(root_name='demo')
        ex = self.assertRaises(exception.InvalidInput,
                               obj.parse_str, '<other/>')
        self.assertIn("Root element name should be 'demo' not 'other'",
                      str(ex))

    def test_parse_str_accepts_xml_declaration(self):
        guest = config.LibvirtConfigGuest()
        guest.parse_str("<?xml version='1.0' encoding='UTF-8'?>\n"
                        "<domain type='qemu'><name>n</name></domain>")
        self.assertEqual('n', guest.name)

    def test_text_node_leaves_out_none_attributes(self):
        obj = config.LibvirtConfigObject(root_name='demo')
        node = obj._text_node('loader', '/fw.fd', readonly='yes', type=None)
        self.assertXmlEqual("<loader readonly='yes'>/fw.fd</loader>", node)

    def test_namespaced_object(self):
        uri = 'http://openstack.org/xmlns/libvirt/nova/1.1'
        obj = config.LibvirtConfigObject(root_name='instance',
                                         ns_prefix='nova', ns_uri=uri)
        self.assertEqual('<nova:instance xmlns:nova="%s"/>' % uri,
                         obj.to_xml(pretty_print=False))
        obj.parse_str('<nova:instance xmlns:nova="%s"/>' % uri)


class LibvirtConfigCapsTest(XMLTestCase):

    def setUp(self):
        super().setUp()
        self.caps = config.LibvirtConfigCaps()
        self.caps.parse_str(load_data('capabilities.xml'))

    def _guest(self, arch: str) -> config.LibvirtConfigCapsGuest:
        return next(g for g in self.caps.guests if g.arch == arch)

    def test_host(self):
        self.assertEqual('2d121c42-8d6e-4fb4-bcf3-d61effcd194e',
                         self.caps.host.uuid)
        self.assertEqual('x86_64', self.caps.host.cpu.arch)
        self.assertEqual('AMD', self.caps.host.cpu.vendor)
        self.assertEqual(['vme', 'x2apic', 'avx2'],
                         self.caps.host.cpu.features)

    def test_dac_base_labels(self):
        # Who libvirt runs QEMU as, per virt type: root in this file.
        self.assertEqual({'kvm': '+0:+0', 'qemu': '+0:+0'},
                         self.caps.host.dac_base_labels)
        caps = config.LibvirtConfigCaps()
        caps.parse_str(self.caps.to_xml())
        self.assertEqual(self.caps.host.dac_base_labels,
                         caps.host.dac_base_labels)

    def test_guests(self):
        self.assertEqual([('i686', 'hvm'), ('x86_64', 'hvm')],
                         [(g.arch, g.ostype) for g in self.caps.guests])
        self.assertEqual('/usr/bin/qemu-system-i386',
                         self._guest('i686').emulator)

    def test_machines_map_aliases_to_canonical_names(self):
        guest = self._guest('x86_64')
        self.assertEqual('/usr/bin/qemu-system-x86_64', guest.emulator)
        self.assertEqual('pc-q35-7.2', guest.machines['q35'])
        self.assertEqual('pc-i440fx-7.2', guest.machines['pc'])
        self.assertIsNone(guest.machines['pc-q35-7.2'])
        self.assertIsNone(guest.machines['microvm'])

    def test_domains_inherit_arch_defaults(self):
        guest = self._guest('x86_64')
        self.assertEqual(['qemu', 'kvm'], list(guest.domains))
        for virt_type, domain in guest.domains.items():
            self.assertEqual(virt_type, domain.domtype)
            self.assertEqual('/usr/bin/qemu-system-x86_64', domain.emulator)
            self.assertEqual(guest.machines, domain.machines)

    def test_domain_overrides_arch_defaults(self):
        # libvirt lists an emulator and machines under <domain> when a
        # virt type uses a different binary than the architecture default.
        caps = config.LibvirtConfigCaps()
        caps.parse_str("""
            <capabilities><guest><os_type>hvm</os_type>
              <arch name='x86_64'>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
                <machine>pc-q35-7.2</machine>
                <domain type='qemu'/>
                <domain type='kvm'>
                  <emulator>/usr/libexec/qemu-kvm</emulator>
                  <machine canonical='pc-q35-rhel9.2.0'>q35</machine>
                </domain>
              </arch>
            </guest></capabilities>""")
        domains = caps.guests[0].domains
        self.assertEqual('/usr/libexec/qemu-kvm', domains['kvm'].emulator)
        self.assertEqual({'q35': 'pc-q35-rhel9.2.0'}, domains['kvm'].machines)
        self.assertEqual('/usr/bin/qemu-system-x86_64',
                         domains['qemu'].emulator)
        self.assertEqual({'pc-q35-7.2': None}, domains['qemu'].machines)
        # Formatting writes only the overrides under <domain>.
        reparsed = config.LibvirtConfigCaps()
        reparsed.parse_str(caps.to_xml())
        self.assertXmlEqual(caps.to_xml(), reparsed.to_xml())
        self.assertXmlEqual(
            "<domain type='qemu'/>",
            etree.fromstring(caps.to_xml()).find('guest/arch/domain'))

    def test_format_guest(self):
        guest = config.LibvirtConfigCapsGuest()
        guest.arch = 'x86_64'
        guest.ostype = 'hvm'
        guest.emulator = '/usr/bin/qemu-system-x86_64'
        guest.machines = {'pc-q35-7.2': None, 'q35': 'pc-q35-7.2'}
        domain = config.LibvirtConfigCapsGuestDomain()
        domain.domtype = 'qemu'
        domain.emulator = guest.emulator
        domain.machines = dict(guest.machines)
        guest.domains['qemu'] = domain
        self.assertXmlEqual("""
            <guest><os_type>hvm</os_type>
              <arch name='x86_64'>
                <emulator>/usr/bin/qemu-system-x86_64</emulator>
                <machine>pc-q35-7.2</machine>
                <machine canonical='pc-q35-7.2'>q35</machine>
                <domain type='qemu'/>
              </arch>
            </guest>""", guest.to_xml())

    def test_round_trip(self):
        xml = self.caps.to_xml()
        reparsed = config.LibvirtConfigCaps()
        reparsed.parse_str(xml)
        self.assertXmlEqual(xml, reparsed.to_xml())
        self.assertEqual('pc-q35-7.2',
                         reparsed.guests[1].domains['kvm'].machines['q35'])


class LibvirtConfigDomainCapsTest(XMLTestCase):

    def setUp(self):
        super().setUp()
        self.caps = config.LibvirtConfigDomainCaps()
        self.caps.parse_str(load_data('domain_capabilities.xml'))

    def test_identity(self):
        self.assertEqual('/usr/bin/qemu-system-x86_64', self.caps.path)
        self.assertEqual('qemu', self.caps.virt_type)
        self.assertEqual('pc-q35-7.2', self.caps.machine_type)
        self.assertIsNone(self.caps.machine_type_alias)
        self.assertEqual('x86_64', self.caps.arch)

    def test_os(self):
        os_caps = self.caps.os
        self.assertTrue(os_caps.supported)
        self.assertEqual(['efi'], os_caps.firmware)
        self.assertTrue(os_caps.loader_supported)
        self.assertEqual(['/usr/share/OVMF/OVMF_CODE_4M.ms.fd',
                          SECBOOT_CODE_FD, CODE_FD], os_caps.loader_paths)
        self.assertEqual(['rom', 'pflash'], os_caps.loader_types)
        self.assertEqual(['yes', 'no'], os_caps.loader_readonly)
        self.assertEqual(['yes', 'no'], os_caps.loader_secure)
        self.assertTrue(os_caps.uefi_supported)

    def test_features(self):
        supported = {f.name: f.supported for f in self.caps.features}
        self.assertEqual({'gic': False, 'vmcoreinfo': True, 'genid': True,
                          'backingStoreInput': True, 'backup': True,
                          'sev': False, 'sgx': False, 'hyperv': True},
                         supported)
        hyperv = self.caps.features[-1]
        self.assertEqual({'features': ['spinlocks', 'vendor_id']},
                         hyperv.enums)

    def test_sev_supported(self):
        caps = config.LibvirtConfigDomainCaps()
        caps.parse_str("""
            <domainCapabilities><features>
              <sev supported='yes'>
                <cbitpos>47</cbitpos><reducedPhysBits>1</reducedPhysBits>
              </sev>
            </features></domainCapabilities>""")
        self.assertEqual([('sev', True)],
                         [(f.name, f.supported) for f in caps.features])

    def _os_caps(self, xml: str) -> config.LibvirtConfigDomainCapsOS:
        os_caps = config.LibvirtConfigDomainCapsOS()
        os_caps.parse_str(xml)
        return os_caps

    def test_uefi_supported_from_firmware_enum_only(self):
        os_caps = self._os_caps(
            "<os supported='yes'><enum name='firmware'><value>efi</value>"
            "</enum><loader supported='yes'/></os>")
        self.assertEqual([], os_caps.loader_paths)
        self.assertTrue(os_caps.uefi_supported)

    def test_uefi_supported_from_loader_paths_only(self):
        os_caps = self._os_caps(
            "<os supported='yes'><loader supported='yes'>"
            "<value>%s</value></loader></os>" % CODE_FD)
        self.assertEqual([], os_caps.firmware)
        self.assertTrue(os_caps.uefi_supported)

    def test_uefi_not_supported(self):
        os_caps = self._os_caps(
            "<os supported='yes'><enum name='firmware'/>"
            "<loader supported='yes'><enum name='type'><value>rom</value>"
            "</enum></loader></os>")
        self.assertEqual(['rom'], os_caps.loader_types)
        self.assertFalse(os_caps.uefi_supported)

    def test_os_without_loader(self):
        os_caps = self._os_caps("<os supported='no'/>")
        self.assertFalse(os_caps.supported)
        self.assertIsNone(os_caps.loader_supported)
        self.assertFalse(os_caps.uefi_supported)

    def test_round_trip(self):
        xml = self.caps.to_xml()
        reparsed = config.LibvirtConfigDomainCaps()
        reparsed.parse_str(xml)
        self.assertXmlEqual(xml, reparsed.to_xml())
        self.assertEqual(self.caps.os.loader_paths,
                         reparsed.os.loader_paths)
        # The <os> part is formatted exactly as libvirt reported it.
        self.assertXmlEqual(
            self._os_of(load_data('domain_capabilities.xml')),
            self._os_of(xml))


class LibvirtConfigGuestOSTest(XMLTestCase):
    """The firmware part of <os>, where stateless firmware is expressed."""

    def _guest(self, **os_attrs) -> config.LibvirtConfigGuest:
        guest = config.LibvirtConfigGuest()
        guest.virt_type = 'qemu'
        guest.os_type = 'hvm'
        guest.os_arch = 'x86_64'
        guest.os_mach_type = 'pc-q35-7.2'
        for name, value in os_attrs.items():
            setattr(guest, name, value)
        return guest

    def _assert_os(self, expected_inner: str,
                   guest: config.LibvirtConfigGuest,
                   firmware: str = '') -> None:
        expected = ("<os%s><type arch='x86_64' machine='pc-q35-7.2'>hvm"
                    "</type>%s</os>" % (firmware, expected_inner))
        self.assertXmlEqual(expected, self._os_of(guest.to_xml()))

    def _reparse(self, guest) -> config.LibvirtConfigGuest:
        parsed = config.LibvirtConfigGuest()
        parsed.parse_str(guest.to_xml())
        return parsed

    def _explicit_loader(self, **os_attrs) -> config.LibvirtConfigGuest:
        return self._guest(os_loader=CODE_FD, os_loader_type='pflash',
                           os_loader_readonly=True, **os_attrs)

    def test_stateless_true(self):
        guest = self._explicit_loader(os_loader_stateless=True)
        self._assert_os(
            "<loader readonly='yes' type='pflash' stateless='yes'>%s"
            "</loader>" % CODE_FD, guest)
        self.assertTrue(self._reparse(guest).os_loader_stateless)

    def test_stateless_false(self):
        guest = self._explicit_loader(os_loader_stateless=False)
        self._assert_os(
            "<loader readonly='yes' type='pflash' stateless='no'>%s"
            "</loader>" % CODE_FD, guest)
        self.assertIs(False, self._reparse(guest).os_loader_stateless)

    def test_stateless_none(self):
        guest = self._explicit_loader()
        self._assert_os(
            "<loader readonly='yes' type='pflash'>%s</loader>" % CODE_FD,
            guest)
        self.assertIsNone(self._reparse(guest).os_loader_stateless)

    def test_nvram_with_template(self):
        guest = self._explicit_loader(os_nvram=NVRAM,
                                      os_nvram_template=VARS_FD)
        self._assert_os(
            "<loader readonly='yes' type='pflash'>%s</loader>"
            "<nvram template='%s'>%s</nvram>" % (CODE_FD, VARS_FD, NVRAM),
            guest)
        parsed = self._reparse(guest)
        self.assertEqual(NVRAM, parsed.os_nvram)
        self.assertEqual(VARS_FD, parsed.os_nvram_template)

    def test_nvram_template_only(self):
        # libvirt then names the VARS file itself.
        guest = self._explicit_loader(os_nvram_template=VARS_FD)
        self._assert_os(
            "<loader readonly='yes' type='pflash'>%s</loader>"
            "<nvram template='%s'/>" % (CODE_FD, VARS_FD), guest)
        parsed = self._reparse(guest)
        self.assertIsNone(parsed.os_nvram)
        self.assertEqual(VARS_FD, parsed.os_nvram_template)

    def test_nvram_path_only(self):
        guest = self._explicit_loader(os_nvram=NVRAM)
        self._assert_os(
            "<loader readonly='yes' type='pflash'>%s</loader>"
            "<nvram>%s</nvram>" % (CODE_FD, NVRAM), guest)
        parsed = self._reparse(guest)
        self.assertEqual(NVRAM, parsed.os_nvram)
        self.assertIsNone(parsed.os_nvram_template)

    def test_no_nvram_unless_asked(self):
        for stateless in (None, True, False):
            guest = self._explicit_loader(os_loader_stateless=stateless)
            self.assertIsNone(self._os_of(guest.to_xml()).find('nvram'))
            parsed = self._reparse(guest)
            self.assertIsNone(parsed.os_nvram)
            self.assertIsNone(parsed.os_nvram_template)

    def test_secure_loader(self):
        guest = self._guest(os_loader=SECBOOT_CODE_FD,
                            os_loader_type='pflash',
                            os_loader_readonly=True, os_loader_secure=True,
                            os_nvram_template=VARS_FD)
        self._assert_os(
            "<loader readonly='yes' secure='yes' type='pflash'>%s</loader>"
            "<nvram template='%s'/>" % (SECBOOT_CODE_FD, VARS_FD), guest)
        self.assertTrue(self._reparse(guest).os_loader_secure)

    def test_loader_flags_false(self):
        guest = self._guest(os_loader=CODE_FD, os_loader_type='rom',
                            os_loader_readonly=False,
                            os_loader_secure=False)
        self._assert_os(
            "<loader readonly='no' secure='no' type='rom'>%s</loader>"
            % CODE_FD, guest)
        parsed = self._reparse(guest)
        self.assertIs(False, parsed.os_loader_readonly)
        self.assertIs(False, parsed.os_loader_secure)
        self.assertEqual('rom', parsed.os_loader_type)

    def test_autoselection_stateless(self):
        guest = self._guest(os_firmware='efi', os_loader_stateless=True)
        self._assert_os("<loader stateless='yes'/>", guest,
                        firmware=" firmware='efi'")
        parsed = self._reparse(guest)
        self.assertEqual('efi', parsed.os_firmware)
        self.assertIsNone(parsed.os_loader)
        self.assertIsNone(parsed.os_loader_type)
        self.assertTrue(parsed.os_loader_stateless)

    def test_autoselection_with_firmware_features(self):
        guest = self._guest(
            os_firmware='efi', os_loader_stateless=True,
            os_firmware_features={'enrolled-keys': True,
                                  'secure-boot': False})
        self._assert_os(
            "<firmware><feature enabled='yes' name='enrolled-keys'/>"
            "<feature enabled='no' name='secure-boot'/></firmware>"
            "<loader stateless='yes'/>", guest, firmware=" firmware='efi'")
        self.assertEqual({'enrolled-keys': True, 'secure-boot': False},
                         self._reparse(guest).os_firmware_features)

    def test_autoselection_without_loader(self):
        guest = self._guest(os_firmware='efi')
        self._assert_os('', guest, firmware=" firmware='efi'")

    def test_bios_has_no_loader(self):
        guest = self._guest(os_boot_dev=['hd', 'cdrom'])
        self._assert_os("<boot dev='hd'/><boot dev='cdrom'/>", guest)
        parsed = self._reparse(guest)
        self.assertIsNone(parsed.os_firmware)
        self.assertIsNone(parsed.os_loader)
        self.assertIsNone(parsed.os_loader_readonly)
        self.assertEqual(['hd', 'cdrom'], parsed.os_boot_dev)


class LibvirtConfigGuestTest(XMLTestCase):

    def _stateless_guest(self) -> config.LibvirtConfigGuest:
        """The guest of a stateless UEFI boot, as the driver builds it."""
        guest = config.LibvirtConfigGuest()
        guest.virt_type = 'qemu'
        guest.name = 'instance-00000001'
        guest.uuid = 'f3ee54e0-3f2e-4a3c-9d8c-1a8a2d3c9b11'
        guest.memory = 256 * 1024
        guest.vcpus = 1
        guest.os_type = 'hvm'
        guest.os_arch = 'x86_64'
        guest.os_mach_type = 'q35'
        guest.os_loader = CODE_FD
        guest.os_loader_type = 'pflash'
        guest.os_loader_readonly = True
        guest.os_loader_stateless = True
        guest.os_boot_dev = ['hd']
        guest.add_feature(config.LibvirtConfigGuestFeatureACPI())
        guest.add_feature(config.LibvirtConfigGuestFeatureAPIC())

        disk = config.LibvirtConfigGuestDisk()
        disk.driver_name = 'qemu'
        disk.driver_format = 'qcow2'
        disk.source_path = INSTANCE_DIR + '/disk'
        disk.target_dev = 'vda'
        disk.target_bus = 'virtio'
        guest.add_device(disk)

        cdrom = config.LibvirtConfigGuestDisk()
        cdrom.device_type = 'cdrom'
        cdrom.driver_name = 'qemu'
        cdrom.driver_format = 'raw'
        cdrom.source_path = INSTANCE_DIR + '/disk.config'
        cdrom.target_dev = 'sda'
        cdrom.target_bus = 'sata'
        cdrom.readonly = True
        guest.add_device(cdrom)

        serial = config.LibvirtConfigGuestSerial()
        serial.type = 'file'
        serial.source_path = INSTANCE_DIR + '/console.log'
        serial.target_port = 0
        guest.add_device(serial)

        balloon = config.LibvirtConfigGuestMemBalloon()
        balloon.model = 'none'
        guest.add_device(balloon)
        return guest

    def test_format(self):
        expected = """
            <domain type='qemu'>
              <name>instance-00000001</name>
              <uuid>f3ee54e0-3f2e-4a3c-9d8c-1a8a2d3c9b11</uuid>
              <memory unit='KiB'>262144</memory>
              <vcpu>1</vcpu>
              <os>
                <type arch='x86_64' machine='q35'>hvm</type>
                <loader readonly='yes' type='pflash' stateless='yes'
                  >/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
                <boot dev='hd'/>
              </os>
              <features><acpi/><apic/></features>
              <devices>
                <disk type='file' device='disk'>
                  <driver name='qemu' type='qcow2'/>
                  <source file='%(dir)s/disk'/>
                  <target dev='vda' bus='virtio'/>
                </disk>
                <disk type='file' device='cdrom'>
                  <driver name='qemu' type='raw'/>
                  <source file='%(dir)s/disk.config'/>
                  <target dev='sda' bus='sata'/>
                  <readonly/>
                </disk>
                <serial type='file'>
                  <source path='%(dir)s/console.log'/>
                  <target port='0'/>
                </serial>
                <memballoon model='none'/>
              </devices>
            </domain>""" % {'dir': INSTANCE_DIR}
        self.assertXmlEqual(expected, self._stateless_guest().to_xml())

    def test_round_trip(self):
        xml = self._stateless_guest().to_xml()
        parsed = config.LibvirtConfigGuest()
        parsed.parse_str(xml)
        self.assertXmlEqual(xml, parsed.to_xml())

    def test_metadata(self):
        uri = 'http://openstack.org/xmlns/libvirt/nova/1.1'
        guest = config.LibvirtConfigGuest()
        guest.metadata.append(config.LibvirtConfigObject(
            root_name='instance', ns_prefix='nova', ns_uri=uri))
        self.assertXmlEqual(
            '<metadata><nova:instance xmlns:nova="%s"/></metadata>' % uri,
            etree.fromstring(guest.to_xml()).find('metadata'))

    def test_features(self):
        guest = config.LibvirtConfigGuest()
        guest.add_feature(config.LibvirtConfigGuestFeatureSMM())
        guest.add_feature(config.LibvirtConfigGuestFeatureSMM(state=False))
        guest.add_feature(config.LibvirtConfigGuestFeature('pae'))
        self.assertXmlEqual(
            "<features><smm state='on'/><smm state='off'/><pae/></features>",
            etree.fromstring(guest.to_xml()).find('features'))

    def test_cpu_mode(self):
        guest = config.LibvirtConfigGuest()
        self.assertIsNone(etree.fromstring(guest.to_xml()).find('cpu'))
        guest.add_feature(config.LibvirtConfigGuestFeatureACPI())
        guest.cpu_mode = 'maximum'
        root = etree.fromstring(guest.to_xml())
        self.assertXmlEqual("<cpu mode='maximum'/>", root.find('cpu'))
        # After <features>, where libvirt writes it.
        self.assertEqual(['memory', 'vcpu', 'os', 'features', 'cpu'],
                         [child.tag for child in root])
        parsed = config.LibvirtConfigGuest()
        parsed.parse_str("<domain type='qemu'><cpu mode='maximum' "
                         "check='none'/></domain>")
        self.assertEqual('maximum', parsed.cpu_mode)

    def test_parse_features(self):
        guest = config.LibvirtConfigGuest()
        guest.parse_str("""
            <domain type='qemu'><features>
              <acpi/><smm/><smm state='off'/><pae/>
              <hyperv mode='custom'><relaxed state='on'/></hyperv>
            </features></domain>""")
        self.assertEqual(
            [(config.LibvirtConfigGuestFeatureACPI, 'acpi'),
             (config.LibvirtConfigGuestFeatureSMM, 'smm'),
             (config.LibvirtConfigGuestFeatureSMM, 'smm'),
             (config.LibvirtConfigGuestFeature, 'pae')],
            [(type(f), f.root_name) for f in guest.features])
        # A bare <smm/> means on.
        self.assertEqual([True, False],
                         [f.state for f in guest.features[1:3]])

    def test_console(self):
        console = config.LibvirtConfigGuestConsole()
        console.type = 'pty'
        console.target_type = 'serial'
        console.target_port = 0
        self.assertXmlEqual(
            "<console type='pty'><target type='serial' port='0'/></console>",
            console.to_xml())

    def test_pty_serial(self):
        serial = config.LibvirtConfigGuestSerial()
        self.assertXmlEqual("<serial type='pty'/>", serial.to_xml())

    def test_block_disk(self):
        disk = config.LibvirtConfigGuestDisk()
        disk.source_type = 'block'
        disk.source_path = '/dev/vg/volume'
        self.assertXmlEqual(
            "<disk type='block' device='disk'>"
            "<source dev='/dev/vg/volume'/></disk>", disk.to_xml())

    def test_disk_device_type_is_source_device(self):
        disk = config.LibvirtConfigGuestDisk()
        disk.device_type = 'cdrom'
        self.assertEqual('cdrom', disk.source_device)

    def test_parse_memory_units(self):
        for memory, kib in (("<memory>1024</memory>", 1024),
                            ("<memory unit='MiB'>256</memory>", 262144),
                            ("<memory unit='GiB'>2</memory>", 2097152),
                            ("<memory unit='b'>1048576</memory>", 1024)):
            guest = config.LibvirtConfigGuest()
            guest.parse_str("<domain>%s</domain>" % memory)
            self.assertEqual(kib, guest.memory, memory)

    def test_parse_unknown_memory_unit_fails(self):
        guest = config.LibvirtConfigGuest()
        ex = self.assertRaises(
            exception.InvalidInput, guest.parse_str,
            "<domain><memory unit='parsec'>1</memory></domain>")
        self.assertIn("Unknown memory unit 'parsec'", str(ex))

    def test_parse_ignores_unknown_elements_and_attributes(self):
        guest = config.LibvirtConfigGuest()
        guest.parse_str("""
            <domain type='qemu' id='7' frob='1'>
              <name>n</name><frobnicate level='11'><x/></frobnicate>
              <os frob='1'>
                <type arch='x86_64' frob='1'>hvm</type>
                <loader readonly='yes' frob='1'>/fw.fd</loader>
                <bootmenu enable='no'/>
              </os>
              <devices><disk type='file' device='disk' frob='1'>
                <source file='/d' index='2'/><iotune/></disk>
                <interface type='network'/>
              </devices>
            </domain>""")
        self.assertEqual('n', guest.name)
        self.assertEqual('/fw.fd', guest.os_loader)
        self.assertTrue(guest.os_loader_readonly)
        self.assertEqual(['/d'], [d.source_path for d in guest.devices])


class LibvirtConfigGuestLiveXMLTest(XMLTestCase):
    """Parsing of what XMLDesc() returns for domains libvirt defined."""

    def _parse(self, name: str) -> config.LibvirtConfigGuest:
        guest = config.LibvirtConfigGuest()
        guest.parse_str(load_data(name))
        return guest

    def _assert_round_trip(self, name: str) -> None:
        live = load_data(name)
        xml = self._parse(name).to_xml()
        reparsed = config.LibvirtConfigGuest()
        reparsed.parse_str(xml)
        self.assertXmlEqual(xml, reparsed.to_xml())
        # The firmware part comes back exactly as libvirt wrote it.
        self.assertXmlEqual(self._os_of(live), self._os_of(xml))

    def test_stateless(self):
        guest = self._parse('domain_stateless.xml')
        self.assertEqual('qemu', guest.virt_type)
        self.assertEqual('instance-00000001', guest.name)
        self.assertEqual('f3ee54e0-3f2e-4a3c-9d8c-1a8a2d3c9b11', guest.uuid)
        self.assertEqual(262144, guest.memory)
        self.assertEqual(1, guest.vcpus)
        self.assertEqual('hvm', guest.os_type)
        self.assertEqual('x86_64', guest.os_arch)
        # libvirt resolves the q35 alias at define.
        self.assertEqual('pc-q35-7.2', guest.os_mach_type)
        self.assertIsNone(guest.os_firmware)
        self.assertEqual(CODE_FD, guest.os_loader)
        self.assertEqual('pflash', guest.os_loader_type)
        self.assertTrue(guest.os_loader_readonly)
        self.assertIsNone(guest.os_loader_secure)
        self.assertTrue(guest.os_loader_stateless)
        self.assertIsNone(guest.os_nvram)
        self.assertIsNone(guest.os_nvram_template)
        self.assertEqual(['hd'], guest.os_boot_dev)
        self.assertEqual(['acpi', 'apic'],
                         [f.root_name for f in guest.features])

    def test_stateless_devices(self):
        devices = self._parse('domain_stateless.xml').devices
        # Controllers, inputs and audio are not modelled and are skipped.
        self.assertEqual(
            [config.LibvirtConfigGuestDisk, config.LibvirtConfigGuestDisk,
             config.LibvirtConfigGuestSerial,
             config.LibvirtConfigGuestConsole,
             config.LibvirtConfigMemoryBalloon],
            [type(d) for d in devices])
        disk, cdrom, serial, console, balloon = devices
        self.assertEqual(
            ('file', 'disk', 'qemu', 'qcow2', INSTANCE_DIR + '/disk', 'vda',
             'virtio', False),
            (disk.source_type, disk.source_device, disk.driver_name,
             disk.driver_format, disk.source_path, disk.target_dev,
             disk.target_bus, disk.readonly))
        self.assertEqual(('cdrom', 'raw', 'sda', 'sata', True),
                         (cdrom.device_type, cdrom.driver_format,
                          cdrom.target_dev, cdrom.target_bus,
                          cdrom.readonly))
        self.assertEqual(('file', INSTANCE_DIR + '/console.log', 0),
                         (serial.type, serial.source_path,
                          serial.target_port))
        self.assertEqual(('file', 'serial', 0),
                         (console.type, console.target_type,
                          console.target_port))
        self.assertEqual('none', balloon.model)

    def test_stateless_round_trip(self):
        self._assert_round_trip('domain_stateless.xml')

    def test_nvram(self):
        guest = self._parse('domain_nvram.xml')
        self.assertEqual(SECBOOT_CODE_FD, guest.os_loader)
        self.assertTrue(guest.os_loader_secure)
        self.assertIsNone(guest.os_loader_stateless)
        self.assertEqual('/var/lib/nova/embed/nvram/'
                         'instance-00000001_VARS.fd', guest.os_nvram)
        self.assertEqual('/usr/share/OVMF/OVMF_VARS_4M.ms.fd',
                         guest.os_nvram_template)
        smm = guest.features[-1]
        self.assertIsInstance(smm, config.LibvirtConfigGuestFeatureSMM)
        self.assertTrue(smm.state)

    def test_nvram_round_trip(self):
        self._assert_round_trip('domain_nvram.xml')

    def test_autoselect_stateless(self):
        guest = self._parse('domain_autoselect_stateless.xml')
        self.assertEqual('efi', guest.os_firmware)
        self.assertEqual({'secure-boot': False}, guest.os_firmware_features)
        self.assertIsNone(guest.os_loader)
        self.assertIsNone(guest.os_loader_type)
        self.assertIsNone(guest.os_loader_readonly)
        self.assertTrue(guest.os_loader_stateless)
        self.assertIsNone(guest.os_nvram)
        serial = guest.devices[0]
        self.assertEqual(('pty', None, 0),
                         (serial.type, serial.source_path,
                          serial.target_port))
        # A virtio balloon carries an address, which is not kept.
        self.assertEqual('virtio', guest.devices[-1].model)

    def test_autoselect_stateless_round_trip(self):
        self._assert_round_trip('domain_autoselect_stateless.xml')
