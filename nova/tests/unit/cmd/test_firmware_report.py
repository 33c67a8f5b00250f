"""Tests of how ``nova-firmware`` renders its reports."""

import io
import json

import fixtures

from nova.cmd import firmware_report as fr
from nova import test


class RenderFieldsTestCase(test.NoDBTestCase):

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


class OutputTestCase(test.NoDBTestCase):

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
