"""Tests of fakelibvirt: it must behave like the libvirt it poses as.

Where libvirt 9.0 on this machine shows a behaviour (error codes, NVRAM
generation, autoselection failing at start), the fake is held to it here;
``nova/tests/functional/libvirt/test_host_real.py`` shows the same on the
real thing.
"""

import fixtures
from lxml import etree

from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import libvirt_embed
from nova.virt.libvirt import config as vconfig

CODE = fakelibvirt.OVMF_CODE
VARS = fakelibvirt.OVMF_VARS


def domain_xml(name='instance-1', loader=None, nvram=None, acpi=True,
               machine='q35', firmware=None, virt_type='qemu',
               uuid=None) -> str:
    os_attrs = " firmware='%s'" % firmware if firmware else ''
    parts = ["<domain type='%s'>" % virt_type, '<name>%s</name>' % name]
    if uuid:
        parts.append('<uuid>%s</uuid>' % uuid)
    parts += ["<memory unit='MiB'>256</memory>", '<vcpu>2</vcpu>',
              '<os%s>' % os_attrs,
              "<type arch='x86_64' machine='%s'>hvm</type>" % machine]
    if loader is not None:
        parts.append(loader)
    if nvram is not None:
        parts.append(nvram)
    parts.append('</os>')
    if acpi:
        parts.append('<features><acpi/></features>')
    parts.append('</domain>')
    return ''.join(parts)


STATELESS_LOADER = ("<loader readonly='yes' type='pflash' stateless='yes'>"
                    "%s</loader>" % CODE)
PLAIN_LOADER = "<loader readonly='yes' type='pflash'>%s</loader>" % CODE


class _FakeTestCase(test.NoDBTestCase):

    LV_VER = (8, 6, 0)

    def setUp(self):
        super().setUp()
        self.fake = self.useFixture(
            fakelibvirt.FakeLibvirtFixture(lv_ver=self.LV_VER))
        self.conn = fakelibvirt.open('qemu:///system')

    def assert_libvirt_error(self, code, domain, func, *args):
        ex = self.assertRaises(fakelibvirt.libvirtError, func, *args)
        self.assertEqual(code, ex.get_error_code())
        self.assertEqual(domain, ex.get_error_domain())
        return ex

    def loader_and_nvram(self, dom):
        doc = etree.fromstring(dom.XMLDesc(0))
        return doc.find('os/loader'), doc.find('os/nvram')


