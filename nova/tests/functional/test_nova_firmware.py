"""``nova-firmware`` on this machine's real libvirt, QEMU and placement.

The command runs in-process through ``main()``, against the process's
embedded libvirt root (``EmbeddedLibvirtFixture``; libvirt allows one per
process) with a state directory of its own. One test boots a real guest
(TCG, a few seconds to the firmware); the others stop before QEMU starts.
The HTTP placement tests serve the real placement application on a local
port and point ``--placement-url`` at it.
"""

import json
import os
import re
import socket
import threading
from wsgiref import simple_server

import fixtures
from keystoneauth1 import loading as ks_loading
import os_traits
from oslo_utils import units

from nova.compute import manager as compute_manager
import nova.conf
from nova import test
from nova.tests.fixtures import filesystem
from nova.tests.fixtures import libvirt_embed
from nova.tests.fixtures import placement as placement_fixture
from nova.tests.fixtures import servers
from nova.tests.unit.cmd import cli_fixture

CONF = nova.conf.CONF
STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd'
OVMF_CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'


class _NovaFirmwareTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.embed = self.useFixture(libvirt_embed.EmbeddedLibvirtFixture())
        self.cli = self.useFixture(cli_fixture.NovaFirmwareFixture())
        self.state_dir = self.useFixture(fixtures.TempDir()).path

    def run_cli(self, *argv):
        return self.cli.run('--connection', self.embed.uri,
                            '--state-dir', self.state_dir, *argv)


