"""Tests for the pure parts of tools/cloud (``tox -e cloud-RELEASE``).

The cloud itself needs root, MariaDB, RabbitMQ and the libvirt daemon
and is proven by running it; what is tested here is what it writes and
how it reads what it sees: the configuration files, the evidence table,
the domain XML and listening-socket checks, and the ending of processes
by PID.
"""

import configparser
import dataclasses
import io
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

from nova import test
from tools.cloud import config
from tools.cloud import evidence
from tools.cloud import install
from tools.cloud import processes
from tools.cloud import releases
from tools.cloud import scenario
from tools.cloud import system
from tools.series import release as release_mod
from tools.series import run as series_run

STATELESS_XML = """<domain type='qemu'><name>cloud-00000001</name>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
<loader readonly='yes' type='pflash' stateless='yes'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
<boot dev='hd'/></os></domain>"""  # noqa: E501

STATEFUL_XML = """<domain type='qemu'><name>cloud-00000002</name>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/cloud-00000002_VARS.fd</nvram>
</os></domain>"""  # noqa: E501

SS_OUTPUT = """\
LISTEN 0 128 127.0.0.1:5000 0.0.0.0:* users:(("gunicorn",pid=101,fd=5),("gunicorn",pid=102,fd=5))
LISTEN 0 80 127.0.0.1:3306 0.0.0.0:* users:(("mariadbd",pid=200,fd=20))
LISTEN 0 128 0.0.0.0:2024 0.0.0.0:* users:(("other",pid=300,fd=3))
LISTEN 0 4096 [::1]:4369 [::]:* users:(("epmd",pid=400,fd=3))
LISTEN 0 128 *:9696 *:* users:(("gunicorn",pid=500,fd=7))
"""  # noqa: E501


def settings(run_dir: str = '/srv/run') -> config.Settings:
    return config.Settings(
        run_dir=run_dir, venv='/srv/venv', placement_venv='/srv/pvenv',
        db_password='dbpw', rabbit_password='rpw', service_password='spw',
        admin_password='apw', instances_path='/var/lib/x/instances')


def parse(text: str) -> configparser.ConfigParser:
    # Sections as written: oslo.config's [DEFAULT] is no fallback here.
    cfg = configparser.ConfigParser(interpolation=None,
                                    default_section='no default')
    cfg.read_string(text)
    return cfg


