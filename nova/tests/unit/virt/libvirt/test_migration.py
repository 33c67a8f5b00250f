"""Tests of the domain XML a live migration defines on its destination."""

from lxml import etree

from nova import test
from nova.virt.libvirt import migration

SRC_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
DST_CODE = '/opt/edk2/OVMF_CODE.fd'
NVRAM = '/var/lib/libvirt/qemu/nvram/instance-00000001_VARS.fd'
TEMPLATE = '/usr/share/OVMF/OVMF_VARS_4M.fd'


def domain_xml(loader: str | None, nvram: str | None = None,
               firmware: str | None = None) -> str:
    """A source domain's XML as libvirt returns it, with its devices."""
    os_attrs = " firmware='%s'" % firmware if firmware else ''
    return ''.join([
        "<domain type='kvm'><name>instance-00000001</name>",
        "<uuid>6f0c1f43-7d5e-4a55-8f38-3a0e8e3c5d1a</uuid>",
        "<memory unit='KiB'>262144</memory><vcpu>1</vcpu>",
        "<os%s><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>" %
        os_attrs, loader or '', nvram or '', "<boot dev='hd'/></os>",
        "<features><acpi/><apic/></features>",
        "<devices><disk type='file' device='disk'>",
        "<source file='/var/lib/nova/instances/x/disk'/>",
        "<target dev='vda' bus='virtio'/></disk></devices></domain>"])


def os_of(xml: str) -> etree._Element:
    return etree.fromstring(xml).find('os')


