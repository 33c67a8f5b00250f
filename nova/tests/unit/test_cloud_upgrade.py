"""Tests for the pure parts of the cloud upgrade (``tox -e upgrade-2024.1``).

The upgrade itself needs root and a whole cloud and is proven by running
it; here is how it reads what it sees: a guest's variable store and its
boot counter, the firmware a server keeps or loses, the service log
lines of a version mismatch, ``nova-status upgrade check``'s verdict and
the table of servers by steps.
"""

import io
import os
import struct
import threading

import fixtures

from nova import test
from tools.cloud import evidence
from tools.cloud import run as cloud_run
from tools.cloud import scenario
from tools.cloud import upgrade
from tools.cloud import upgrade_checks as checks

CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
VARS = '/var/lib/libvirt/qemu/nvram/upgrade-00000002_VARS.fd'

STATELESS_XML = """<domain type='qemu'><name>upgrade-00000001</name>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
<loader readonly='yes' type='pflash' stateless='yes'>%s</loader>
<boot dev='hd'/></os></domain>""" % CODE

STATEFUL_XML = """<domain type='qemu'><name>upgrade-00000002</name>
<os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
<loader readonly='yes' type='pflash'>%s</loader>
<nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>%s</nvram>
</os></domain>""" % (CODE, VARS)

BIOS_XML = """<domain type='qemu'><name>upgrade-00000003</name>
<os><type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>
<boot dev='hd'/></os></domain>"""

STATUS = """\
+-------------------------------------------+
| Upgrade Check Results                     |
+-------------------------------------------+
| Check: Cells v2                           |
| Result: Success                           |
| Details: None                             |
+-------------------------------------------+
| Check: Placement API                      |
| Result: Success                           |
| Details: None                             |
+-------------------------------------------+
| Check: Older than N-1 computes            |
| Result: Warning                           |
| Details: Current Nova version does not    |
|   support computes older than ...         |
+-------------------------------------------+
"""


def variable(name: str, data: bytes, state: int = 0x3f) -> bytes:
    """An authenticated UEFI variable as OVMF writes it in its store."""
    encoded = (name + '\0').encode('utf-16-le')
    header = struct.pack('<HBBIQ16sIII16s', 0x55aa, state, 0, 7, 0,
                         b'\0' * 16, 0, len(encoded), len(data),
                         b'\0' * 16)
    assert len(header) == 60
    return header + encoded + data


def store(boots: int | None, extra: bytes = b'') -> bytes:
    """A variable store whose valid boot counter is ``boots``, with the
    deleted copies of the counts before it, as the firmware leaves them.
    """
    out = b'\xff' * 64
    if boots is not None:
        for old in range(1, boots):
            out += variable('MTC', struct.pack('<I', old), state=0x3c)
        out += variable('MTC', struct.pack('<I', boots))
    return out + variable('Lang', b'eng') + extra


def stateful(data: bytes, path: str = VARS) -> checks.Snapshot:
    xml = STATEFUL_XML.replace(VARS, path)
    return checks.snapshot('upgrade-00000002', xml,
                           {path: checks.store_of(data)})


class TestBootCounter(test.NoDBTestCase):

    def test_the_valid_copy_counts(self):
        self.assertEqual(3, checks.boot_counter(store(3)))
        self.assertEqual(1, checks.boot_counter(store(1)))

    def test_a_store_never_booted_has_none(self):
        self.assertIsNone(checks.boot_counter(store(None)))
        self.assertIsNone(checks.boot_counter(b''))

    def test_the_name_alone_is_no_counter(self):
        # "MTC" in UTF-16 inside another variable's data.
        data = b'\0' * 80 + 'MTC\0'.encode('utf-16-le') + b'\1\0\0\0'
        self.assertIsNone(checks.boot_counter(data))

    def test_debian_template_has_no_counter(self):
        template = '/usr/share/OVMF/OVMF_VARS_4M.fd'
        if not os.path.isfile(template):
            self.skipTest('no %s on this host' % template)
        with open(template, 'rb') as f:
            self.assertIsNone(checks.boot_counter(f.read()))