class CheckAndXmlTestCase(_NovaFirmwareTestCase):

    def test_check(self):
        result = self.run_cli('check')

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn('stateless firmware: yes', lines)
        self.assertIn('loader:             %s' % OVMF_CODE, lines)
        self.assertIn('xml form:           explicit', lines)
        self.assertIn('uri:                %s' % self.embed.uri, lines)
        self.assertIn('  - %s' % STATELESS, lines)
        self.assertIn("    <loader readonly=\"yes\" type=\"pflash\" "
                      "stateless=\"yes\">%s</loader>" % OVMF_CODE, lines)
        # Whose decision this is, and where a patched release's is.
        self.assertIn("decision logic:     this tree's (nova-firmware), not "
                      "that of the Nova installed on this host", lines)
        self.assertIn('patched release:    on a host running a patched Nova '
                      '2024.1, 2026.1, 2026.2, ask its own code: python3 '
                      'series/RELEASE/boot_check.py --config-file '
                      '/etc/nova/nova.conf', lines)

    def test_xml_invalid_property(self):
        result = self.run_cli('xml', '--property',
                              'hw_firmware_stateless=ture')

        self.assertEqual(2, result.code)
        self.assertEqual('', result.stdout)
        self.assertEqual(
            ["nova-firmware xml: error: Invalid value 'ture' for image "
             "property 'hw_firmware_stateless': accepted values are '1', "
             "'t', 'true', 'on', 'y', 'yes', '0', 'f', 'false', 'off', "
             "'n', 'no'."], result.stderr_lines)

    def test_xml_stateless(self):
        result = self.run_cli('xml', '--property', 'hw_firmware_type=uefi',
                              '--property', 'hw_firmware_stateless=true')

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        self.assertIn('query:              GET /allocation_candidates?'
                      'limit=1000&required=%s&' % STATELESS, result.stdout)
        xml = result.stdout[result.stdout.index('<domain'):]
        self.assertIn("<loader readonly=\"yes\" type=\"pflash\" "
                      "stateless=\"yes\">%s</loader>" % OVMF_CODE, xml)
        self.assertNotIn('nvram', xml)
        self.assertEqual([], self.embed.host.list_instance_names())

    def test_check_reads_the_compute_hosts_configuration(self):
        # As nova-status: ~/.nova/nova.conf, ~/nova.conf, /etc/nova/...
        home = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.EnvironmentVariable('HOME', home))
        conf = os.path.join(home, '.nova', 'nova.conf')
        os.makedirs(os.path.dirname(conf))
        with open(conf, 'w') as f:
            f.write('[libvirt]\nconnection_uri = %s\nvirt_type = qemu\n' %
                    self.embed.uri)
        # The file, not the test fixture, says where libvirt is.
        for name in ('connection_uri', 'virt_type'):
            CONF.clear_override(name, group='libvirt')

        result = self.cli.run('--state-dir', self.state_dir, 'check')

        self.assertEqual(0, result.code, result)
        lines = result.stdout.splitlines()
        self.assertEqual(['config files:', '  - %s' % conf], lines[:2])
        self.assertIn('virt type from:     [libvirt] virt_type in %s' % conf,
                      lines)
        self.assertIn('uri:                %s' % self.embed.uri, lines)
        self.assertIn('uri from:           [libvirt] connection_uri in %s'
                      % conf, lines)

    def test_check_says_where_its_defaults_come_from(self):
        home = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.EnvironmentVariable('HOME', home))
        if os.path.exists('/etc/nova/nova.conf'):
            self.skipTest('this machine has an /etc/nova/nova.conf')

        result = self.run_cli('--json', 'check')

        report = json.loads(result.stdout)
        self.assertEqual([], report['config_files'])
        self.assertEqual('the --connection option', report['uri_from'])
        self.assertEqual("nova-firmware's default: qemu (TCG); no nova "
                         "configuration file was read",
                         report['virt_type_from'])
        # Structured values are objects.
        self.assertEqual({'configured': 'q35', 'versioned': 'pc-q35-7.2'},
                         report['machine_type'])
        self.assertEqual(
            {'path': '/usr/share/qemu/firmware/60-edk2-x86_64.json',
             'mode': 'split'}, report['descriptor'])
        self.assertEqual({'DISK_GB', 'MEMORY_MB', 'VCPU'},
                         set(report['inventory']))
        self.assertIsInstance(report['inventory']['VCPU'], int)

    def test_xml_sev_snp_on_a_host_without_sev(self):
        # The scheduler would find no such host; xml says so too.
        result = self.run_cli(
            'xml', '--property', 'hw_firmware_type=uefi',
            '--property', 'hw_firmware_stateless=true',
            '--property', 'hw_mem_encryption=true',
            '--property', 'hw_mem_encryption_model=amd-sev-snp')

        self.assertEqual(1, result.code, result)
        self.assertNotIn('<domain', result.stdout)
        self.assertIn('MEM_ENCRYPTION_CONTEXT:1', result.stdout)
        self.assertEqual(
            ['nova-firmware xml: error: this host cannot honour the '
             'request: it does not report trait HW_CPU_X86_AMD_SEV_SNP, '
             'resource MEM_ENCRYPTION_CONTEXT (1 needed, none reported)'],
            result.stderr_lines)

    def test_xml_more_memory_than_the_host_has(self):
        result = self.run_cli('--json', 'xml', '--flavor', 'ram=2147483647')

        self.assertEqual(1, result.code, result)
        report = json.loads(result.stdout)
        self.assertIsNone(report['xml'])
        self.assertRegex(report['error'],
                         r'^this host cannot honour the request: it does '
                         r'not report resource MEMORY_MB \(2147483647 '
                         r'needed, at most \d+ here\)$')

    def test_xml_machine_type_qemu_does_not_offer(self):
        result = self.run_cli('xml', '--property', 'hw_machine_type=q53')

        self.assertEqual(1, result.code, result)
        self.assertEqual(
            ["nova-firmware xml: error: this host cannot honour the request: "
             "image property 'hw_machine_type' is 'q53', which QEMU here "
             "does not offer for x86_64 guests of virt type qemu; it offers "
             "isapc, microvm, pc, q35, x-remote, pc-i440fx-1.4 to "
             "pc-i440fx-7.2, pc-q35-2.4 to pc-q35-7.2"],
            result.stderr_lines)

    def test_xml_stateless_with_bios_says_it_is_ignored(self):
        result = self.run_cli('xml', '--property',
                              'hw_firmware_stateless=true')

        self.assertEqual(0, result.code, result)
        self.assertEqual(
            ["nova-firmware xml: warning: image property "
             "'hw_firmware_stateless' is ignored: the image boots BIOS, "
             "which keeps no NVRAM; set 'hw_firmware_type=uefi' to boot "
             "stateless UEFI firmware"], result.stderr_lines)
        self.assertNotIn('<loader', result.stdout)

    def test_xml_request_this_host_cannot_honour(self):
        result = self.run_cli('xml', '--property', 'hw_firmware_type=uefi',
                              '--property', 'hw_firmware_stateless=true',
                              '--property', 'os_secure_boot=required')

        self.assertEqual(1, result.code, result)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        # Debian's OVMF has no such firmware, so the host does not report
        # the trait the scheduler asks for, and the line says what it means.
        self.assertIn('it does not report trait '
                      'CUSTOM_SECURITY_STATELESS_FIRMWARE_SECURE_BOOT',
                      result.stderr)
        self.assertIn("a firmware descriptor of mode 'stateless' with the "
                      "features 'secure-boot' and 'enrolled-keys'",
                      result.stderr)