class HostInformationTestCase(_FakeTestCase):

    def test_versions_follow_fixture(self):
        fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=(9, 0, 0), hv_ver=(7, 2, 22)))
        conn = fakelibvirt.open('qemu:///system')
        self.assertEqual(9000000, conn.getLibVersion())
        self.assertEqual(7002022, conn.getVersion())
        self.assertEqual('QEMU', conn.getType())
        self.assertEqual((9, 0, 0), fake.config.lv_ver)

    def test_capabilities(self):
        caps = vconfig.LibvirtConfigCaps()
        caps.parse_str(self.conn.getCapabilities())
        self.assertEqual('x86_64', caps.host.cpu.arch)
        guest = caps.guests[0]
        self.assertEqual('hvm', guest.ostype)
        self.assertEqual({'qemu', 'kvm'}, set(guest.domains))
        self.assertEqual('pc-q35-7.2', guest.machines['q35'])
        self.assertEqual('/usr/bin/qemu-system-x86_64',
                         guest.domains['qemu'].emulator)

    def test_domain_capabilities_list_descriptor_executables(self):
        caps = vconfig.LibvirtConfigDomainCaps()
        caps.parse_str(self.conn.getDomainCapabilities(
            None, 'x86_64', 'q35', 'qemu', 0))
        self.assertEqual('pc-q35-7.2', caps.machine_type)
        self.assertEqual('qemu', caps.virt_type)
        self.assertEqual(['efi'], caps.os.firmware)
        self.assertEqual([fakelibvirt.OVMF_CODE_MS,
                          fakelibvirt.OVMF_CODE_SECBOOT, CODE],
                         caps.os.loader_paths)
        self.assertEqual(['rom', 'pflash'], caps.os.loader_types)

    def test_domain_capabilities_follow_machine_type(self):
        caps = vconfig.LibvirtConfigDomainCaps()
        caps.parse_str(self.conn.getDomainCapabilities(
            None, 'x86_64', None, 'kvm', 0))
        self.assertEqual('pc-i440fx-7.2', caps.machine_type)
        # Debian's secure boot builds target q35 only.
        self.assertEqual([CODE], caps.os.loader_paths)

    def test_domain_capabilities_explicit_loader_paths(self):
        self.useFixture(fakelibvirt.FakeLibvirtFixture(
            loader_paths=('/fw/A.fd',), firmware=()))
        caps = vconfig.LibvirtConfigDomainCaps()
        caps.parse_str(fakelibvirt.open().getDomainCapabilities(
            None, 'x86_64', 'q35', 'qemu', 0))
        self.assertEqual(['/fw/A.fd'], caps.os.loader_paths)
        self.assertEqual([], caps.os.firmware)

    def test_domain_capabilities_errors(self):
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_INVALID_ARG, fakelibvirt.VIR_FROM_QEMU,
            self.conn.getDomainCapabilities, None, 'x86_64', 'bogus',
            'qemu', 0)
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_CONFIG_UNSUPPORTED, fakelibvirt.VIR_FROM_QEMU,
            self.conn.getDomainCapabilities, None, 's390x', None, 'qemu', 0)
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_INVALID_ARG, fakelibvirt.VIR_FROM_QEMU,
            self.conn.getDomainCapabilities, None, 'x86_64', 'q35', 'xen',
            0)

    def test_get_info(self):
        info = self.conn.getInfo()
        self.assertEqual(['x86_64', 16384, 4], info[:3])


class StatelessLoaderTestCase(_FakeTestCase):
    """``stateless`` on libvirt >= 8.6.0."""

    def test_stateless_loader_kept_without_nvram(self):
        dom = self.conn.defineXML(domain_xml(loader=STATELESS_LOADER))
        loader, nvram = self.loader_and_nvram(dom)
        self.assertEqual('yes', loader.get('stateless'))
        self.assertEqual(CODE, loader.text)
        self.assertIsNone(nvram)

    def test_stateful_loader_gets_nvram(self):
        dom = self.conn.defineXML(domain_xml(loader=PLAIN_LOADER))
        _loader, nvram = self.loader_and_nvram(dom)
        self.assertEqual('/var/lib/libvirt/qemu/nvram/instance-1_VARS.fd',
                         nvram.text)

    def test_stateless_with_nvram_rejected(self):
        ex = self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_XML_DETAIL, fakelibvirt.VIR_FROM_DOMAIN,
            self.conn.defineXML, domain_xml(loader=STATELESS_LOADER,
                                            nvram='<nvram>/x.fd</nvram>'))
        self.assertIn('NVRAM is not permitted when loader is stateless',
                      str(ex))

    def test_stateless_with_template_rejected(self):
        ex = self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_XML_DETAIL, fakelibvirt.VIR_FROM_DOMAIN,
            self.conn.defineXML, domain_xml(
                loader=STATELESS_LOADER,
                nvram="<nvram template='%s'/>" % VARS))
        self.assertIn('NVRAM template is not permitted', str(ex))

    def test_validate_flag_accepts_stateless(self):
        dom = self.conn.defineXMLFlags(domain_xml(loader=STATELESS_LOADER),
                                       fakelibvirt.VIR_DOMAIN_DEFINE_VALIDATE)
        self.assertEqual('yes', self.loader_and_nvram(dom)[0].get(
            'stateless'))


class StatelessLoaderOldLibvirtTestCase(_FakeTestCase):
    """Before 8.6.0 the attribute is unknown, ignored, and NVRAM appears."""

    LV_VER = (8, 5, 0)

    def test_stateless_attribute_silently_dropped(self):
        dom = self.conn.defineXML(domain_xml(loader=STATELESS_LOADER))
        loader, nvram = self.loader_and_nvram(dom)
        self.assertNotIn('stateless', loader.attrib)
        self.assertEqual('/var/lib/libvirt/qemu/nvram/instance-1_VARS.fd',
                         nvram.text)

    def test_validate_flag_rejects_stateless(self):
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_XML_INVALID_SCHEMA, fakelibvirt.VIR_FROM_XML,
            self.conn.defineXMLFlags, domain_xml(loader=STATELESS_LOADER),
            fakelibvirt.VIR_DOMAIN_DEFINE_VALIDATE)


