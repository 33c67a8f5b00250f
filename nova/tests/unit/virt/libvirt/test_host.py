"""Tests of the libvirt Host against fakelibvirt posing as other hosts.

The real host of this machine is covered by
``nova/tests/functional/libvirt/test_host_real.py``; here fakelibvirt
plays libvirt versions, firmware packages and failures this machine cannot
show.
"""

import os

import fixtures

from nova import exception
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import host

CODE = fakelibvirt.OVMF_CODE
STATELESS_CODE = '/usr/share/OVMF/OVMF.stateless.fd'
ENROLLED = ('acpi-s3', 'enrolled-keys', 'requires-smm', 'secure-boot')


class _HostTestCase(test.NoDBTestCase):
    """A Host on a fake libvirt 9.0 with Debian 12's OVMF by default."""

    LV_VER = (9, 0, 0)
    FAKE_ARGS: dict = {}

    def setUp(self):
        super().setUp()
        self.flags(virt_type='qemu', group='libvirt')
        self.fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=self.LV_VER, hv_ver=(7, 2, 0), **self.FAKE_ARGS))
        self.host = host.Host('qemu:///system')

    def use_fake(self, **kwargs) -> fakelibvirt.FakeLibvirtFixture:
        """Replace the fake host; the next Host sees the new one."""
        self.fake = self.useFixture(fakelibvirt.FakeLibvirtFixture(
            **kwargs))
        self.host = host.Host('qemu:///system')
        return self.fake


class DefaultURITestCase(test.NoDBTestCase):

    def test_derived_from_virt_type(self):
        for virt_type, uri in (('kvm', 'qemu:///system'),
                               ('qemu', 'qemu:///system')):
            self.flags(virt_type=virt_type, group='libvirt')
            self.assertEqual(uri, host.default_uri())
            self.assertEqual(uri, host.Host.default_uri())

    def test_only_the_virt_types_of_the_qemu_driver(self):
        # Others (lxc, parallels) have no UEFI firmware and failed with a
        # raw libvirt error; the option refuses them.
        for virt_type in ('lxc', 'parallels', 'xen'):
            self.assertRaises(ValueError, self.flags, virt_type=virt_type,
                              group='libvirt')

    def test_connection_uri_wins(self):
        self.flags(virt_type='kvm', connection_uri='qemu:///session',
                   group='libvirt')
        self.assertEqual('qemu:///session', host.default_uri())

    def test_embed_root(self):
        self.assertEqual('/srv/embed',
                         host.embed_root('qemu:///embed?root=/srv/embed'))
        self.assertEqual('', host.embed_root('qemu:///embed'))
        self.assertIsNone(host.embed_root('qemu:///system'))
        self.assertIsNone(host.embed_root('lxc:///embed?root=/x'))


class EmbedRootTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path

    def read_qemu_conf(self) -> str:
        with open(os.path.join(self.root, 'etc', 'qemu.conf')) as f:
            return f.read()

    def test_writes_qemu_conf(self):
        host.prepare_embed_root('qemu:///embed?root=' + self.root, self.root)
        conf = self.read_qemu_conf()
        self.assertIn('stdio_handler = "file"', conf)
        if os.geteuid() == 0:
            self.assertIn('user = "root"', conf)
            self.assertIn('group = "root"', conf)

    def test_keeps_existing_qemu_conf(self):
        os.makedirs(os.path.join(self.root, 'etc'))
        with open(os.path.join(self.root, 'etc', 'qemu.conf'), 'w') as f:
            f.write('# the operator\'s own\n')
        host.prepare_embed_root('qemu:///embed?root=' + self.root, self.root)
        self.assertEqual("# the operator's own\n", self.read_qemu_conf())

    def test_relative_root_rejected(self):
        ex = self.assertRaises(exception.LibvirtEmbedUnavailable,
                               host.prepare_embed_root,
                               'qemu:///embed?root=embed', 'embed')
        self.assertIn("must be an absolute path, not 'embed'", str(ex))

    def test_missing_qemu_user(self):
        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.host.QEMU_SYSTEM_USERS',
            ('nova-test-no-such-user',)))
        uri = 'qemu:///embed?root=' + self.root
        ex = self.assertRaises(exception.LibvirtEmbedUnavailable,
                               host.prepare_embed_root, uri, self.root)
        self.assertIn(uri, str(ex))
        self.assertIn('nova-test-no-such-user', str(ex))
        self.assertIsInstance(ex, exception.HypervisorUnavailable)