class SmallFilesystemTestCase(_NovaFirmwareTestCase):
    """A state directory on a real filesystem under 1 GiB."""

    def test_under_one_gib(self):
        fs = self.useFixture(filesystem.SmallFilesystemFixture(64 * units.Mi))

        check = self.cli.run('--connection', self.embed.uri, '--state-dir',
                             fs.path, '--json', 'check')
        boot = self.cli.run('--connection', self.embed.uri, '--state-dir',
                            fs.path, 'boot')

        # No DISK_GB (placement refuses a total of 0) ...
        self.assertEqual(0, check.code, check)
        self.assertEqual({'MEMORY_MB', 'VCPU'},
                         set(json.loads(check.stdout)['inventory']))
        # ... and the boot says which directory is too small, before
        # anything starts.
        self.assertEqual(
            (2, '', ['nova-firmware boot: error: the state directory %s is '
                     'on a filesystem of 64.0 MiB: the compute node reports '
                     '0 GiB of disk (DISK_GB) and the flavor needs 1 GiB. Use '
                     'a --state-dir on a filesystem of at least 1 GiB, or '
                     '--flavor disk=0.' % fs.path]),
            (boot.code, boot.stdout, boot.stderr_lines))


class UnreachableLibvirtTestCase(test.NoDBTestCase):

    def test_check(self):
        cli = self.useFixture(cli_fixture.NovaFirmwareFixture())
        state_dir = self.useFixture(fixtures.TempDir()).path
        path = os.path.join(state_dir, 'no-such-socket')

        result = cli.run('--state-dir', state_dir, '--connection',
                         'qemu+unix:///system?socket=%s' % path, 'check')

        self.assertEqual(2, result.code)
        self.assertEqual('', result.stdout)
        self.assertEqual(
            ["nova-firmware check: error: cannot connect to libvirt at "
             "qemu+unix:///system?socket=%s: Failed to connect socket to "
             "'%s': No such file or directory" % (path, path)],
            result.stderr_lines)


class BootTestCase(_NovaFirmwareTestCase):

    def test_boot_stateless(self):
        result = self.run_cli('boot')

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        out = result.stdout
        stages = [line.split()[0] for line in out.splitlines()
                  if line.startswith('[')]
        self.assertEqual(['[%d/8]' % n for n in range(1, 9)], stages)
        self.assertIn('required=%s' % STATELESS, out)
        name = re.search(r'\[5/8\] spawn: (instance-[0-9a-f]{8}) ',
                         out).group(1)
        self.assertRegex(out, r"\[6/8\] firmware: .* ok [0-9.]+s "
                              r"\('BdsDxe:'\)")
        # The evidence: the live <os>, the drives QEMU got, no NVRAM.
        self.assertIn("<loader readonly=\"yes\" type=\"pflash\" "
                      "stateless=\"yes\">%s</loader>" % OVMF_CODE, out)
        self.assertNotIn('<nvram', out)
        self.assertIn('      pflash:\n'
                      '        - unit: 0, file: %s, read only: yes\n'
                      '      nvram:              none\n' % OVMF_CODE, out)
        self.assertIn('(1 read-only pflash, no NVRAM)', out)
        self.assertIn('(no domain, NVRAM, instance files or allocation '
                      'left)', out)
        self.assertRegex(out, r'PASS: the guest booted stateless UEFI '
                              r'firmware, as requested')
        # Nothing is left on the host.
        self.assertNotIn(name, self.embed.host.list_instance_names())
        self.assertEqual([], [f for f in os.listdir(self.embed.nvram_dir)
                              if f.startswith(name)]
                         if os.path.isdir(self.embed.nvram_dir) else [])
        self.assertEqual(
            [], os.listdir(os.path.join(self.state_dir, 'instances')))

    def test_boot_aarch64_guest(self):
        # The default machine type q35 is an x86 one: an aarch64 image
        # goes without it and gets virt, and AAVMF boots with no store.
        result = self.run_cli('boot', '--property', 'hw_architecture=aarch64')

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        out = result.stdout
        self.assertIn('[3/8] api: validate hw_architecture=aarch64 '
                      'hw_firmware_stateless=true hw_firmware_type=uefi, ',
                      out)
        self.assertRegex(out, r'<type arch="aarch64" machine="virt-[0-9.]+">')
        self.assertIn('      pflash:\n'
                      '        - unit: 0, file: %s, read only: yes\n'
                      '      nvram:              none\n' % AAVMF_CODE, out)
        self.assertRegex(out, r'PASS: the guest booted stateless UEFI '
                              r'firmware, as requested')


class _QuietHandler(simple_server.WSGIRequestHandler):

    def log_message(self, format, *args):
        pass


