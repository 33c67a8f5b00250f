"""Tests of how ``nova-firmware`` renders its reports."""

import io
import json

import fixtures

from nova.cmd import firmware_report as fr
from nova import test


class PrintableTestCase(test.NoDBTestCase):

    def test_control_characters_are_escaped(self):
        self.assertEqual('x\\nPASS: y', fr.printable('x\nPASS: y'))
        self.assertEqual('\\x1b[2J\\r\\t', fr.printable('\x1b[2J\r\t'))
        # Bidirectional overrides and line separators hide or move text.
        self.assertEqual('a\\u202eb\\u2028c',
                         fr.printable('a\u202eb\u2028c'))

    def test_printable_text_is_left_alone(self):
        text = 'pc-q35-7.2 caf\u00e9 \u00fc\u4e2d <os> "quoted" \\'
        self.assertEqual(text, fr.printable(text))


class RenderFieldsTestCase(test.NoDBTestCase):

    def test_no_value_can_start_a_line_of_its_own(self):
        forged = 'x\nPASS: the guest booted stateless UEFI firmware'
        lines = fr.render_fields({
            'image_properties': {'os_distro': forged, forged: 'x'},
            'traits': [forged], 'pflash': [{'file': forged}],
            'os': forged})
        self.assertEqual(
            ['image properties:',
             '  os_distro=x\\nPASS: the guest booted stateless UEFI '
             'firmware',
             '  x\\nPASS: the guest booted stateless UEFI firmware=x',
             'traits:',
             '  - x\\nPASS: the guest booted stateless UEFI firmware',
             'pflash:',
             '  - file: x\\nPASS: the guest booted stateless UEFI firmware',
             # Text of several lines (XML) stays indented below its label.
             'os:',
             '  x',
             '  PASS: the guest booted stateless UEFI firmware'],
            lines)

    def test_inline_values_are_objects_shown_on_one_line(self):
        self.assertEqual(
            ['flavor:             vcpus=1,ram=256',
             'machine type:       q35 (pc-q35-7.2)'],
            fr.render_fields({
                'flavor': fr.Inline({'vcpus': 1, 'ram': 256}),
                'machine_type': fr.Inline({'configured': 'q35'},
                                          text='q35 (pc-q35-7.2)')}))
        self.assertEqual('{\n  "vcpus": 1\n}',
                         fr.to_json(fr.Inline({'vcpus': 1}, text='one')))

    def test_labels_are_aligned_and_spelled_from_keys(self):
        self.assertEqual(
            ['libvirt:            9.0.0',
             'host arch:          x86_64'],
            fr.render_fields({'libvirt': '9.0.0', 'host_arch': 'x86_64'}))

    def test_values(self):
        self.assertEqual(
            ['supported:          yes',
             'refused:            no',
             'xml form:           -',
             'count:              3',
             'traits:             none',
             'extra specs:        none'],
            fr.render_fields({'supported': True, 'refused': False,
                              'xml_form': None, 'count': 3, 'traits': [],
                              'extra_specs': {}}))

    def test_lists_and_records(self):
        self.assertEqual(
            ['traits:',
             '  - COMPUTE_A',
             '  - COMPUTE_B',
             'pflash:',
             '  - unit: 0, file: /code.fd, read only: yes'],
            fr.render_fields({
                'traits': ['COMPUTE_A', 'COMPUTE_B'],
                'pflash': [{'unit': 0, 'file': '/code.fd',
                            'read_only': True}]}))

    def test_dicts_are_data_shown_as_given_on_the_command_line(self):
        self.assertEqual(
            ['image properties:',
             '  hw_firmware_stateless=true',
             '  hw_firmware_type=uefi'],
            fr.render_fields({'image_properties': {
                'hw_firmware_stateless': 'true',
                'hw_firmware_type': 'uefi'}}))

    def test_multi_line_text_is_indented_below_its_label(self):
        self.assertEqual(
            ['      os:',
             '        <os>',
             '          <type>hvm</type>',
             '        </os>'],
            fr.render_fields({'os': '<os>\n  <type>hvm</type>\n</os>'},
                             indent=' ' * 6))

    def test_a_long_label_keeps_a_space_before_its_value(self):
        line = fr.render_fields({'a_very_long_label_indeed': 'x'})[0]
        self.assertEqual('a very long label indeed: x', line)


class ProgressTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.stream = io.StringIO()
        self.progress = fr.Progress(self.stream, ('placement', 'compute',
                                                  'cleanup'))

    def test_head_is_printed_before_the_stage_ends(self):
        stage = fr.Stage('placement', 'embedded (sqlite://)')
        self.progress.start(stage)
        self.assertEqual('[1/3] placement: embedded (sqlite://) ... ',
                         self.stream.getvalue())
        stage.status, stage.seconds, stage.result = 'ok', 0.123, 'API 1.39'
        stage.details = {'compute_node': 'not registered yet'}
        self.progress.finish(stage)
        self.assertEqual(
            '[1/3] placement: embedded (sqlite://) ... ok 0.12s (API 1.39)\n'
            '      compute node:       not registered yet\n',
            self.stream.getvalue())

    def test_stages_are_numbered_by_their_place_in_the_flow(self):
        stage = fr.Stage('cleanup', 'delete', status='ok', seconds=1.0)
        self.progress.start(stage)
        self.progress.finish(stage)
        self.assertEqual('[3/3] cleanup: delete ... ok 1.00s\n',
                         self.stream.getvalue())

    def test_disabled_prints_nothing(self):
        progress = fr.Progress(self.stream, ('placement',), enabled=False)
        stage = fr.Stage('placement', 'x', status='ok')
        progress.start(stage)
        progress.finish(stage)
        self.assertEqual('', self.stream.getvalue())


class StageTimerTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.stream = io.StringIO()
        self.progress = fr.Progress(self.stream, ('spawn',))

    def timer(self, stage):
        return fr.StageTimer(stage, self.progress,
                             lambda exc: 'described: %s' % exc)

    def test_ok(self):
        stage = fr.Stage('spawn', 'instance-00000001')
        with self.timer(stage):
            stage.result = 'running'
        self.assertEqual('ok', stage.status)
        self.assertGreaterEqual(stage.seconds, 0)
        self.assertTrue(self.stream.getvalue().endswith('(running)\n'))

    def test_exception_marks_the_stage_failed_and_propagates(self):
        stage = fr.Stage('spawn', 'instance-00000001')

        def fail():
            with self.timer(stage):
                raise ValueError('boom')

        self.assertRaises(ValueError, fail)
        self.assertEqual('failed', stage.status)
        self.assertEqual('described: boom', stage.result)
        self.assertIn('failed', self.stream.getvalue())

    def test_signal_right_after_the_head_still_ends_the_line(self):
        # The handler of a signal that arrives once the head is written
        # runs inside __enter__, before the block starts.
        stage = fr.Stage('spawn', 'wait')
        write = self.progress._write
        signals = [KeyboardInterrupt('a signal')]

        def write_then_signal(text):
            write(text)
            if signals:
                raise signals.pop()

        self.useFixture(fixtures.MonkeyPatch(
            'nova.cmd.firmware_report.Progress._write',
            lambda progress, text: write_then_signal(text)))

        def enter():
            with self.timer(stage):
                self.fail('the block must not run')

        self.assertRaises(KeyboardInterrupt, enter)
        self.assertEqual('failed', stage.status)
        self.assertRegex(self.stream.getvalue(),
                         r'^\[1/1\] spawn: wait \.\.\. failed \d+\.\d\ds '
                         r'\(described: a signal\)\n$')

    def test_a_status_the_stage_set_is_kept(self):
        stage = fr.Stage('spawn', 'wait')
        with self.timer(stage):
            stage.status = fr.STATUS_FAILED
            stage.result = 'nothing in 1s'
        self.assertEqual('failed', stage.status)
        self.assertEqual('nothing in 1s', stage.result)