class ConnectionTestCase(_HostTestCase):

    def test_connection_is_lazy(self):
        self.host.initialize()
        self.assertEqual(0, self.host.api_calls['open'])
        self.host.get_connection()
        self.host.get_connection()
        self.assertEqual(1, self.host.api_calls['open'])

    def test_open_failure_is_hypervisor_unavailable(self):
        self.fake.set_available(False)
        self.flags(host='compute-a')
        ex = self.assertRaises(exception.HypervisorUnavailable,
                               self.host.get_libvirt_version)
        self.assertIn('compute-a', str(ex))
        self.assertIn('Failed to connect socket', self.stdlog.output)
        self.fake.set_available(True)
        self.assertEqual((9, 0, 0), self.host.get_libvirt_version())

    def test_reconnects_after_connection_closed(self):
        self.assertEqual((9, 0, 0), self.host.get_libvirt_version())
        self.fake.drop_connection()
        self.assertEqual((9, 0, 0), self.host.get_libvirt_version())
        self.assertEqual(2, self.host.api_calls['open'])
        self.assertIn('Connection to libvirt qemu:///system lost',
                      self.stdlog.output)

    def test_broken_connection_during_call(self):
        self.host.get_connection()
        self.fake.fail_next('getCapabilities',
                            fakelibvirt.VIR_ERR_SYSTEM_ERROR,
                            'Cannot recv data: Connection reset by peer',
                            fakelibvirt.VIR_FROM_RPC)
        self.assertRaises(exception.HypervisorUnavailable,
                          self.host.get_capabilities)
        self.assertEqual('x86_64', self.host.get_host_arch())
        self.assertEqual(2, self.host.api_calls['open'])

    def test_other_errors_pass_through(self):
        self.fake.fail_next('defineXML', fakelibvirt.VIR_ERR_XML_DETAIL,
                            'bad XML', fakelibvirt.VIR_FROM_DOMAIN)
        ex = self.assertRaises(fakelibvirt.libvirtError,
                               self.host.write_instance_config, '<domain/>')
        self.assertEqual(fakelibvirt.VIR_ERR_XML_DETAIL, ex.get_error_code())
        self.assertEqual(1, self.host.api_calls['open'])

    def test_read_only(self):
        ro_host = host.Host('qemu:///system', read_only=True)
        self.assertTrue(ro_host.get_connection().readonly)
        self.assertFalse(self.host.get_connection().readonly)

    def test_embed_uri_prepares_root(self):
        root = self.useFixture(fixtures.TempDir()).path
        embed = host.Host('qemu:///embed?root=' + root)
        embed.get_connection()
        self.assertTrue(os.path.exists(os.path.join(root, 'etc',
                                                    'qemu.conf')))
        self.assertEqual(root, host.opened_embed_root())

    def test_one_embed_root_per_process(self):
        first = self.useFixture(fixtures.TempDir()).path
        second = self.useFixture(fixtures.TempDir()).path
        host.Host('qemu:///embed?root=' + first).get_connection()
        host.Host('qemu:///embed?root=' + first).get_connection()
        other = host.Host('qemu:///embed?root=' + second)
        ex = self.assertRaises(exception.LibvirtEmbedUnavailable,
                               other.get_connection)
        self.assertIn('already opened %s' % first, str(ex))


