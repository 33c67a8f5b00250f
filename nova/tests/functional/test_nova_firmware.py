"""``nova-firmware`` on this machine's real libvirt, QEMU and placement.

The command runs in-process through ``main()``, against the process's
embedded libvirt root (``EmbeddedLibvirtFixture``; libvirt allows one per
process) with a state directory of its own. One test boots a real guest
(TCG, a few seconds to the firmware); the others stop before QEMU starts.
The HTTP placement tests serve the real placement application on a local
port and point ``--placement-url`` at it.
"""

import os
import re
import socket
import threading
from wsgiref import simple_server

import fixtures
from keystoneauth1 import loading as ks_loading
import os_traits

from nova.compute import manager as compute_manager
from nova import test
from nova.tests.fixtures import libvirt_embed
from nova.tests.fixtures import placement as placement_fixture
from nova.tests.unit.cmd import cli_fixture

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
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

    def test_xml_request_this_host_cannot_honour(self):
        result = self.run_cli('xml', '--property', 'hw_firmware_type=uefi',
                              '--property', 'hw_firmware_stateless=true',
                              '--property', 'os_secure_boot=required')

        self.assertEqual(1, result.code, result)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        self.assertIn("a descriptor of mode 'stateless' with the features "
                      "'secure-boot' and 'enrolled-keys'", result.stderr)


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