class TestCheckKept(test.NoDBTestCase):

    def test_stateless(self):
        now = checks.snapshot('upgrade-00000001', STATELESS_XML, {})
        verdict, seen = checks.check_kept('stateless', now, now)
        self.assertEqual(checks.OK, verdict)
        self.assertIn('no <nvram>', seen)

    def test_stateless_with_a_file_fails(self):
        now = checks.snapshot('upgrade-00000001', STATELESS_XML,
                              {VARS: checks.store_of(store(1))})
        self.assertRaisesRegex(evidence.StepError, 'NVRAM files appeared',
                               checks.check_kept, 'stateless', None, now)

    def test_stateless_turned_stateful_fails(self):
        self.assertRaisesRegex(evidence.StepError, 'not stateless',
                               checks.check_kept, 'stateless', None,
                               stateful(store(1)))

    def test_stateful_unchanged(self):
        before = stateful(store(2))
        verdict, seen = checks.check_kept('stateful', before,
                                          stateful(store(2)), booted=False)
        self.assertEqual(checks.OK, verdict)
        self.assertIn('unchanged', seen)

    def test_stateful_the_same_bytes_after_a_boot(self):
        # Made anew from the template and booted once, as it had been:
        # the bytes are the same, the counter did not grow.
        before, now = stateful(store(1)), stateful(store(1))
        self.assertRaisesRegex(evidence.StepError, 'boot counter 1 -> 1',
                               checks.check_kept, 'stateful', before, now)
        self.assertEqual(checks.RESET, checks.check_kept(
            'stateful', before, now, keeps_store=False)[0])

    def test_stateful_counted_on(self):
        verdict, seen = checks.check_kept('stateful', stateful(store(2)),
                                          stateful(store(3)))
        self.assertEqual(checks.OK, verdict)
        self.assertIn('boot counter 2 -> 3', seen)

    def test_stateful_recreated(self):
        before, now = stateful(store(4)), stateful(store(1))
        self.assertRaisesRegex(evidence.StepError,
                               'recreated from the template: boot '
                               'counter 4 -> 1', checks.check_kept,
                               'stateful', before, now, keeps_store=True)
        verdict, seen = checks.check_kept('stateful', before, now,
                                          keeps_store=False)
        self.assertEqual(checks.RESET, verdict)
        self.assertIn('4 -> 1', seen)

    def test_stateful_changed_without_a_boot(self):
        self.assertRaisesRegex(evidence.StepError, 'without a boot',
                               checks.check_kept, 'stateful',
                               stateful(store(2)), stateful(store(3)),
                               booted=False)
        # After a boot, the same count and other bytes: not counted on.
        self.assertRaises(evidence.StepError, checks.check_kept,
                          'stateful', stateful(store(2)),
                          stateful(store(2, extra=b'x')))

    def test_stateful_file_moved(self):
        self.assertRaisesRegex(evidence.StepError, 'moved',
                               checks.check_kept, 'stateful',
                               stateful(store(2)),
                               stateful(store(3), VARS + '.new'))

    def test_stateful_without_its_file(self):
        now = checks.snapshot('upgrade-00000002', STATEFUL_XML, {})
        self.assertRaisesRegex(evidence.StepError, 'has no file',
                               checks.check_kept, 'stateful', None, now)

    def test_bios(self):
        now = checks.snapshot('upgrade-00000003', BIOS_XML, {})
        self.assertEqual(checks.OK, checks.check_kept('bios', now, now)[0])
        self.assertRaisesRegex(evidence.StepError, 'UEFI',
                               checks.check_kept, 'bios', None,
                               stateful(store(1)))

    def test_a_kept_store_counts_the_boot_once_the_firmware_ran(self):
        # ACTIVE again, the firmware not run yet: the old count.
        before = stateful(store(2))
        self.assertFalse(checks.boot_counted(before, stateful(store(2)),
                                             keeps_store=True))
        self.assertTrue(checks.boot_counted(before, stateful(store(3)),
                                            keeps_store=True))

    def test_a_store_made_anew_counts_from_one(self):
        # The template, before the firmware ran: no count yet.
        before = stateful(store(1))
        self.assertFalse(checks.boot_counted(before, stateful(store(None)),
                                             keeps_store=False))
        # Booted once, as it had been: the same count, a boot all the same.
        self.assertTrue(checks.boot_counted(before, stateful(store(1)),
                                            keeps_store=False))
        # A store the firmware never counted in before counts from one.
        self.assertTrue(checks.boot_counted(stateful(store(None)),
                                            stateful(store(1)),
                                            keeps_store=True))

    def test_no_store_counts_no_boot(self):
        now = checks.snapshot('upgrade-00000002', STATEFUL_XML, {})
        self.assertFalse(checks.boot_counted(stateful(store(1)), now,
                                             keeps_store=True))
        bios = checks.snapshot('upgrade-00000003', BIOS_XML, {})
        self.assertFalse(checks.boot_counted(bios, bios, keeps_store=True))

    def test_which_computes_keep_the_store(self):
        self.assertFalse(checks.keeps_store('29.4.0'))
        self.assertFalse(checks.keeps_store('30.3.0'))
        self.assertTrue(checks.keeps_store('31.3.1'))

    def test_os_element(self):
        text = checks.os_element(STATELESS_XML)
        self.assertTrue(text.startswith('<os>'))
        self.assertIn("stateless=\"yes\"", text)
        self.assertNotIn('\n', text)