class DefineTestCase(_FakeTestCase):

    def test_machine_alias_expanded_and_uuid_added(self):
        dom = self.conn.defineXML(domain_xml())
        doc = etree.fromstring(dom.XMLDesc(0))
        self.assertEqual('pc-q35-7.2', doc.find('os/type').get('machine'))
        self.assertEqual(dom.UUIDString(), doc.findtext('uuid'))
        self.assertEqual(36, len(dom.UUIDString()))

    def test_uefi_requires_acpi(self):
        ex = self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_CONFIG_UNSUPPORTED, fakelibvirt.VIR_FROM_QEMU,
            self.conn.defineXML, domain_xml(loader=STATELESS_LOADER,
                                            acpi=False))
        self.assertIn('UEFI requires ACPI', str(ex))

    def test_missing_name(self):
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_NO_NAME, fakelibvirt.VIR_FROM_DOMAIN,
            self.conn.defineXML, "<domain type='qemu'><memory>1</memory>"
                                 "</domain>")

    def test_malformed_xml(self):
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_XML_DETAIL, fakelibvirt.VIR_FROM_DOMAIN,
            self.conn.defineXML, '<domain><name>x</name')

    def test_unsupported_virt_type(self):
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_CONFIG_UNSUPPORTED, fakelibvirt.VIR_FROM_QEMU,
            self.conn.defineXML, domain_xml(virt_type='xen'))

    def test_redefine_keeps_uuid(self):
        first = self.conn.defineXML(domain_xml())
        second = self.conn.defineXML(domain_xml(loader=PLAIN_LOADER))
        self.assertIs(first, second)
        self.assertIsNotNone(self.loader_and_nvram(first)[0])
        self.assertEqual(['instance-1'],
                         [d.name() for d in self.conn.listAllDomains(0)])

    def test_redefine_with_other_uuid_rejected(self):
        self.conn.defineXML(domain_xml())
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_FAILED, fakelibvirt.VIR_FROM_DOMAIN,
            self.conn.defineXML,
            domain_xml(uuid='11111111-2222-3333-4444-555555555555'))

    def test_lookup(self):
        dom = self.conn.defineXML(domain_xml())
        self.assertIs(dom, self.conn.lookupByName('instance-1'))
        self.assertIs(dom, self.conn.lookupByUUIDString(dom.UUIDString()))
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_NO_DOMAIN, fakelibvirt.VIR_FROM_QEMU,
            self.conn.lookupByName, 'instance-2')

    def test_read_only_connection_cannot_define(self):
        conn = fakelibvirt.openReadOnly('qemu:///system')
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_INVALID, fakelibvirt.VIR_FROM_NONE,
            conn.defineXML, domain_xml())