class VersionTestCase(_HostTestCase):

    LV_VER = (8, 6, 0)

    def test_has_min_version(self):
        self.assertTrue(self.host.has_min_version())
        self.assertTrue(self.host.has_min_version(lv_ver=(8, 6, 0)))
        self.assertTrue(self.host.has_min_version(lv_ver=(8, 5, 99)))
        self.assertFalse(self.host.has_min_version(lv_ver=(8, 6, 1)))
        self.assertTrue(self.host.has_min_version(hv_ver=(7, 2, 0)))
        self.assertFalse(self.host.has_min_version(hv_ver=(7, 2, 1)))
        self.assertTrue(self.host.has_min_version(lv_ver=(8, 0, 0),
                                                  hv_type='QEMU'))
        self.assertFalse(self.host.has_min_version(lv_ver=(8, 0, 0),
                                                   hv_type='Xen'))

    def test_has_version(self):
        self.assertTrue(self.host.has_version(lv_ver=(8, 6, 0),
                                              hv_ver=(7, 2, 0)))
        self.assertFalse(self.host.has_version(lv_ver=(8, 5, 0)))

    def test_version_check_survives_libvirt_error(self):
        self.fake.fail_next('getLibVersion')
        self.assertFalse(self.host.has_min_version(lv_ver=(1, 0, 0)))

    def test_version_tuples(self):
        self.assertEqual((8, 6, 0), self.host.get_libvirt_version())
        self.assertEqual((7, 2, 0), self.host.get_hypervisor_version())


class StatelessVersionBoundaryTestCase(test.NoDBTestCase):
    """Only the version changes here; the firmware is Debian's."""

    def support(self, lv_ver):
        self.flags(virt_type='qemu', group='libvirt')
        self.useFixture(fakelibvirt.FakeLibvirtFixture(lv_ver=lv_ver))
        return host.Host('qemu:///system').stateless_firmware_support()

    def test_8_5_x_unsupported(self):
        for lv_ver in ((8, 5, 0), (8, 5, 99)):
            support = self.support(lv_ver)
            self.assertFalse(support.supported)
            self.assertIsNone(support.xml_form)
            self.assertIsNone(support.loader)
            self.assertEqual(lv_ver, support.libvirt_version)
            self.assertIn('older than 8.6.0', support.reasons[0])
            self.assertIn('NVRAM', support.reasons[0])

    def test_8_6_0_supported(self):
        support = self.support((8, 6, 0))
        self.assertTrue(support.supported)
        self.assertEqual(host.XML_FORM_EXPLICIT, support.xml_form)
        self.assertEqual('libvirt 8.6.0 >= 8.6.0', support.reasons[0])

    def test_newer_supported(self):
        for lv_ver in ((8, 7, 0), (9, 0, 0), (10, 10, 0)):
            self.assertTrue(self.support(lv_ver).supported)

    def test_constant(self):
        self.assertEqual((8, 6, 0), host.MIN_LIBVIRT_STATELESS_FIRMWARE)