class HTTPPlacementTestCase(_NovaFirmwareTestCase):
    """``boot --placement-url`` against placement served over HTTP."""

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        server = simple_server.make_server(
            '127.0.0.1', 0, self.placement.embedded.wsgi_app,
            handler_class=_QuietHandler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        self.url = 'http://127.0.0.1:%d' % server.server_port

    def use_auth_plugin(self, name):
        # keystoneauth registers the options of the plugin it loads on the
        # configuration for good; registered through the fixture they go
        # after the test, so another test can load a plugin whose options
        # have the same names.
        self.conf_fixture.register_opts(
            ks_loading.get_auth_plugin_conf_options(name), group='placement')

    def write_config(self, text):
        path = os.path.join(self.state_dir, 'nova.conf')
        with open(path, 'w') as f:
            f.write(text)
        return path

    def test_registers_the_host_and_schedules_over_http(self):
        # Placement there runs with auth_strategy = noauth2, which takes
        # the token as the user and makes 'admin' an admin.
        self.use_auth_plugin('admin_token')
        conf = self.write_config(
            '[placement]\nauth_type = admin_token\ntoken = admin\n')
        # More CPUs than this host has: refused by the scheduler, before
        # anything is spawned.
        argv = ('--config-file', conf, 'boot', '--placement-url', self.url,
                '--flavor', 'vcpus=%d' % (os.cpu_count() + 1))

        result = self.run_cli(*argv)

        self.assertEqual(1, result.code, result)
        self.assertIn('[1/8] placement: %s (auth_type admin_token) ... ok'
                      % self.url, result.stdout)
        self.assertIn('compute node not registered yet', result.stdout)
        self.assertIn('No valid host was found', result.stderr)
        node_uuid = compute_manager.compute_node_uuid(socket.gethostname())
        resp = self.placement.adapter.get(
            '/resource_providers/%s/traits' % node_uuid, microversion='1.6')
        self.assertIn(STATELESS, resp.json()['traits'])

        result = self.run_cli(*argv)

        self.assertIn('compute node registered (%s)' % node_uuid,
                      result.stdout)

    def test_an_http_server_that_is_not_placement(self):
        self.use_auth_plugin('none')
        versions = json.dumps({'versions': [
            {'id': 'v1.0', 'min_version': '1.0', 'max_version': '1.39'}]})
        for root, providers, request, shown in (
                ('hello', '{}', 'GET /', "'hello'"),
                ('{}', '{}', 'GET /', "'{}'"),
                ('{"versions": []}', '{}', 'GET /', "'{\"versions\": []}'"),
                ('{"versions": ["x"]}', '{}', 'GET /',
                 "'{\"versions\": [\"x\"]}'"),
                (versions, '{"resource_providers": [{}]}',
                 'GET /resource_providers',
                 "'{\"resource_providers\": [{}]}'")):
            server = self.useFixture(servers.StaticHTTPServerFixture(
                {'/': (200, root), '*': (200, providers)}))
            expected = ("its version document {\"versions\": "
                        "[{\"min_version\": ..., \"max_version\": ...}]}"
                        if request == 'GET /' else
                        'a list of resource providers '
                        '{"resource_providers": [...]}')

            result = self.run_cli('--json', 'boot', '--placement-url',
                                  server.url)

            self.assertEqual(2, result.code, result)
            self.assertEqual(
                'Unable to communicate with the Placement API: %s answered '
                '200 with %s, not %s; is %s a placement service?' % (
                    request, shown, expected, server.url),
                json.loads(result.stdout)['error'])

    def test_a_placement_that_never_answers(self):
        self.use_auth_plugin('none')
        server = self.useFixture(servers.SilentServerFixture())
        # The default timeout, shortened for the test.
        self.useFixture(fixtures.MonkeyPatch(
            'nova.cmd.firmware_placement.DEFAULT_PLACEMENT_TIMEOUT', 1))

        result = self.run_cli('boot', '--placement-url', server.url)

        self.assertEqual(2, result.code, result)
        self.assertEqual(
            ['nova-firmware boot: error: Unable to communicate with the '
             'Placement API: Request to %s/ timed out' % server.url],
            result.stderr_lines)

    def test_without_credentials(self):
        self.use_auth_plugin('none')
        result = self.run_cli('boot', '--placement-url', self.url)

        self.assertEqual(2, result.code)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        self.assertIn('placement refused the credentials (403: ',
                      result.stderr)
        self.assertIn('[placement] section of a --config-file',
                      result.stderr)
        self.assertIn('[1/8] placement: %s (auth_type none) ... failed'
                      % self.url, result.stdout)