class LifecycleTestCase(_FakeTestCase):

    def test_start_and_destroy(self):
        dom = self.conn.defineXML(domain_xml(loader=STATELESS_LOADER))
        self.assertEqual([fakelibvirt.VIR_DOMAIN_SHUTOFF,
                          fakelibvirt.VIR_DOMAIN_SHUTOFF_UNKNOWN],
                         dom.state())
        dom.createWithFlags(0)
        self.assertTrue(dom.isActive())
        self.assertEqual(fakelibvirt.VIR_DOMAIN_RUNNING, dom.info()[0])
        self.assertEqual([fakelibvirt.VIR_DOMAIN_RUNNING, 262144, 262144, 2],
                         dom.info()[:4])
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_INVALID, fakelibvirt.VIR_FROM_QEMU,
            dom.create)
        dom.destroy()
        self.assertEqual([fakelibvirt.VIR_DOMAIN_SHUTOFF,
                          fakelibvirt.VIR_DOMAIN_SHUTOFF_DESTROYED],
                         dom.state())
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_INVALID,
            fakelibvirt.VIR_FROM_DOMAIN, dom.destroy)
        # Stateless: no NVRAM, so a plain undefine works.
        dom.undefine()
        self.assertEqual([], self.conn.listAllDomains(0))

    def test_undefine_with_nvram_needs_a_flag(self):
        for flag in (fakelibvirt.VIR_DOMAIN_UNDEFINE_NVRAM,
                     fakelibvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM):
            dom = self.conn.defineXML(domain_xml(loader=PLAIN_LOADER))
            dom.create()
            dom.destroy()
            ex = self.assert_libvirt_error(
                fakelibvirt.VIR_ERR_OPERATION_INVALID,
                fakelibvirt.VIR_FROM_QEMU, dom.undefine)
            self.assertIn('cannot undefine domain with nvram', str(ex))
            dom.undefineFlags(flag)
            self.assertEqual([], self.conn.listAllDomains(0))

    def test_undefine_running_domain_becomes_transient(self):
        dom = self.conn.defineXML(domain_xml(loader=STATELESS_LOADER))
        dom.create()
        dom.undefine()
        self.assertFalse(dom.isPersistent())
        self.assertEqual([dom], self.conn.listAllDomains(0))
        dom.destroy()
        self.assertEqual([], self.conn.listAllDomains(0))

    def test_list_active_and_inactive(self):
        running = self.conn.defineXML(domain_xml(name='a'))
        running.create()
        self.conn.defineXML(domain_xml(name='b'))
        active = self.conn.listAllDomains(
            fakelibvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        inactive = self.conn.listAllDomains(
            fakelibvirt.VIR_CONNECT_LIST_DOMAINS_INACTIVE)
        self.assertEqual(['a'], [d.name() for d in active])
        self.assertEqual(['b'], [d.name() for d in inactive])


class FirmwareAutoselectionTestCase(_FakeTestCase):

    LV_VER = (9, 0, 0)

    def autoselect_xml(self) -> str:
        return domain_xml(loader="<loader stateless='yes'/>", firmware='efi')

    def test_fails_at_start_without_stateless_descriptor(self):
        # Accepted at define, refused at start, as on libvirt 9.0 with
        # Debian's split-only descriptors.
        dom = self.conn.defineXML(self.autoselect_xml())
        ex = self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_FAILED, fakelibvirt.VIR_FROM_QEMU,
            dom.create)
        self.assertIn("Unable to find any firmware to satisfy 'efi'",
                      str(ex))
        self.assertFalse(dom.isActive())

    def test_starts_with_stateless_descriptor(self):
        self.fake.write_stateless_descriptor('30-stateless.json')
        dom = self.conn.defineXML(self.autoselect_xml())
        dom.create()
        self.assertTrue(dom.isActive())
        # As libvirt 9.0: the chosen build is in the live XML only.
        live = etree.fromstring(dom.XMLDesc(0)).find('os/loader')
        self.assertEqual('/usr/share/OVMF/OVMF.stateless.fd', live.text)
        self.assertEqual({'readonly': 'yes', 'type': 'pflash',
                          'stateless': 'yes'}, dict(live.attrib))
        inactive = etree.fromstring(dom.XMLDesc(
            fakelibvirt.VIR_DOMAIN_XML_INACTIVE)).find('os/loader')
        self.assertIsNone(inactive.text)
        self.assertIsNone(etree.fromstring(dom.XMLDesc(0)).find('os/nvram'))
        dom.destroy()
        self.assertIsNone(etree.fromstring(dom.XMLDesc(0)).find(
            'os/loader').text)

    def test_stateful_autoselection_uses_split(self):
        dom = self.conn.defineXML(domain_xml(firmware='efi'))
        dom.create()
        self.assertTrue(dom.isActive())
        live = etree.fromstring(dom.XMLDesc(0)).find('os')
        self.assertEqual(fakelibvirt.OVMF_CODE_MS, live.findtext('loader'))
        self.assertEqual(fakelibvirt.OVMF_VARS_MS,
                         live.find('nvram').get('template'))
        self.assertIn(live.findtext('nvram'), self.fake.hypervisor.nvram)