class StatelessDecisionTestCase(_HostTestCase):

    def test_debian_host_explicit_loader(self):
        support = self.host.stateless_firmware_support()
        self.assertTrue(support.supported)
        self.assertEqual(host.XML_FORM_EXPLICIT, support.xml_form)
        self.assertEqual(CODE, support.loader.path)
        self.assertIsNone(support.loader.nvram_template)
        self.assertTrue(support.loader.stateless)
        self.assertEqual((9, 0, 0), support.libvirt_version)
        self.assertEqual((7, 2, 0), support.qemu_version)
        self.assertEqual(3, len(support.reasons))
        self.assertIn('explicit loader: %s, read-only pflash without NVRAM'
                      % CODE, support.reasons[1])
        self.assertIn("no firmware descriptor of mode 'stateless' for "
                      "x86_64/pc-q35-7.2", support.reasons[2])

    def test_decided_and_logged_once(self):
        first = self.host.stateless_firmware_support()
        calls = dict(self.host.api_calls)
        self.assertIs(first, self.host.stateless_firmware_support())
        self.assertTrue(self.host.supports_stateless_firmware)
        self.assertEqual(calls, dict(self.host.api_calls))
        self.assertEqual(
            1, self.stdlog.output.count('Stateless firmware support: True'))
        self.assertIn('INFO nova.virt.libvirt.host Stateless firmware '
                      'support: True (libvirt 9.0.0, QEMU 7.2.0, XML form '
                      'explicit)', self.stdlog.output)

    def test_explicit_preferred_over_autoselect(self):
        self.fake.write_stateless_descriptor('30-stateless.json',
                                             executable=STATELESS_CODE)
        support = self.host.stateless_firmware_support()
        self.assertEqual(host.XML_FORM_EXPLICIT, support.xml_form)
        self.assertEqual(STATELESS_CODE, support.loader.path)
        self.assertIn("descriptor %s has mode 'stateless'" % os.path.join(
            self.fake.firmware_dir, '30-stateless.json'), support.reasons[2])

    def test_autoselect_when_no_explicit_loader(self):
        self.use_fake(lv_ver=(10, 0, 0), loader_types=('rom',))
        self.fake.write_stateless_descriptor('30-stateless.json')
        support = self.host.stateless_firmware_support()
        self.assertTrue(support.supported)
        self.assertEqual(host.XML_FORM_AUTOSELECT, support.xml_form)
        self.assertIsNone(support.loader)
        self.assertIn("do not offer loader type 'pflash'",
                      support.reasons[1])

    def test_no_read_only_loaders(self):
        self.use_fake(lv_ver=(9, 0, 0), loader_readonly=('no',))
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertIn('do not offer read-only loaders', support.reasons[1])

    def test_loader_not_offered_by_libvirt(self):
        # Descriptors installed, but libvirt offers other images only.
        self.use_fake(lv_ver=(9, 0, 0), loader_paths=('/fw/Other.fd',))
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertIsNone(support.xml_form)
        self.assertIn('among the loader images libvirt offers '
                      '(/fw/Other.fd)', support.reasons[1])
        self.assertIn("no firmware descriptor of mode 'stateless'",
                      support.reasons[2])

    def test_no_firmware_installed(self):
        self.use_fake(lv_ver=(9, 0, 0), debian_firmware=False, firmware=())
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertIn('(none)', support.reasons[1])
        self.assertIn("do not offer firmware 'efi'", support.reasons[2])
        self.assertIn('Stateless firmware support: False',
                      self.stdlog.output)

    def test_only_enrolled_secure_boot_firmware(self):
        # The enrolled CODE requires SMM: without its variable store it
        # stops in the firmware, so it never counts as stateless-capable.
        self.use_fake(lv_ver=(9, 0, 0), debian_firmware=False)
        self.fake.write_split_descriptor(
            '40-enrolled.json', fakelibvirt.OVMF_CODE_MS,
            fakelibvirt.OVMF_VARS_MS, features=ENROLLED)
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertIsNone(support.loader)
        self.assertIn("the split builds requiring SMM (%s) stop in the "
                      "firmware" % fakelibvirt.OVMF_CODE_MS,
                      support.reasons[1])

    def test_plain_build_masked(self):
        # An empty file of the same name in a later directory hides the
        # plain build, as QEMU's descriptor rules allow: what is left
        # needs SMM and a variable store.
        mask = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(mask, '60-edk2-x86_64.json'), 'w'):
            pass
        self.flags(firmware_descriptor_dirs=[self.fake.firmware_dir, mask],
                   group='libvirt')
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertIn('%s, %s) stop in the firmware' % (
            fakelibvirt.OVMF_CODE_MS, fakelibvirt.OVMF_CODE_SECBOOT),
            support.reasons[1])

    def test_domain_capabilities_error(self):
        self.fake.fail_next('getDomainCapabilities',
                            fakelibvirt.VIR_ERR_INTERNAL_ERROR,
                            'QEMU probe failed')
        support = self.host.stateless_firmware_support()
        self.assertFalse(support.supported)
        self.assertTrue(support.probe_failed)
        self.assertIn('QEMU probe failed', support.reasons[1])
        self.assertIn('Stateless firmware support unknown, libvirt failed '
                      'to answer', self.stdlog.output)
        # Not kept: the next question asks libvirt again, and the answer
        # it then gives is kept.
        support = self.host.stateless_firmware_support()
        self.assertTrue(support.supported)
        self.assertFalse(support.probe_failed)
        self.assertIs(support, self.host.stateless_firmware_support())
        self.assertEqual(2, self.host.api_calls['getDomainCapabilities'])

    def test_default_machine_type_decides(self):
        # i440fx: only the plain build targets it, still stateless-capable.
        self.flags(hw_machine_type=['x86_64=pc'], group='libvirt')
        support = self.host.stateless_firmware_support()
        self.assertTrue(support.supported)
        self.assertIn('x86_64/pc-i440fx-7.2', support.reasons[2])


