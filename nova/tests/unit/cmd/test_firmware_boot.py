"""Tests of ``nova-firmware boot``: its verdict, and the flow on fakelibvirt.

The flow runs through ``main()`` with the real embedded placement and the
libvirt driver on fakelibvirt, which defines and "starts" domains but runs
no QEMU: these tests cover what happens around a boot (a refused request,
a start that fails, a firmware that never shows up, cleanup). That a real
guest boots stateless is the functional tests' job.
"""

import json
import os

import fixtures
import os_traits

from nova.cmd import firmware_boot as fb
import nova.conf
from nova import objects
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit.cmd import cli_fixture
from nova.virt.libvirt import boot_evidence

CONF = nova.conf.CONF
STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
VARS = '/nvram/instance-00000001_VARS.fd'


def drive(unit, filename, read_only):
    return boot_evidence.PflashDrive(unit=unit, filename=filename,
                                     read_only=read_only)


def evidence(**kwargs):
    """The evidence of a proven stateless boot, changed by ``kwargs``."""
    values = dict(marker='BdsDxe:', loader=CODE, loader_stateless=True,
                  nvram_element=None, command_line='qemu-system-x86_64 ...',
                  pflash=[drive(0, CODE, True)], nvram_files=[])
    values.update(kwargs)
    return fb.Evidence(**values)


class JudgeTestCase(test.NoDBTestCase):

    def test_stateless_proven(self):
        self.assertEqual([], fb.judge(fb.FIRMWARE_STATELESS, evidence()))

    def test_stateless_with_a_variable_store(self):
        problems = fb.judge(fb.FIRMWARE_STATELESS, evidence(
            loader_stateless=None, nvram_element=VARS,
            pflash=[drive(0, CODE, True), drive(1, VARS, False)],
            nvram_files=[VARS]))
        self.assertEqual([
            "the live <loader> does not say stateless='yes'",
            'the live <os> has an <nvram> (%s)' % VARS,
            'QEMU was given pflash0 %s (read-only), pflash1 %s (writable); '
            'a stateless guest gets one read-only pflash' % (CODE, VARS),
            'NVRAM exists for the domain: %s' % VARS], problems)

    def test_stateless_with_a_writable_code_image(self):
        problems = fb.judge(fb.FIRMWARE_STATELESS,
                            evidence(pflash=[drive(0, CODE, False)]))
        self.assertEqual(
            ['QEMU was given pflash0 %s (writable); a stateless guest gets '
             'one read-only pflash' % CODE], problems)

    def test_firmware_never_showed(self):
        self.assertEqual(
            ['the firmware never showed on the serial console'],
            fb.judge(fb.FIRMWARE_STATELESS, evidence(marker=None)))

    def test_command_line_not_found_leaves_the_drives_unknown(self):
        self.assertEqual(
            ["QEMU's command line is not in its log, so the flash drives "
             "it was given are unknown"],
            fb.judge(fb.FIRMWARE_STATELESS,
                     evidence(command_line='', pflash=[])))

    def test_pflash_must_be_the_loader_of_the_live_xml(self):
        self.assertEqual(
            ['pflash0 is /other.fd, not the loader of the live XML (%s)' %
             CODE],
            fb.judge(fb.FIRMWARE_STATELESS,
                     evidence(pflash=[drive(0, '/other.fd', True)])))

    def test_stateful_proven(self):
        self.assertEqual([], fb.judge(fb.FIRMWARE_STATEFUL, evidence(
            loader_stateless=None, nvram_element=VARS,
            pflash=[drive(0, CODE, True), drive(1, VARS, False)],
            nvram_files=[VARS])))

    def test_stateful_without_a_variable_store(self):
        self.assertEqual([
            'QEMU was given pflash0 %s (read-only); a stateful guest gets a '
            'read-only code pflash and a writable variable store' % CODE,
            'no NVRAM file exists for the domain'],
            fb.judge(fb.FIRMWARE_STATEFUL, evidence()))

    def test_bios(self):
        self.assertEqual([], fb.judge(fb.FIRMWARE_BIOS, evidence(
            marker=None, loader=None, loader_stateless=None, pflash=[])))
        self.assertEqual(
            ['QEMU was given pflash0 %s (read-only) for a BIOS guest' %
             CODE], fb.judge(fb.FIRMWARE_BIOS, evidence(marker=None)))

    def test_summary(self):
        self.assertEqual('1 read-only pflash, no NVRAM',
                         fb.evidence_summary(evidence()))
        self.assertEqual(
            '1 read-only pflash, 1 writable pflash, 1 NVRAM file(s)',
            fb.evidence_summary(evidence(
                pflash=[drive(0, CODE, True), drive(1, VARS, False)],
                nvram_files=[VARS])))
        self.assertEqual('no pflash, no NVRAM',
                         fb.evidence_summary(evidence(pflash=[])))
        self.assertEqual('flash drives unknown, no NVRAM',
                         fb.evidence_summary(evidence(command_line='',
                                                      pflash=[])))