class TestLogsAndStatus(test.NoDBTestCase):

    def test_version_problems(self):
        lines = [
            'INFO nova.service Starting compute node (version 30.3.0)',
            # A call to a stopped conductor, timed out: its traceback.
            'ERROR nova.compute.manager     result = cls.indirection_api.'
            'object_class_action_versions(',
            'ERROR nova.compute.manager oslo_messaging.exceptions.'
            'MessagingTimeout: Timed out waiting for a reply',
            'ERROR oslo_messaging.rpc.server IncompatibleObjectVersion: '
            'Version 1.39 of ImageMetaProps is not supported',
            'ERROR nova.objects Version 1.39 of ImageMetaProps is not '
            'supported',
            'WARNING nova.compute.rpcapi Endpoint does not support RPC '
            'version 6.4',
        ]
        self.assertEqual(lines[3:], checks.version_problems(lines))

    def test_error_lines(self):
        lines = ['INFO ok', 'ERROR a', 'Traceback (most recent call last):',
                 'WARNING w', 'CRITICAL c']
        self.assertEqual(['ERROR a', 'Traceback (most recent call last):',
                          'CRITICAL c'], checks.error_lines(lines))
        self.assertEqual(['CRITICAL c'], checks.error_lines(lines, 1))

    def test_status_verdict(self):
        ok, seen = checks.status_verdict(1, STATUS)
        self.assertFalse(ok)
        self.assertEqual('exit 1; 3 checks: Cells v2 Success; Placement '
                         'API Success; Older than N-1 computes Warning',
                         seen)
        self.assertTrue(checks.status_verdict(0, STATUS)[0])