class DomainCapabilitiesTestCase(_HostTestCase):

    def test_fetched_once_per_machine_type(self):
        all_caps = self.host.get_domain_capabilities()
        self.host.get_domain_capabilities()
        self.host.get_loader('x86_64', 'q35')
        self.host.get_loader('x86_64', 'pc-q35-7.2', stateless=True)
        self.host.stateless_firmware_support()
        self.assertTrue(self.host.supports_uefi)
        self.assertTrue(self.host.supports_secure_boot)
        self.assertEqual(1, self.host.api_calls['getDomainCapabilities'])
        self.assertEqual(1, self.host.api_calls['getCapabilities'])
        caps = all_caps['x86_64']['q35']
        self.assertIs(caps, all_caps['x86_64']['pc-q35-7.2'])
        self.assertEqual('pc-q35-7.2', caps.machine_type)
        self.assertEqual('q35', caps.machine_type_alias)
        self.host.get_domain_capabilities_for('x86_64', 'pc')
        self.assertEqual(2, self.host.api_calls['getDomainCapabilities'])

    def test_virt_type_is_part_of_the_key(self):
        self.host.get_domain_capabilities_for('x86_64', 'q35')
        kvm = self.host.get_domain_capabilities_for('x86_64', 'q35', 'kvm')
        self.assertEqual('kvm', kvm.virt_type)
        self.assertEqual(2, self.host.api_calls['getDomainCapabilities'])

    def test_no_configured_machine_type(self):
        self.flags(hw_machine_type=[], group='libvirt')
        all_caps = self.host.get_domain_capabilities()
        self.assertEqual(['pc-i440fx-7.2'], list(all_caps['x86_64']))

    def test_malformed_machine_type_entry_ignored(self):
        self.flags(hw_machine_type=['q35', 'x86_64=q35'], group='libvirt')
        self.assertEqual({'x86_64': 'q35'},
                         self.host.configured_machine_types())
        self.assertIn("Ignoring [libvirt] hw_machine_type entry 'q35'",
                      self.stdlog.output)

    def test_arch_without_emulator_not_probed(self):
        self.flags(hw_machine_type=['x86_64=q35', 'aarch64=virt'],
                   group='libvirt')
        self.assertEqual(['x86_64'],
                         list(self.host.get_domain_capabilities()))

    def test_machine_aliases(self):
        self.assertEqual({'q35': 'pc-q35-7.2', 'pc': 'pc-i440fx-7.2'},
                         self.host.get_machine_aliases('x86_64'))
        self.assertEqual({}, self.host.get_machine_aliases('aarch64'))