class ExpectedFirmwareTestCase(test.NoDBTestCase):

    def expected(self, **properties):
        return fb.expected_firmware(
            objects.ImageMeta.from_dict({'properties': properties}))

    def test_expected(self):
        self.assertEqual(fb.FIRMWARE_STATELESS, self.expected(
            hw_firmware_type='uefi', hw_firmware_stateless='yes'))
        self.assertEqual(fb.FIRMWARE_STATEFUL, self.expected(
            hw_firmware_type='uefi', hw_firmware_stateless='false'))
        self.assertEqual(fb.FIRMWARE_STATEFUL,
                         self.expected(hw_firmware_type='uefi'))
        # BIOS keeps no state: the property is ignored, as the API does.
        self.assertEqual(fb.FIRMWARE_BIOS,
                         self.expected(hw_firmware_stateless='true'))


class FreeInstanceIdTestCase(test.NoDBTestCase):

    def test_free_instance_id(self):
        self.assertEqual(1, fb.free_instance_id([]))
        self.assertEqual(11, fb.free_instance_id(
            ['instance-00000001', 'instance-0000000a', 'instance-zz',
             'someone-elses-guest']))


class _BootTestCase(test.NoDBTestCase):
    """``nova-firmware boot`` with fakelibvirt as the hypervisor."""

    LV_VER = (8, 6, 0)

    def setUp(self):
        super().setUp()
        self.fake = self.useFixture(
            fakelibvirt.FakeLibvirtFixture(lv_ver=self.LV_VER))
        self.cli = self.useFixture(cli_fixture.NovaFirmwareFixture())
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.instances = os.path.join(self.state_dir, 'instances')

    def boot(self, *argv):
        # The default URI: the embedded driver rooted in the state
        # directory, where the evidence is looked for (and, with no QEMU
        # running, not found).
        return self.cli.run('--state-dir', self.state_dir, 'boot',
                            '--timeout', '0.2', *argv)

    def stage_lines(self, result):
        return [line for line in result.stdout.splitlines()
                if line.startswith('[')]

    def assertNothingLeft(self):
        self.assertEqual({}, self.fake.hypervisor.domains)
        self.assertEqual([], os.listdir(self.instances))
        self.assertEqual([], os.listdir(os.path.join(self.state_dir,
                                                     'runs')))