class BootReportTestCase(test.NoDBTestCase):

    def report(self, **kwargs):
        stage = fr.Stage('placement', 'embedded', status='ok',
                         seconds=0.1234, result='API 1.0-1.39')
        kwargs.setdefault('expected', 'stateless UEFI')
        return fr.BootReport(request={'flavor': 'vcpus=1'}, stages=[stage],
                             seconds=7.25, **kwargs)

    def test_json_document(self):
        report = self.report(proved=True, exit_code=0)
        document = json.loads(fr.to_json(report.to_dict()))
        self.assertEqual('boot', document['command'])
        self.assertEqual([{'name': 'placement', 'action': 'embedded',
                           'status': 'ok', 'seconds': 0.1234,
                           'result': 'API 1.0-1.39', 'details': {}}],
                         document['stages'])
        self.assertIs(True, document['proved'])
        self.assertEqual(0, document['exit_code'])
        self.assertEqual(7.25, document['seconds'])
        self.assertIsNone(document['error'])

    def test_summary_pass(self):
        self.assertEqual(
            ['PASS: the guest booted stateless UEFI firmware, as requested '
             '(7.2s in all).'],
            fr.boot_summary(self.report(proved=True)))

    def test_summary_fail_lists_the_problems(self):
        self.assertEqual(
            ['FAIL: the boot does not show stateless UEFI firmware:',
             '  - NVRAM exists for the domain: /nvram/x_VARS.fd'],
            fr.boot_summary(self.report(
                problems=['NVRAM exists for the domain: /nvram/x_VARS.fd'])))

    def test_no_summary_after_an_error(self):
        self.assertEqual([], fr.boot_summary(self.report(error='boom')))


class _ClosedPipe:
    """A stream whose reader has gone, as ``| head`` leaves it."""

    def __init__(self):
        self.writes = 0

    def write(self, text):
        self.writes += 1
        raise BrokenPipeError(32, 'Broken pipe')

    def flush(self):
        raise BrokenPipeError(32, 'Broken pipe')


class OutputClosedTestCase(test.NoDBTestCase):

    def test_a_closed_stdout_is_given_up_on_not_raised(self):
        pipe = self.useFixture(fixtures.MonkeyPatch(
            'sys.stdout', _ClosedPipe())).new_value
        stderr = self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', io.StringIO())).new_value
        out = fr.Output('nova-firmware', 'boot', as_json=False)
        progress = fr.Progress(out.stdout, ('spawn',))

        out.lines(['a', 'b'])
        progress.start(fr.Stage('spawn', 'instance-00000001'))
        out.json({'a': 1})
        out.error('still said')

        self.assertEqual(1, pipe.writes)
        self.assertTrue(out.stdout.closed_by_reader)
        self.assertEqual('nova-firmware boot: error: still said\n',
                         stderr.getvalue())


class OutputTestCase(test.NoDBTestCase):

    def test_failure_as_json_and_on_stderr(self):
        stdout = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                      io.StringIO())).new_value
        stderr = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                      io.StringIO())).new_value
        out = fr.Output('nova-firmware', 'check', as_json=True)
        out.warning('odd\nvalue')
        out.failure('bad\x1b[2J', 2)
        self.assertEqual({'command': 'check', 'error': 'bad\x1b[2J',
                          'exit_code': 2, 'warnings': ['odd\nvalue']},
                         json.loads(stdout.getvalue()))
        self.assertEqual('nova-firmware check: warning: odd\\nvalue\n'
                         'nova-firmware check: error: bad\\x1b[2J\n',
                         stderr.getvalue())

    def test_report_on_stdout_error_and_warning_on_stderr(self):
        stdout = self.useFixture(fixtures.MonkeyPatch('sys.stdout',
                                                      io.StringIO())).new_value
        stderr = self.useFixture(fixtures.MonkeyPatch('sys.stderr',
                                                      io.StringIO())).new_value
        out = fr.Output('nova-firmware', 'xml', as_json=False)
        out.lines(['a', 'b'])
        out.json({'b': 1, 'a': [True]})
        out.warning('odd')
        out.error('bad')
        self.assertEqual('a\nb\n{\n  "a": [\n    true\n  ],\n  "b": 1\n}\n',
                         stdout.getvalue())
        self.assertEqual('nova-firmware xml: warning: odd\n'
                         'nova-firmware xml: error: bad\n',
                         stderr.getvalue())