class TestConfig(test.NoDBTestCase):

    def test_render_ini(self):
        text = config.render_ini({'DEFAULT': {
            'flag': True, 'off': False, 'items': ['a', 'b'], 'gone': None,
            'n': 3, 'empty': ''}})
        cfg = parse(text)
        self.assertEqual({'flag': 'true', 'off': 'false', 'items': 'a,b',
                          'n': '3', 'empty': ''}, dict(cfg['DEFAULT']))

    def test_nova_compute_has_no_database(self):
        s = settings()
        compute = parse(config.render_ini(config.nova_compute_conf(s)))
        control = parse(config.render_ini(config.nova_conf(s)))
        self.assertFalse(compute.has_section('database'))
        self.assertFalse(compute.has_section('api_database'))
        self.assertIn('/cloud_nova?', control['database']['connection'])
        self.assertIn('/cloud_nova_api?',
                      control['api_database']['connection'])
        # privsep's helper reads the file of the process that starts it.
        self.assertEqual(
            '/srv/venv/bin/privsep-helper --config-file '
            '/srv/run/etc/nova/nova-compute.conf',
            compute['nova_sys_admin']['helper_command'])

    def test_nova_compute_settings(self):
        compute = parse(config.render_ini(config.nova_compute_conf(
            settings())))
        self.assertEqual('cloud-%08x',
                         compute['DEFAULT']['instance_name_template'])
        self.assertEqual({'virt_type': 'qemu',
                          'connection_uri': 'qemu:///system',
                          'cpu_mode': 'none',
                          'live_migration_uri': config.live_migration_uri(
                              settings())}, dict(compute['libvirt']))
        self.assertEqual('false', compute['vnc']['enabled'])
        self.assertEqual('true',
                         compute['DEFAULT']['allow_resize_to_same_host'])
        self.assertEqual('/var/lib/x/instances',
                         compute['DEFAULT']['instances_path'])

    def test_unpatched_compute(self):
        s = dataclasses.replace(settings(), unpatched_venv='/srv/venv-u')
        compute = config.unpatched_compute(s, 'vm')
        conf = parse(config.render_ini(config.nova_compute_conf(s, compute)))
        self.assertEqual('nova-compute-unpatched', compute.name)
        self.assertFalse(conf.has_section('database'))
        self.assertEqual('vm-unpatched', conf['DEFAULT']['host'])
        self.assertEqual('cloud2-%08x',
                         conf['DEFAULT']['instance_name_template'])
        self.assertEqual('/var/lib/x/instances-unpatched',
                         conf['DEFAULT']['instances_path'])
        self.assertEqual('/srv/run/state/nova-compute-unpatched',
                         conf['DEFAULT']['state_path'])
        self.assertEqual('/srv/run/state/nova-compute-unpatched/lock',
                         conf['oslo_concurrency']['lock_path'])
        # Its own libvirt daemons answer qemu:///system on its host.
        self.assertEqual('qemu:///system', conf['libvirt']['connection_uri'])
        self.assertEqual('/var/lib/x/host-unpatched/var/lib/libvirt/qemu/'
                         'nvram', compute.host_path(config.NVRAM_DIR))
        # Its own privsep helper, reading its own file.
        self.assertEqual(
            '/srv/venv-u/bin/privsep-helper --config-file '
            '/srv/run/etc/nova/nova-compute-unpatched.conf',
            conf['nova_sys_admin']['helper_command'])
        # The patched compute's file is unchanged by it.
        patched = parse(config.render_ini(config.nova_compute_conf(s)))
        self.assertFalse(patched.has_option('DEFAULT', 'host'))
        self.assertEqual('qemu:///system',
                         patched['libvirt']['connection_uri'])
        self.assertEqual('cloud-%08x',
                         patched['DEFAULT']['instance_name_template'])

    def test_peer_compute(self):
        s = settings()
        compute = config.peer_compute(s, 'vm')
        conf = parse(config.render_ini(config.nova_compute_conf(s, compute)))
        self.assertEqual('vm-peer', conf['DEFAULT']['host'])
        # What a guest keeps as it moves between the two: its domain
        # name, its instance path; the peer runs the patched Nova.
        self.assertEqual('cloud-%08x',
                         conf['DEFAULT']['instance_name_template'])
        self.assertEqual('/var/lib/x/instances',
                         conf['DEFAULT']['instances_path'])
        self.assertEqual('/srv/venv/bin/privsep-helper --config-file '
                         '/srv/run/etc/nova/nova-compute-peer.conf',
                         conf['nova_sys_admin']['helper_command'])
        # Its own disks at that path: storage it shares with nobody.
        self.assertEqual('/var/lib/x/host-peer/var/lib/x/instances',
                         compute.instances_on_host)
        self.assertEqual(config.HOST_DIRS + ('/var/lib/x/instances',),
                         compute.own_dirs)
        # Guests migrate in on its own network, the peer's end of it.
        self.assertEqual(config.PEER_LINK[3], compute.address)
        self.assertEqual(compute.address,
                         conf['libvirt']['live_migration_inbound_addr'])
        self.assertEqual('vm-unpatched', config.unpatched_compute(
            s, 'vm').host)
        self.assertEqual(config.HOST_DIRS,
                         config.unpatched_compute(s, 'vm').own_dirs)

    def test_live_migration_uri_reaches_the_peer(self):
        s = settings()
        # As Nova makes it: the destination's address put in.
        uri = urllib.parse.urlsplit(config.live_migration_uri(s) %
                                    '127.0.0.1')
        self.assertEqual(('qemu+unix', '', '/system'),
                         (uri.scheme, uri.netloc, uri.path))
        self.assertEqual(
            {'socket': [config.peer_compute(s, 'vm').host_path(
                '/run/libvirt/libvirt-sock')],
             'destination': ['127.0.0.1']},
            urllib.parse.parse_qs(uri.query))

    def test_everything_on_loopback(self):
        s = settings()
        confs = [config.keystone_conf(s), config.glance_conf(s),
                 config.placement_conf(s), config.neutron_conf(s),
                 config.nova_conf(s), config.nova_compute_conf(s)]
        urls = []
        for conf in confs:
            for options in conf.values():
                for value in options.values():
                    if isinstance(value, str) and '://' in value:
                        urls.append(value)
        self.assertGreater(len(urls), 20)
        for url in urls:
            # libvirt's, over UNIX sockets.
            if url.startswith(('qemu:', 'qemu+unix:')):
                continue
            self.assertEqual('127.0.0.1', urllib.parse.urlsplit(
                url).hostname, url)

    def test_database_names_are_prefixed(self):
        s = settings()
        self.assertEqual(
            'mysql+pymysql://cloud:dbpw@127.0.0.1/cloud_glance?charset=utf8',
            s.db_url('glance'))
        for name in config.DATABASES:
            self.assertTrue(s.db_name(name).startswith('cloud_'))

    def test_gunicorn_conf(self):
        text = config.gunicorn_conf('placement.wsgi:init_application()',
                                    8778, workers=2, name='cloud-placement')
        values: dict = {}
        exec(compile(text, 'gunicorn.conf.py', 'exec'), values)
        self.assertEqual('placement.wsgi:init_application()',
                         values['wsgi_app'])
        self.assertEqual(['127.0.0.1:8778'], values['bind'])
        self.assertEqual(2, values['workers'])

    def test_openrc_in_a_shell(self):
        s = settings(self._tempdir())
        s = config.Settings(**dict(s.__dict__, admin_password="it's"))
        path = os.path.join(s.run_dir, 'openrc')
        with open(path, 'w') as f:
            f.write(config.openrc(s))
        out = subprocess.run(
            ['bash', '-c', 'source "$1"; env', 'bash', path],
            capture_output=True, text=True, check=True, env={}).stdout
        env = dict(line.split('=', 1) for line in out.splitlines()
                   if '=' in line)
        self.assertEqual("it's", env['OS_PASSWORD'])
        self.assertEqual('http://127.0.0.1:5000/v3', env['OS_AUTH_URL'])
        self.assertEqual(config.admin_env(s),
                         {k: env[k] for k in config.admin_env(s)})
        self.assertTrue(env['PATH'].startswith('/srv/venv/bin:'))

    def _tempdir(self) -> str:
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name