class GetUpdatedGuestXMLTestCase(test.NoDBTestCase):

    STATELESS_LOADER = ("<loader readonly='yes' type='pflash' "
                        "stateless='yes'>%s</loader>" % SRC_CODE)
    SECURE_STATELESS_LOADER = (
        "<loader readonly='yes' secure='yes' type='pflash' "
        "stateless='yes'>%s</loader>" % SRC_CODE)
    STATEFUL_LOADER = ("<loader readonly='yes' type='pflash'>%s</loader>" %
                       SRC_CODE)
    STATEFUL_NVRAM = "<nvram template='%s'>%s</nvram>" % (TEMPLATE, NVRAM)

    def update(self, xml: str, **data) -> str:
        return migration.get_updated_guest_xml(
            xml, migration.LibvirtLiveMigrateData(**data))

    def test_stateless_loader_path_rewritten(self):
        xml = self.update(domain_xml(self.STATELESS_LOADER),
                          dst_supports_stateless_firmware=True,
                          dst_os_loader=DST_CODE)
        os_node = os_of(xml)
        loader = os_node.find('loader')
        self.assertEqual(DST_CODE, loader.text)
        self.assertEqual({'readonly': 'yes', 'type': 'pflash',
                          'stateless': 'yes'}, dict(loader.attrib))
        self.assertIsNone(os_node.find('nvram'))

    def test_secure_attribute_from_the_destination(self):
        xml = self.update(domain_xml(self.SECURE_STATELESS_LOADER),
                          dst_supports_stateless_firmware=True,
                          dst_os_loader=DST_CODE, dst_os_loader_secure=True)
        self.assertEqual('yes', os_of(xml).find('loader').get('secure'))

    def test_explicit_source_autoselecting_destination(self):
        # The destination's libvirt finds its own stateless firmware; the
        # source's path may not exist there.
        xml = self.update(domain_xml(self.SECURE_STATELESS_LOADER),
                          dst_supports_stateless_firmware=True,
                          dst_os_firmware='efi',
                          dst_os_firmware_features={'secure-boot': True,
                                                    'enrolled-keys': True})
        os_node = os_of(xml)
        self.assertEqual('efi', os_node.get('firmware'))
        loader = os_node.find('loader')
        self.assertIsNone(loader.text)
        self.assertEqual({'stateless': 'yes'}, dict(loader.attrib))
        self.assertEqual(
            [('secure-boot', 'yes'), ('enrolled-keys', 'yes')],
            [(f.get('name'), f.get('enabled'))
             for f in os_node.findall('firmware/feature')])
        # <firmware> follows <type>, as libvirt's schema orders them.
        self.assertEqual(['type', 'firmware', 'loader', 'boot'],
                         [child.tag for child in os_node])

    def test_autoselected_source_explicit_destination(self):
        # A live autoselected source shows the image its libvirt resolved
        # beside firmware='efi'; the destination writes its own loader.
        resolved = ("<firmware><feature enabled='no' name='secure-boot'/>"
                    "</firmware><loader readonly='yes' type='pflash' "
                    "stateless='yes'>/usr/share/edk2/OVMF.stateless.fd"
                    "</loader>")
        xml = self.update(domain_xml(resolved, firmware='efi'),
                          dst_supports_stateless_firmware=True,
                          dst_os_loader=DST_CODE)
        os_node = os_of(xml)
        self.assertIsNone(os_node.get('firmware'))
        self.assertIsNone(os_node.find('firmware'))
        loader = os_node.find('loader')
        self.assertEqual(DST_CODE, loader.text)
        self.assertEqual({'readonly': 'yes', 'type': 'pflash',
                          'stateless': 'yes'}, dict(loader.attrib))

    def test_nvram_of_stateless_guest_stripped(self):
        # A definition carrying both, e.g. written by hand or by an older
        # tool: libvirt >= 8.6.0 would refuse it on the destination.
        for nvram in (self.STATEFUL_NVRAM, '<nvram>%s</nvram>' % NVRAM,
                      "<nvram template='%s'/>" % TEMPLATE):
            xml = self.update(domain_xml(self.STATELESS_LOADER, nvram),
                              dst_supports_stateless_firmware=True,
                              dst_os_loader=DST_CODE)
            self.assertEqual([], os_of(xml).findall('nvram'), nvram)
            self.assertEqual('yes', os_of(xml).find('loader').get(
                'stateless'))

    def test_stateful_nvram_left_alone(self):
        xml = self.update(domain_xml(self.STATEFUL_LOADER,
                                     self.STATEFUL_NVRAM),
                          dst_os_loader=DST_CODE)
        os_node = os_of(xml)
        self.assertEqual(DST_CODE, os_node.find('loader').text)
        self.assertIsNone(os_node.find('loader').get('stateless'))
        nvram = os_node.find('nvram')
        self.assertEqual(NVRAM, nvram.text)
        self.assertEqual(TEMPLATE, nvram.get('template'))

    def test_loader_kept_without_destination_loader(self):
        xml = self.update(domain_xml(self.STATELESS_LOADER),
                          dst_supports_stateless_firmware=True)
        self.assertEqual(SRC_CODE, os_of(xml).find('loader').text)

    def test_autoselected_loader_stays_pathless(self):
        xml = self.update(domain_xml("<loader stateless='yes'/>",
                                     firmware='efi'),
                          dst_supports_stateless_firmware=True,
                          dst_os_loader=DST_CODE, dst_os_firmware='efi')
        os_node = os_of(xml)
        self.assertEqual('efi', os_node.get('firmware'))
        self.assertIsNone(os_node.find('loader').text)
        self.assertEqual('yes', os_node.find('loader').get('stateless'))

    def test_bios_guest_unchanged(self):
        source = domain_xml(None)
        xml = self.update(source, dst_os_loader=DST_CODE)
        self.assertIsNone(os_of(xml).find('loader'))
        self.assertEqual(
            etree.tostring(etree.fromstring(source), method='c14n'),
            etree.tostring(etree.fromstring(xml), method='c14n'))

    def test_rest_of_domain_untouched(self):
        xml = self.update(domain_xml(self.STATELESS_LOADER),
                          dst_supports_stateless_firmware=True,
                          dst_os_loader=DST_CODE)
        root = etree.fromstring(xml)
        self.assertEqual('instance-00000001', root.findtext('name'))
        self.assertEqual('/var/lib/nova/instances/x/disk',
                         root.find('devices/disk/source').get('file'))
        self.assertEqual(['hd'], [b.get('dev')
                                  for b in root.findall('os/boot')])


class DestinationURITestCase(test.NoDBTestCase):
    """Where the source's libvirt and QEMU send a live migration."""

    def test_default_is_libvirt_over_tcp_to_the_destination(self):
        self.assertEqual('qemu+tcp://compute2/system',
                         migration.destination_uri('compute2'))

    def test_configured_uri_gets_the_destination(self):
        self.flags(live_migration_uri='qemu+tls://%s/system',
                   group='libvirt')
        self.assertEqual('qemu+tls://compute2/system',
                         migration.destination_uri('compute2'))

    def test_ipv6_address_in_brackets(self):
        self.assertEqual('qemu+tcp://[2001:db8::5]/system',
                         migration.destination_uri('2001:db8::5'))
        self.assertEqual('tcp://[2001:db8::5]',
                         migration.migrate_uri('2001:db8::5'))

    def test_uri_without_host_used_as_is(self):
        # A destination daemon reached through a UNIX socket of this
        # host; percent-encoded characters stay as they are.
        uri = 'qemu+unix:///system?socket=/srv/compute%202/libvirt-sock'
        self.flags(live_migration_uri=uri, group='libvirt')
        self.assertEqual(uri, migration.destination_uri('compute2'))

    def test_memory_goes_to_the_inbound_address(self):
        self.assertEqual('tcp://192.0.2.7', migration.migrate_uri(
            '192.0.2.7'))