class FailureInjectionTestCase(_FakeTestCase):

    def test_fail_next_once(self):
        dom = self.conn.defineXML(domain_xml())
        self.fake.fail_next('createWithFlags',
                            fakelibvirt.VIR_ERR_OPERATION_TIMEOUT,
                            'cannot acquire state change lock')
        ex = self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_OPERATION_TIMEOUT, fakelibvirt.VIR_FROM_QEMU,
            dom.createWithFlags, 0)
        self.assertIn('state change lock', str(ex))
        dom.createWithFlags(0)
        self.assertTrue(dom.isActive())

    def test_fail_open(self):
        self.fake.fail_next('open', fakelibvirt.VIR_ERR_AUTH_FAILED,
                            error_domain=fakelibvirt.VIR_FROM_REMOTE)
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_AUTH_FAILED, fakelibvirt.VIR_FROM_REMOTE,
            fakelibvirt.open, 'qemu:///system')
        self.assertEqual(1, fakelibvirt.open().isAlive())

    def test_unavailable(self):
        self.fake.set_available(False)
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_SYSTEM_ERROR, fakelibvirt.VIR_FROM_RPC,
            fakelibvirt.open, 'qemu:///system')
        self.fake.set_available(True)
        fakelibvirt.open('qemu:///system')

    def test_drop_connection(self):
        dom = self.conn.defineXML(domain_xml())
        closed = []
        self.conn.registerCloseCallback(
            lambda conn, reason, opaque: closed.append((conn, reason,
                                                        opaque)), 'x')
        self.fake.drop_connection()
        self.assertEqual(
            [(self.conn, fakelibvirt.VIR_CONNECT_CLOSE_REASON_EOF, 'x')],
            closed)
        self.assertEqual(0, self.conn.isAlive())
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_INTERNAL_ERROR, fakelibvirt.VIR_FROM_RPC,
            self.conn.getLibVersion)
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_INTERNAL_ERROR, fakelibvirt.VIR_FROM_RPC,
            dom.create)
        # Like a restarted daemon, the domains are still there.
        conn = fakelibvirt.open('qemu:///system')
        self.assertEqual(['instance-1'],
                         [d.name() for d in conn.listAllDomains(0)])

    def test_make_libvirt_error(self):
        ex = fakelibvirt.make_libvirtError(
            fakelibvirt.libvirtError, 'boom',
            error_code=fakelibvirt.VIR_ERR_NO_DOMAIN,
            error_domain=fakelibvirt.VIR_FROM_QEMU)
        self.assertEqual('boom', str(ex))
        self.assertEqual('boom', ex.get_error_message())
        self.assertEqual(fakelibvirt.VIR_ERR_NO_DOMAIN, ex.get_error_code())
        self.assertEqual(fakelibvirt.VIR_FROM_QEMU, ex.get_error_domain())

    def test_no_fixture_no_connection(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt._HYPERVISOR', None))
        self.assert_libvirt_error(
            fakelibvirt.VIR_ERR_NO_CONNECT, fakelibvirt.VIR_FROM_NONE,
            fakelibvirt.open, 'qemu:///system')


class EmbeddedLibvirtFixtureTestCase(test.NoDBTestCase):
    """The real-libvirt fixture fails, never skips, on a machine without
    the embedded driver's prerequisites.
    """

    def test_fails_naming_what_is_missing(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.QEMU_SYSTEM_USERS',
            ('nova-test-no-such-user',)))
        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt_embed.EMULATOR',
            'nova-test-no-such-emulator'))
        fixture = libvirt_embed.EmbeddedLibvirtFixture()
        # fixtures reports a setUp failure with the original error first.
        errors = self.assertRaises(fixtures.MultipleExceptions,
                                   fixture.setUp)
        ex = errors.args[0][1]
        self.assertIsInstance(ex, libvirt_embed.EmbeddedLibvirtUnavailable)
        self.assertIn('nova-test-no-such-user', str(ex))
        self.assertIn('nova-test-no-such-emulator', str(ex))