class TestReleases(test.NoDBTestCase):

    def test_each_cloud_has_a_series(self):
        for name, cloud in releases.CLOUDS.items():
            rel = release_mod.load(series_run.ROOT, name)
            self.assertEqual('nova', rel.package)
            self.assertEqual(set(releases.API_SERVICES), set(cloud.apps))
            for req in cloud.services:
                self.assertRegex(req, r'^[a-z-]+==\d+\.\d+\.\d+$')

    def test_2024_1_placement_gets_the_trait(self):
        cloud = releases.get('cloud-2024.1')
        self.assertEqual('3.1.0', cloud.placement_os_traits)
        self.assertEqual('openstack-placement==11.0.0',
                         cloud.placement_requirement)
        self.assertIsNone(releases.get('2026.2').placement_os_traits)

    def test_what_each_unpatched_release_does(self):
        old = releases.get('2024.1')
        new = [releases.get('2026.1'), releases.get('2026.2')]
        self.assertFalse(old.unpatched_reports_trait)
        self.assertTrue(old.unpatched_boots_uefi)
        for cloud in new:
            self.assertTrue(cloud.unpatched_reports_trait)
            self.assertFalse(cloud.unpatched_boots_uefi)
        for cloud in [old] + new:
            self.assertIn(release_mod.load(series_run.ROOT,
                                           cloud.release).version,
                          cloud.unpatched_note)

    def test_unknown_release(self):
        ex = self.assertRaises(KeyError, releases.get, '2023.1')
        self.assertIn('2024.1, 2026.1, 2026.2', str(ex))

    def test_placement_pins_drop_os_traits(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        pins = os.path.join(tmp.name, 'pins')
        with open(pins, 'w') as f:
            f.write('oslo.db===15.0.0\nos-traits===3.0.0\nos-resource-'
                    'classes===1.1.0\n')
        out = install.placement_pins(pins, pins + '.placement')
        with open(out) as f:
            self.assertEqual('oslo.db===15.0.0\nos-resource-classes'
                             '===1.1.0\n', f.read())


class TestSystem(test.NoDBTestCase):

    def test_rabbitmq_env_keeps_the_rest(self):
        text = system.rabbitmq_env(
            '# comment\nNODENAME=rabbit\nNODE_IP_ADDRESS=0.0.0.0\n')
        lines = text.splitlines()
        self.assertIn('# comment', lines)
        self.assertIn('NODENAME=rabbit', lines)
        self.assertNotIn('NODE_IP_ADDRESS=0.0.0.0', lines)
        self.assertIn('NODE_IP_ADDRESS=127.0.0.1', lines)
        self.assertIn('ERL_EPMD_ADDRESS=127.0.0.1', lines)
        self.assertEqual(text, system.rabbitmq_env(text))

    def test_qemu_conf_receives_migrations_on_one_address(self):
        text = config.qemu_conf(
            '# comment\n#migration_address = "0.0.0.0"\n'
            'migration_address = "0.0.0.0"\nuser = "libvirt-qemu"\n',
            '198.18.0.2')
        lines = text.splitlines()
        self.assertEqual(['# comment', '#migration_address = "0.0.0.0"',
                          'user = "libvirt-qemu"',
                          'migration_address = "198.18.0.2"'], lines)
        self.assertEqual(text, config.qemu_conf(text, '198.18.0.2'))

    def test_only_the_peers_libvirt_has_a_network_of_its_own(self):
        s = settings()
        self.assertEqual(
            ['nsenter', '--target', '7', '--mount', '--uts', '--net', '--',
             'libvirtd'], system.in_host(7, ['libvirtd'], network=True))
        self.assertEqual('', config.unpatched_compute(s, 'vm').address)
        for conf in (config.nova_compute_conf(s),
                     config.nova_compute_conf(
                         s, config.unpatched_compute(s, 'vm'))):
            self.assertNotIn('live_migration_inbound_addr', conf['libvirt'])

    def test_each_second_host_its_group(self):
        s = settings()
        groups = {system.host_group(config.unpatched_compute(s, 'vm')),
                  system.host_group(config.peer_compute(s, 'vm'))}
        self.assertEqual({'host-unpatched', 'host-peer'}, groups)
        self.assertTrue(all(g.startswith(system.HOST_GROUP) for g in groups))

    def test_second_host_copies_no_guest(self):
        names = ['networks', 'autostart', 'upgrade-00000001.xml',
                 'cloud-00000002.xml']
        self.assertEqual(['autostart', 'upgrade-00000001.xml',
                          'cloud-00000002.xml'],
                         system._no_guests('/etc/libvirt/qemu/', names))
        self.assertEqual([], system._no_guests('/etc/libvirt/qemu/networks',
                                               ['default.xml']))
        self.assertEqual([], system._no_guests('/etc/libvirt',
                                               ['qemu.conf', 'x.xml']))


class TestEvidence(test.NoDBTestCase):

    def test_check_records_pass_and_fail(self):
        out = io.StringIO()
        ev = evidence.Evidence(out=out)
        ev.check('one', 'works', lambda: 'it did')

        def fails():
            raise evidence.StepError('it did not')
        ev.check('two', 'works too', fails)

        def breaks():
            raise ValueError('bad value')
        ev.check('three', 'no error', breaks)
        self.assertEqual([True, False, False], [s.ok for s in ev.steps])
        self.assertEqual('ValueError: bad value', ev.steps[2].seen)
        self.assertIn('PASS: one', out.getvalue())
        self.assertIn('FAIL: two', out.getvalue())
        self.assertEqual(['two', 'three'], [s.name for s in ev.failed])

    def test_table(self):
        steps = [evidence.Step('boot stateless', 'ACTIVE', 'ACTIVE in 8 s',
                               True),
                 evidence.Step('delete', 'nothing left', 'x ' * 80, False)]
        table = evidence.render_table(steps, width=80)
        lines = table.splitlines()
        self.assertTrue(all(len(line) <= 80 for line in lines), table)
        self.assertEqual('1 passed, 1 failed', lines[-1])
        self.assertTrue(lines[2].startswith('boot stateless'))
        self.assertTrue(lines[2].endswith('PASS'))
        self.assertIn('FAIL', table)

    def test_stateless_domain(self):
        seen = evidence.check_stateless(STATELESS_XML)
        self.assertIn('stateless=yes', seen)
        self.assertIn('nvram absent', seen)
        self.assertIn('machine pc-q35-7.2 (x86_64)', seen)

    def test_domain_architecture(self):
        aarch64 = STATELESS_XML.replace(
            "arch='x86_64' machine='pc-q35-7.2'",
            "arch='aarch64' machine='virt-7.2'").replace(
            'OVMF/OVMF_CODE_4M.fd', 'AAVMF/AAVMF_CODE.fd')
        fw = evidence.firmware_of(aarch64)
        self.assertEqual(('aarch64', 'virt-7.2'), (fw.arch, fw.machine))
        self.assertIn('machine virt-7.2 (aarch64)',
                      evidence.check_stateless(aarch64))

    def test_stateful_domain_is_not_stateless(self):
        ex = self.assertRaises(evidence.StepError, evidence.check_stateless,
                               STATEFUL_XML)
        self.assertIn("no stateless='yes'", str(ex))
        self.assertIn('an <nvram> element', str(ex))
        self.assertIn('cloud-00000002_VARS.fd',
                      evidence.check_stateful(STATEFUL_XML))

    def test_stateless_is_not_stateful(self):
        ex = self.assertRaises(evidence.StepError, evidence.check_stateful,
                               STATELESS_XML)
        self.assertIn("stateless='yes'", str(ex))

    def test_writable_or_autoselected_loader(self):
        writable = STATELESS_XML.replace("readonly='yes' ", '')
        ex = self.assertRaises(evidence.StepError, evidence.check_stateless,
                               writable)
        self.assertIn("not readonly='yes'", str(ex))
        auto = ("<domain><os firmware='efi'><type>hvm</type>"
                "<loader stateless='yes'/></os></domain>")
        ex = self.assertRaises(evidence.StepError, evidence.check_stateless,
                               auto)
        self.assertIn("not type='pflash'", str(ex))
        self.assertIn("os firmware='efi'", str(ex))

    def test_listeners(self):
        listeners = evidence.parse_ss(SS_OUTPUT)
        self.assertEqual(5, len(listeners))
        self.assertEqual(('gunicorn', 101), listeners[0].processes[0])
        self.assertEqual('[::1]', listeners[3].address)
        ours = evidence.listeners_of(listeners, {102, 200, 400})
        self.assertEqual([5000, 3306, 4369], [lis.port for lis in ours])
        seen = evidence.check_loopback(ours)
        self.assertIn('127.0.0.1:5000 gunicorn', seen)
        ex = self.assertRaises(
            evidence.StepError, evidence.check_loopback,
            evidence.listeners_of(listeners, {101, 500}))
        self.assertEqual('not on loopback: *:9696', str(ex))
        self.assertRaises(evidence.StepError, evidence.check_loopback, [])


class TestScenarioHelpers(test.NoDBTestCase):

    def test_cloud_domains(self):
        self.assertEqual(['cloud-0000000a', 'cloud-00000010'],
                         scenario.cloud_domains(
                             'instance-00000001\ncloud-00000010\n'
                             'cloud-0000000a\ncloud-x\nnova-firmware-1\n'))

    def test_name_pattern_of_the_unpatched_compute(self):
        # The second compute's template shares the patched one's prefix
        # up to its "2": neither pattern may take the other's domains.
        listing = 'cloud-0000000a\ncloud2-0000000b\ncloud2-0000000\n'
        pattern = scenario.name_pattern(config.UNPATCHED_NAME_TEMPLATE)
        self.assertEqual(['cloud2-0000000b'],
                         scenario.cloud_domains(listing, pattern))
        self.assertEqual(['cloud-0000000a'], scenario.cloud_domains(listing))

    def test_nvram_files(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        for name, size in (('cloud-00000001_VARS.fd', 540672),
                           ('cloud-000000011_VARS.fd', 1)):
            with open(os.path.join(tmp.name, name), 'wb') as f:
                f.truncate(size)
        self.assertEqual(
            {os.path.join(tmp.name, 'cloud-00000001_VARS.fd'): 540672},
            scenario.nvram_files('cloud-00000001', tmp.name))
        self.assertEqual({}, scenario.nvram_files('cloud-00000002',
                                                  tmp.name))
        self.assertEqual({}, scenario.nvram_files(
            'cloud-00000001', os.path.join(tmp.name, 'missing')))

    def test_bad_request_as_each_client_says_it(self):
        for text in (
                "Invalid value 'ture' for image property "
                "hw_firmware_stateless. (HTTP 400) (Request-ID: req-1)",
                'BadRequestException: 400: Client Error for url: '
                'http://127.0.0.1:8774/v2.1/servers, Invalid value'):
            self.assertTrue(scenario.BAD_REQUEST.search(text), text)
        for text in ('Unexpected API Error. (HTTP 500)',
                     'BadRequestException: 4000 things', 'HTTP 400'):
            self.assertIsNone(scenario.BAD_REQUEST.search(text), text)

    def test_domain_for_another_template(self):
        self.assertEqual('cloud2-0000001a', scenario.domain_for(
            'cloud-0000001a', 'cloud2-%08x'))
        self.assertRaises(evidence.StepError, scenario.domain_for,
                          'cloud-x', 'cloud2-%08x')

    def test_second_host_sees_its_own_daemon(self):
        s = dataclasses.replace(settings(), unpatched_venv='/srv/venv-u')
        compute = config.unpatched_compute(s, 'vm')
        hv = scenario.SecondHost(None, compute, 'uuid', 4242)
        self.assertEqual('vm-unpatched', hv.host)
        self.assertEqual('cloud2-00000002', hv.domain_name('cloud-00000002'))
        self.assertEqual('/var/lib/x/host-unpatched/var/lib/libvirt/qemu/'
                         'nvram', hv.nvram_dir)
        self.assertEqual(
            ['nsenter', '--target', '4242', '--mount', '--uts', '--',
             'virsh', 'list'], system.in_host(4242, ['virsh', 'list']))

    def test_host_script_in_a_shell(self):
        # The script as sh runs it, with commands that only print.
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        for name in ('hostname', 'mount', 'sleep'):
            path = os.path.join(tmp.name, name)
            with open(path, 'w') as f:
                f.write('#!/bin/sh\necho %s "$@"\n' % name)
            os.chmod(path, 0o755)
        out = subprocess.run(
            ['/bin/sh', '-c', config.host_script(('/run/libvirt', '/etc/x')),
             'vm-unpatched', '/srv/root'], text=True, check=True,
            capture_output=True,
            env=dict(os.environ, PATH=tmp.name)).stdout
        self.assertEqual(
            ['hostname vm-unpatched',
             'mount --bind /srv/root/run/libvirt /run/libvirt',
             'mount --bind /srv/root/etc/x /etc/x',
             'sleep infinity'], out.splitlines())

    def test_typed_digits_through_the_shells_cursor_moves(self):
        # As console log show gave it after the move: the shell's echo,
        # each digit after a cursor move whose ESC the API dropped.
        text = ('[08;08H3[08;09H[08;09H4[08;10H[08;10H7[08;11H[08;11H7'
                '[08;12H\x1b[08;12H3[08;13H')
        self.assertEqual('34773', scenario.CURSOR_MOVES.sub('', text))
        self.assertEqual('Shell> [not a move]', scenario.CURSOR_MOVES.sub(
            '', 'Shell> [not a move]'))

    def test_why_a_live_migration_failed(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        log = os.path.join(tmp.name, 'nova-compute.log')
        with open(log, 'w') as f:
            f.write(
                '2026-12-07 08:10:23.493 14409 ERROR nova.virt.libvirt.driver '
                '[None req-f] [instance: 5d613ed1] Live Migration failure: '
                "Path '/usr/share/OVMF/OVMF_CODE_4M.fd' is not accessible: "
                'No such file or directory: libvirt.libvirtError: Path '
                "'/usr/share/OVMF/OVMF_CODE_4M.fd' is not accessible: No "
                'such file or directory\n'
                '2026-12-07 08:10:24.000 14409 INFO nova.compute.manager '
                '[instance: 5d613ed1] Migrating instance to vm-peer\n')
        s = scenario.Scenario(None, None, 'vm', 'uuid', tmp.name,
                              compute_log=log)
        self.assertEqual(
            "Path '/usr/share/OVMF/OVMF_CODE_4M.fd' is not accessible: No "
            'such file or directory', s.migration_failure('5d613ed1'))
        self.assertEqual('no "Live Migration failure:" line',
                         s.migration_failure('0e6fa1b2'))

    def test_usage_total(self):
        self.assertEqual(0, scenario.usage_total(
            [{'resource_class': 'VCPU', 'usage': 0}]))
        self.assertEqual(257, scenario.usage_total(
            [{'resource_class': 'VCPU', 'usage': 1},
             {'resource_class': 'MEMORY_MB', 'usage': 256}]))
        self.assertEqual(3, scenario.usage_total({'VCPU': 1, 'DISK_GB': 2}))


class TestProcesses(test.NoDBTestCase):

    def test_with_argument(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        top = os.path.join(tmp.name, 'top', '')
        # "read" is built into sh: the shell waits on its stdin without
        # forking. A command it forks (sleep) would be, until its exec, a
        # second sh with these same arguments, found by a look at /proc
        # that falls between the fork and the exec.
        wait = ['/bin/sh', '-c', 'read line', 'sh']
        procs = [subprocess.Popen(wait + [arg], stdin=subprocess.PIPE)
                 for arg in ('file=%sdisk,if=none' % top, top + 'disk',
                             tmp.name)]
        for proc in procs:
            self.addCleanup(proc.wait)
            self.addCleanup(proc.kill)
            self.addCleanup(proc.stdin.close)
        self.assertEqual(sorted(p.pid for p in procs[:2]),
                         sorted(processes.with_argument(top, 'sh')))
        self.assertEqual([], processes.with_argument(top, 'qemu'))

    def test_start_and_stop_by_pid(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        state = processes.State(os.path.join(tmp.name, 'state.json'))
        said = []
        procs = processes.Processes(state, said.append)
        proc = procs.start('sleeper', [sys.executable, '-c',
                                       'import time; time.sleep(60)'],
                           log=os.path.join(tmp.name, 'sleeper.log'))
        self.addCleanup(proc.kill)
        # What a later --teardown reads.
        again = processes.State(state.path)
        self.assertEqual([proc.pid], [p['pid'] for p in again.running()])
        self.assertIn(proc.pid, procs.pids())
        processes.Processes(again, said.append).stop_all('openstack')
        proc.wait(10)
        self.assertEqual(['ended sleeper (pid %d)' % proc.pid], said)
        self.assertEqual([], processes.State(state.path).processes)

    def test_an_exited_process_has_ended(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        state = processes.State(os.path.join(tmp.name, 'state.json'))
        said = []
        procs = processes.Processes(state, said.append)
        proc = procs.start('quick', [sys.executable, '-c', 'pass'],
                           log=os.path.join(tmp.name, 'quick.log'))
        # Exited but not reaped yet: a zombie is not running.
        while processes._stat(proc.pid)[0] != 'Z':
            time.sleep(0.05)
        self.assertFalse(processes.alive(proc.pid, None))
        self.assertEqual([], state.running())
        procs.stop_all('openstack')
        self.assertEqual(['quick (pid %d) had already exited' % proc.pid],
                         said)

    def test_a_recycled_pid_is_not_ours(self):
        pid = os.getpid()
        started = processes.start_time(pid)
        self.assertTrue(processes.alive(pid, started))
        self.assertFalse(processes.alive(pid, started + 1))