class TestMatrixAndPlan(test.NoDBTestCase):

    def test_matrix(self):
        m = checks.Matrix()
        m.mark('fw-stateless', 'before', checks.OK)
        m.mark('fw-stateful', 'before', checks.OK)
        m.mark('fw-stateful', 'reboot', checks.RESET)
        m.mark('fw-stateless', 'reboot', checks.FAILED)
        m.mark('fw-stateless', 'reboot', checks.OK)
        lines = m.render().splitlines()
        self.assertEqual(['server', '1', '2'], lines[0].split())
        self.assertEqual(['fw-stateless', 'ok', 'FAIL'], lines[2].split())
        self.assertEqual(['fw-stateful', 'ok', 'reset'], lines[3].split())
        self.assertIn('steps: 1: before; 2: reboot', m.render())
        self.assertEqual([('fw-stateless', 'reboot')],
                         m.having(checks.FAILED))

    def test_targets(self):
        for name, path in checks.PATHS.items():
            target = checks.TARGETS[path.target]
            with open(target.pins) as f:
                pins = f.read()
            # The pins hold the trait the compute reports.
            self.assertIn('os-traits===', pins)
            self.assertIn('nova==%s' % target.nova, target.requirements)
        self.assertTrue(checks.PATHS['rolling'].rolling)
        self.assertFalse(checks.PATHS['skip-level'].rolling)

    def test_domains_apart_from_the_cloud(self):
        self.assertTrue(upgrade.DOMAIN_NAME.match('upgrade-0000000a'))
        self.assertFalse(upgrade.DOMAIN_NAME.match('cloud-0000000a'))
        self.assertEqual([], scenario.cloud_domains('upgrade-0000000a'))
        self.assertEqual(upgrade.INSTANCE_NAME_TEMPLATE % 10,
                         'upgrade-0000000a')
        self.assertNotEqual(upgrade.DB_PREFIX, 'cloud_')

    def test_other_cloud_runs(self):
        self.assertTrue(checks.is_cloud_runner(
            ['/x/bin/python3', '-m', 'tools.cloud', 'cloud-2024.1']))
        self.assertTrue(checks.is_cloud_runner(
            ['python3', '-m', 'tools.cloud.upgrade', 'rolling']))
        self.assertFalse(checks.is_cloud_runner(
            ['python3', '-m', 'tools.series', 'series-2024.1']))
        self.assertFalse(checks.is_cloud_runner(['vim', 'tools.cloud']))
        self.assertFalse(checks.is_cloud_runner(['python3', '-m']))

    def test_unknown_path(self):
        err = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                   io.StringIO())).new_value
        self.assertRaises(SystemExit, upgrade.main, ['sideways'])
        self.assertIn('unknown path sideways (known: rolling, skip-level)',
                      err.getvalue())


class TestMovesTogether(test.NoDBTestCase):
    """The moves of a step run side by side; each server is checked."""

    def upgrade(self):
        up = upgrade.Upgrade.__new__(upgrade.Upgrade)
        self.marks = []
        self.checked = []
        up.logs = logs = type('Logs', (), {})()
        logs.mark = lambda: self.marks.append(len(self.checked))

        def step(column, server, action, expect, mark=True):
            try:
                seen = action()
            except Exception as ex:
                seen = 'failed: %s' % ex
            self.checked.append((column, server, seen, mark))
            return not str(seen).startswith('failed')
        up.step = step
        return up

    def test_actions_run_at_once_and_are_checked_in_order(self):
        up = self.upgrade()
        # Each action waits for the other: run one after the other, the
        # first would never get past the barrier.
        both = threading.Barrier(2, timeout=10)

        def boot(name):
            both.wait()
            return name + ' ACTIVE'
        up.together([
            upgrade.Move('c: reboot --hard', 'fw-stateful',
                         lambda: boot('fw-stateful'), 'x'),
            upgrade.Move('c: start', 'fw-stateless-off',
                         lambda: boot('fw-stateless-off'), 'y')])
        self.assertEqual([
            ('c: reboot --hard', 'fw-stateful', 'fw-stateful ACTIVE', False),
            ('c: start', 'fw-stateless-off', 'fw-stateless-off ACTIVE',
             False)], self.checked)
        # The logs were marked once, before the first action began.
        self.assertEqual([0], self.marks)

    def test_a_failed_action_fails_its_server_only(self):
        up = self.upgrade()

        def fail():
            raise evidence.StepError('went to ERROR: No valid host')
        up.together([
            upgrade.Move('c: reboot --hard', 'fw-bios', fail, 'x'),
            upgrade.Move('c: reboot --hard', 'fw-stateless', lambda: 'ok',
                         'y')])
        self.assertEqual([
            ('c: reboot --hard', 'fw-bios',
             'failed: went to ERROR: No valid host', False),
            ('c: reboot --hard', 'fw-stateless', 'ok', False)],
            self.checked)

    def test_one_build_serves_the_cloud_and_the_upgrade(self):
        args = upgrade.build_parser().parse_args(['rolling'])
        self.assertEqual(cloud_run.DEFAULT_WORK, args.build)
        self.assertEqual(cloud_run.UPGRADE_WORK, args.work)