class FirmwareTestCase(_HostTestCase):

    def test_descriptors_loaded_once(self):
        names = [d.name for d in self.host.firmware_descriptors]
        self.assertEqual(['40-edk2-x86_64-secure-enrolled.json',
                          '50-edk2-x86_64-secure.json',
                          '60-edk2-x86_64.json'], names)
        self.fake.remove_descriptors()
        self.assertEqual(3, len(self.host.firmware_descriptors))

    def test_get_loader(self):
        loader = self.host.get_loader('x86_64', 'q35')
        self.assertEqual(CODE, loader.path)
        self.assertEqual(fakelibvirt.OVMF_VARS, loader.nvram_template)
        secure = self.host.get_loader('x86_64', 'q35', secure_boot=True)
        self.assertEqual(fakelibvirt.OVMF_CODE_MS, secure.path)
        self.assertTrue(secure.secure_boot)
        self.assertTrue(secure.requires_smm)

    def test_get_loader_default_machine_type(self):
        self.assertEqual(CODE, self.host.get_loader('x86_64').path)

    def test_get_loader_stateless_secure_boot_not_found(self):
        self.assertRaises(exception.UEFILoaderNotFound, self.host.get_loader,
                          'x86_64', 'q35', secure_boot=True, stateless=True)

    def test_get_loader_filters_by_libvirt_paths(self):
        self.use_fake(loader_paths=(fakelibvirt.OVMF_CODE_SECBOOT,))
        # The enrolled build is installed but libvirt does not offer it.
        self.assertRaises(exception.UEFILoaderNotFound, self.host.get_loader,
                          'x86_64', 'q35', secure_boot=True)
        loader = self.host.get_loader('x86_64', 'q35')
        self.assertEqual(fakelibvirt.OVMF_CODE_SECBOOT, loader.path)
        self.assertFalse(loader.secure_boot)
        # Nor is the plain one: nothing here boots without a store.
        self.assertRaises(exception.UEFILoaderNotFound, self.host.get_loader,
                          'x86_64', 'q35', stateless=True)

    def test_supports_secure_boot(self):
        self.assertTrue(self.host.supports_secure_boot)
        self.use_fake(loader_secure=('no',))
        self.assertFalse(self.host.supports_secure_boot)
        self.use_fake(debian_firmware=False)
        self.fake.write_split_descriptor('60-plain.json')
        self.assertFalse(self.host.supports_secure_boot)

    def test_supports_uefi(self):
        self.assertTrue(self.host.supports_uefi)
        self.use_fake(debian_firmware=False, firmware=())
        self.assertFalse(self.host.supports_uefi)


class DomainTestCase(_HostTestCase):

    XML = ("<domain type='qemu'><name>instance-1</name>"
           "<memory unit='MiB'>128</memory><os><type>hvm</type></os>"
           "</domain>")

    def test_define_lookup_list(self):
        domain = self.host.write_instance_config(self.XML)
        self.assertEqual('instance-1', domain.name())
        self.assertIs(domain, self.host.get_domain('instance-1'))
        self.assertEqual(['instance-1'], self.host.list_instance_names())
        self.assertEqual(1, self.host.api_calls['defineXML'])

    def test_get_domain_not_found(self):
        ex = self.assertRaises(exception.InstanceNotFound,
                               self.host.get_domain, 'instance-9')
        self.assertIn('instance-9', str(ex))

    def test_get_domain_other_error(self):
        self.fake.fail_next('lookupByName',
                            fakelibvirt.VIR_ERR_OPERATION_FAILED,
                            'lookup went wrong')
        ex = self.assertRaises(exception.InternalError, self.host.get_domain,
                               'instance-1')
        self.assertIn('lookup went wrong', str(ex))

    def test_host_facts(self):
        self.assertEqual(['x86_64', 16384, 4], self.host.get_info()[:3])
        self.assertEqual('compute1', self.host.get_hostname())
        self.host.get_hostname()
        self.assertEqual(1, self.host.api_calls['getHostname'])