class BootTestCase(_BootTestCase):

    def test_firmware_never_shows(self):
        result = self.boot()

        self.assertEqual(1, result.code, result)
        self.assertEqual('', result.stderr)
        lines = self.stage_lines(result)
        self.assertEqual(
            ['placement', 'compute', 'api', 'scheduler', 'spawn', 'firmware',
             'evidence', 'cleanup'],
            [line.split()[1].rstrip(':') for line in lines])
        self.assertTrue(lines[0].startswith(
            '[1/8] placement: embedded (sqlite://) ... ok'), lines[0])
        self.assertIn('required=%s' % STATELESS, lines[3])
        self.assertIn('ok', lines[4])
        self.assertIn("failed", lines[5])
        self.assertIn("(nothing in 0.2s)", lines[5])
        self.assertTrue(lines[7].endswith(
            '(no domain, NVRAM, instance files or allocation left)'),
            lines[7])
        self.assertIn(
            'FAIL: the boot does not show stateless UEFI firmware:\n'
            '  - the firmware never showed on the serial console\n',
            result.stdout)
        self.assertNothingLeft()

    def test_json(self):
        result = self.boot('--json')

        self.assertEqual(1, result.code, result)
        report = json.loads(result.stdout)
        self.assertEqual(fb.STAGES,
                         tuple(stage['name'] for stage in report['stages']))
        self.assertEqual(
            ['ok', 'ok', 'ok', 'ok', 'ok', 'failed', 'failed', 'ok'],
            [stage['status'] for stage in report['stages']])
        self.assertIn(STATELESS, report['stages'][1]['details']['traits'])
        evidence = report['stages'][6]['details']
        self.assertIn('stateless="yes"', evidence['os'])
        self.assertEqual([], evidence['nvram'])
        self.assertEqual('stateless UEFI', report['expected'])
        self.assertIs(False, report['proved'])
        self.assertEqual(1, report['exit_code'])
        self.assertEqual({'hw_firmware_type': 'uefi',
                          'hw_firmware_stateless': 'true',
                          'hw_machine_type': 'q35'},
                         report['request']['image_properties'])

    def test_start_fails_and_nothing_is_left(self):
        self.fake.hypervisor.fail_next('createWithFlags')

        result = self.boot()

        self.assertEqual(2, result.code, result)
        self.assertEqual(
            ['nova-firmware boot: error: libvirtError: injected failure of '
             'createWithFlags'], result.stderr_lines)
        lines = self.stage_lines(result)
        self.assertIn('[5/8] spawn:', lines[4])
        self.assertIn('failed', lines[4])
        self.assertTrue(lines[5].startswith('[8/8] cleanup:'), lines[5])
        self.assertIn('... ok', lines[5])
        self.assertNotIn('PASS', result.stdout)
        self.assertNothingLeft()

    def test_no_host_has_room(self):
        # The fake host has 4 CPUs: no single guest gets 5.
        result = self.boot('--flavor', 'vcpus=5')

        self.assertEqual(1, result.code, result)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        self.assertIn('nova-firmware boot: error: No valid host was found.',
                      result.stderr)
        lines = self.stage_lines(result)
        self.assertEqual(['[1/8]', '[2/8]', '[3/8]', '[4/8]', '[8/8]'],
                         [line.split()[0] for line in lines])
        self.assertIn('failed', lines[3])
        self.assertNothingLeft()

    def test_a_property_cannot_forge_the_verdict(self):
        result = self.boot(
            '--property', 'hw_firmware_stateless=false',
            '--property', 'os_distro=x\nPASS: the guest booted stateless '
                          'UEFI firmware, as requested (9.9s in all).')

        self.assertEqual(1, result.code, result)
        self.assertIn('os_distro=x\\nPASS: the guest booted stateless UEFI',
                      result.stdout)
        self.assertEqual(
            [], [line for line in result.stdout.splitlines()
                 if line.startswith('PASS')])
        self.assertIn('FAIL: the boot does not show stateful UEFI firmware',
                      result.stdout)

    def test_warnings_are_said_and_in_the_json_document(self):
        result = self.boot('--json', '--property', 'hw_firmware_type=bios',
                           '--extra-spec', 'os:secure_bot=required')

        report = json.loads(result.stdout)
        self.assertEqual(
            ["flavor extra spec 'os:secure_bot' is not one Nova reads here; "
             "it has no effect",
             "image property 'hw_firmware_stateless' is ignored: the image "
             "boots BIOS, which keeps no NVRAM; set 'hw_firmware_type=uefi' "
             "to boot stateless UEFI firmware"], report['warnings'])
        self.assertEqual(['nova-firmware boot: warning: %s' % warning
                          for warning in report['warnings']],
                         result.stderr_lines)
        self.assertNothingLeft()

    def test_keep_leaves_the_guest(self):
        result = self.boot('--keep')

        self.assertEqual(1, result.code, result)
        self.assertEqual(['instance-00000001'],
                         list(self.fake.hypervisor.domains))
        self.assertIn('[8/8] cleanup: --keep ... skipped '
                      '(instance-00000001 left running)', result.stdout)
        self.assertIn('      remove with:        nova-firmware --state-dir '
                      '%s cleanup\n' % self.state_dir, result.stdout)

        # The next boot removes it, and says so.
        result = self.boot()
        self.assertRegex(
            result.stdout,
            r'        - removed running domain instance-00000001 \([-0-9a-f]+'
            r'\) kept by an earlier run \(pid \d+, --keep\)\n')
        self.assertIn('[5/8] spawn: instance-00000001', result.stdout)
        self.assertNothingLeft()


class BootOldLibvirtTestCase(_BootTestCase):

    LV_VER = (8, 5, 0)

    def test_scheduler_finds_no_host_with_the_trait(self):
        result = self.boot()

        self.assertEqual(1, result.code, result)
        self.assertIn('stateless firmware: no', result.stdout)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        self.assertIn('No valid host was found', result.stderr)
        self.assertIn('required=%s' % STATELESS, result.stderr)
        self.assertNothingLeft()

    def test_stateful_boots_there(self):
        result = self.boot('--property', 'hw_firmware_stateless=false')

        # fakelibvirt runs no firmware; the request got through the
        # scheduler and the guest was defined and started.
        self.assertEqual(1, result.code, result)
        self.assertIn('expects:            stateful UEFI', result.stdout)
        self.assertIn('[5/8] spawn: instance-00000001', result.stdout)
        self.assertNothingLeft()
