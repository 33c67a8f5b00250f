"""Tests for the runner that proves the patch series (tools/series).

What a reviewer relies on when reading the runner's verdict: the CI
selection picks the release tests that show a patch's side effects, the
full mode calls a change of any upstream test's result a regression and
nothing else, and another release's test files run in the patched tree
under names that collide with nothing and are gone afterwards. No network:
sdists are built here, and the stestr runs are of a tree made here.
"""

import contextlib
import glob
import io
import os
import re
import sys
import tarfile
import textwrap

import fixtures
import subunit
import testtools

from nova import test
from tools.series import release as release_mod
from tools.series import results
from tools.series import run
from tools.series import selection
from tools.series import subunit_results
from tools.series import upstream

#: Files the 2024.1 series changes, as its patches name them.
SERIES_2024_1 = [
    'nova/notifications/objects/image.py',
    'nova/objects/image_meta.py',
    'nova/compute/api.py',
    'nova/exception.py',
    'nova/scheduler/utils.py',
    'nova/virt/hardware.py',
    'nova/scheduler/client/report.py',
    'nova/virt/driver.py',
    'nova/virt/libvirt/driver.py',
    'nova/virt/libvirt/host.py',
    'nova/virt/libvirt/config.py',
    'nova/tests/fixtures/libvirt.py',
    'nova/tests/unit/virt/libvirt/test_driver.py',
    'nova/tests/functional/libvirt/test_stateless_firmware.py',
    'doc/source/admin/uefi.rst',
]

#: Test modules of a release tree, enough for the rules to find.
TREE_MODULES = [
    'nova/tests/unit/test_exception.py',
    'nova/tests/unit/test_utils.py',
    'nova/tests/unit/objects/test_objects.py',
    'nova/tests/unit/objects/test_image_meta.py',
    'nova/tests/unit/notifications/objects/test_notification.py',
    'nova/tests/unit/compute/test_api.py',
    'nova/tests/unit/compute/test_provider_tree.py',
    'nova/tests/unit/scheduler/test_utils.py',
    'nova/tests/unit/scheduler/client/test_report.py',
    'nova/tests/unit/virt/test_hardware.py',
    'nova/tests/unit/virt/libvirt/test_driver.py',
    'nova/tests/unit/virt/libvirt/test_host.py',
    'nova/tests/functional/test_servers_provider_tree.py',
    'nova/tests/functional/notification_sample_tests/test_instance.py',
    'nova/tests/functional/libvirt/test_stateless_firmware.py',
]

#: Sources of a release tree that the inputs rule reads.
TREE_SOURCES = {
    'nova/objects/image_meta.py': textwrap.dedent("""\
        class ImageMetaProps(base.NovaObject):
            fields = {
                'hw_firmware_type': fields.FirmwareTypeField(),
                'hw_machine_type': fields.StringField(),
                'os_type': fields.OSTypeField(),
            }
        """),
    'nova/tests/functional/libvirt/test_uefi.py': textwrap.dedent("""\
        class UEFIServersTest(base.ServersTestBase):
            def test_create_server(self):
                self._create_server(image_uuid=self.uefi_image)

            def setUp(self):
                self.image = {'properties': {'hw_firmware_type': 'uefi'}}
        """),
    'nova/tests/functional/test_servers.py': textwrap.dedent("""\
        class _RebuildBase(integrated_helpers._IntegratedTestBase):
            PROPS = {'hw_machine_type': 'q35'}


        class ServerRebuildTestCase(_RebuildBase):
            def test_rebuild(self):
                pass


        class ServersTest(integrated_helpers._IntegratedTestBase):
            def test_create(self):
                pass


        class NothingToRun(_RebuildBase):
            pass
        """),
}

#: Test ids that failed on a patched tree while passing on the pristine
#: one, although the runner's old selection passed.
MISSED_BEFORE = [
    'nova.tests.functional.notification_sample_tests.test_instance.'
    'TestInstanceNotificationSample.test_create_delete_server',
    'nova.tests.functional.test_servers_provider_tree.ProviderTreeTests.'
    'test_update_provider_tree_bogus_trait',
    'nova.tests.functional.libvirt.test_uefi.UEFIServersTest.'
    'test_create_server',
]

#: What the patches of a series like 2024.1's change in the package.
SERIES_LINES = {
    'nova/virt/libvirt/driver.py': [
        "        if image_meta.properties.get('hw_firmware_type') == 'uefi':",
        '            guest.os_loader_stateless = True',
    ],
}


def make_tree(root: str, modules: list[str],
              sources: dict[str, str] | None = None) -> None:
    """A tree of packages with ``modules`` empty and ``sources`` in it."""
    files = dict.fromkeys(modules, '')
    files.update(sources or {})
    for path, text in files.items():
        directory = os.path.dirname(path)
        parts = directory.split('/')
        for i in range(1, len(parts) + 1):
            package = os.path.join(root, *parts[:i])
            os.makedirs(package, exist_ok=True)
            init = os.path.join(package, '__init__.py')
            if not os.path.exists(init):
                open(init, 'w').close()
        with open(os.path.join(root, path), 'w') as f:
            f.write(text)


def selected_ids(picked: list[selection.Selected], ids: list[str]
                 ) -> list[str]:
    """Which of ``ids`` the selection's stestr filters run."""
    filters = [re.compile(selection.stestr_filter(p.selector))
               for p in picked]
    return [i for i in ids if any(f.search(i) for f in filters)]


class SelectionTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.tree = self.useFixture(fixtures.TempDir()).path
        make_tree(self.tree, TREE_MODULES, TREE_SOURCES)

    def select(self, files, **kw):
        return selection.select('nova', files, self.tree, **kw)

    def test_picks_the_tests_the_old_selection_missed(self):
        picked = self.select(SERIES_2024_1, lines=SERIES_LINES)
        self.assertEqual(MISSED_BEFORE, selected_ids(picked, MISSED_BEFORE))

    def test_old_selection_missed_them(self):
        # Only the module and own rules: what the runner used to run.
        picked = self.select(SERIES_2024_1, rules=())
        self.assertEqual([], selected_ids(picked, MISSED_BEFORE))

    def test_module_rule(self):
        picked = self.select(['nova/virt/libvirt/host.py',
                              'nova/exception.py', 'nova/virt/__init__.py'])
        self.assertEqual(['nova.tests.unit.test_exception',
                          'nova.tests.unit.virt.libvirt.test_host'],
                         [p.selector for p in picked])

    def test_changed_test_module_runs_itself(self):
        picked = self.select(['nova/tests/functional/test_servers.py'])
        self.assertEqual([('nova.tests.functional.test_servers',
                           'functional')],
                         [(p.selector, p.kind) for p in picked])

    def test_tests_missing_from_the_release_are_dropped(self):
        # A rule may name tests a release lacks (test_report_client).
        names = [p.selector for p in self.select(
            ['nova/scheduler/client/report.py'])]
        self.assertIn('nova.tests.functional.test_servers_provider_tree',
                      names)
        self.assertNotIn('nova.tests.functional.test_report_client', names)

    def test_inputs_rule_picks_the_classes_naming_a_property(self):
        picked = self.select(['nova/virt/libvirt/config.py'], lines={
            'nova/virt/libvirt/config.py': [
                "    mtype = props.get('hw_machine_type')",
                "    if props.get('hw_firmware_type') == 'uefi':"]})
        self.assertEqual(
            [('nova.tests.functional.libvirt.test_uefi.UEFIServersTest',
              ['inputs: hw_firmware_type']),
             # named by a base class of its module, which has no tests
             ('nova.tests.functional.test_servers.ServerRebuildTestCase',
              ['inputs: hw_machine_type'])],
            [(p.selector, p.reasons) for p in picked
             if p.kind == 'functional'])

    def test_inputs_rule_knows_the_release_properties_only(self):
        # os_loader is an attribute of the domain XML, not a property:
        # and lines of documents do not count.
        picked = self.select(['nova/virt/libvirt/config.py',
                              'doc/source/admin/uefi.rst'], lines={
            'nova/virt/libvirt/config.py': ['    self.os_loader = None'],
            'doc/source/admin/uefi.rst': ['Set ``hw_firmware_type``.']})
        self.assertEqual([], [p for p in picked if p.kind == 'functional'])

    def test_inputs_rule_reads_flavor_extra_specs(self):
        self.assertEqual(
            {'hw:mem_encryption', 'os:secure_boot', 'hw_machine_type'},
            selection.named_inputs(
                ["specs = {'hw:mem_encryption': 'True',",
                 "         'os:secure_boot': 'required'}",
                 "props.hw_machine_type, props.hw_unknown, host.os_loader"],
                {'hw_machine_type', 'os_type'}))

    def test_a_broader_selector_absorbs_a_narrower_one(self):
        picked = self.select(
            ['nova/tests/functional/libvirt/test_uefi.py'],
            lines=SERIES_LINES)
        self.assertEqual(['nova.tests.functional.libvirt.test_uefi'],
                         [p.selector for p in picked])
        self.assertEqual(['own: nova/tests/functional/libvirt/test_uefi.py',
                          'inputs: hw_firmware_type'], picked[0].reasons)

    def test_merge_of_two_patches(self):
        one = self.select(['nova/objects/image_meta.py'])
        two = self.select(['nova/tests/unit/objects/test_objects.py',
                           'nova/tests/unit/objects/test_image_meta.py'])
        merged = selection.merge([one, two])
        self.assertEqual(
            ['nova.tests.unit.notifications.objects.test_notification',
             'nova.tests.unit.objects.test_image_meta',
             'nova.tests.unit.objects.test_objects',
             'nova.tests.functional.notification_sample_tests'],
            [p.selector for p in merged])
        self.assertEqual(
            ['versioned objects: nova/objects/image_meta.py',
             'own: nova/tests/unit/objects/test_objects.py'],
            merged[2].reasons)

    def test_map_of_the_release(self):
        picked = self.select(
            ['doc/source/admin/uefi.rst'],
            test_map={'doc/source/admin/uefi.rst': (
                'nova.tests.unit.test_utils',)})
        self.assertEqual([['map: doc/source/admin/uefi.rst']],
                         [p.reasons for p in picked])

    def test_files_outside_the_package_pick_nothing(self):
        self.assertEqual([], self.select(
            ['releasenotes/notes/x.yaml', 'setup.cfg']))

    def test_filter_of_a_module_does_not_run_its_namesakes(self):
        pattern = re.compile(selection.stestr_filter(
            'nova.tests.functional.test_servers'))
        self.assertTrue(pattern.search(
            'nova.tests.functional.test_servers.ServersTest.test_a'))
        self.assertFalse(pattern.search(
            'nova.tests.functional.test_servers_provider_tree.T.test_a'))

    def test_describe_counts_files_by_rule(self):
        item = selection.Selected('x', 'unit', [
            'module: nova/a/b.py', 'map: nova/a/b.py', 'map: nova/a/c.py',
            'inputs: hw_a', 'inputs: os:b'])
        self.assertEqual('module, map (2 files), inputs (hw_a, os:b)',
                         selection.describe(item))

    def test_every_rule_picks_tests_nova_has(self):
        # The rules name test modules of upstream Nova; a typo would make
        # a rule silently pick nothing.
        sdists = [t for t in map(nova_tree, ('29.4.0', '34.0.0')) if t]
        if not sdists:
            self.skipTest('no unpacked Nova sdist')
        for rule in selection.RULES:
            for selector in rule.tests:
                self.assertTrue(
                    any(selection.exists(d, selector) for d in sdists),
                    '%s: %s' % (rule.name, selector))


class PatchTestCase(test.NoDBTestCase):

    def test_changed_lines_by_file(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            '0001-x.patch')
        with open(path, 'w') as f:
            f.write(textwrap.dedent("""\
                From %s Mon Sep 17 00:00:00 2001
                Subject: [PATCH 1/1] Do a thing

                - a list item of the message, not a change
                ---
                 nova/a.py | 2 +-
                diff --git a/nova/a.py b/nova/a.py
                --- a/nova/a.py
                +++ b/nova/a.py
                @@ -1,2 +1,2 @@ def f():
                 context
                -old = 'hw_a'
                +new = 'hw_b'
                diff --git a/nova/b.py b/nova/b.py
                new file mode 100644
                --- /dev/null
                +++ b/nova/b.py
                @@ -0,0 +1 @@
                +added
                SIGNATURE
                2.39.2
                """).replace('SIGNATURE', '-- ') % ('0' * 40))
        patch = release_mod.Patch('0001-x.patch', path)
        self.assertEqual(['nova/a.py', 'nova/b.py'], patch.files())
        self.assertEqual({'nova/a.py': ["old = 'hw_a'", "new = 'hw_b'"],
                          'nova/b.py': ['added']},
                         patch.changed_lines())


class UpstreamSpecTestCase(test.NoDBTestCase):

    SHA = 'ab' * 32

    def test_one_sdist_a_line(self):
        found = release_mod.parse_upstream(
            '\nnova==30.3.0 %s nova/tests/functional/a/test_x.py '
            'nova/tests/unit/test_y.py\nnova==31.3.1 %s nova/test_z.py\n'
            % (self.SHA, self.SHA.upper()))
        self.assertEqual(
            [('nova', '30.3.0', ('nova/tests/functional/a/test_x.py',
                                 'nova/tests/unit/test_y.py')),
             ('nova', '31.3.1', ('nova/test_z.py',))],
            [(u.package, u.version, u.paths) for u in found])
        self.assertEqual(self.SHA, found[1].sha256)

    def test_refuses_a_line_without_sha256(self):
        ex = self.assertRaises(release_mod.SeriesError,
                               release_mod.parse_upstream,
                               'nova==30.3.0 nova/tests/test_x.py')
        self.assertIn('[tests] upstream', str(ex))
        self.assertIn('PACKAGE==VERSION SHA256 PATH', str(ex))

    def test_refuses_a_path_out_of_the_tree(self):
        for path in ('/etc/passwd.py', 'nova/../../x.py', 'nova/x.txt'):
            self.assertRaises(release_mod.SeriesError,
                              release_mod.parse_upstream,
                              'nova==30.3.0 %s %s' % (self.SHA, path))

    def test_series_2024_1_names_nova_2024_2s_test(self):
        rel = release_mod.load(run.ROOT, '2024.1')
        self.assertEqual(
            [('nova', '30.3.0',
              ('nova/tests/functional/libvirt/test_stateless_firmware.py',
               ))],
            [(u.package, u.version, u.paths) for u in rel.upstream])

    def test_each_series_boot_check_boots_an_aarch64_guest_too(self):
        for name in ('2024.1', '2026.1', '2026.2'):
            rel = release_mod.load(run.ROOT, name)
            self.assertEqual(('--architecture', 'aarch64'),
                             rel.boot_arguments, name)
            with open(rel.boot_script, encoding='utf-8') as f:
                self.assertIn("'--architecture'", f.read(), name)


TRACEBACK = textwrap.dedent('''\
    Traceback (most recent call last):
      File "/x/nova/tests/functional/test_a.py", line 10, in test_b
        self.assertEqual('1.13', version)
      File "/v/testtools/testcase.py", line 394, in assertEqual
        self.assertThat(observed, matcher, message)
    testtools.matchers._impl.MismatchError: '1.13' != '1.14'
    second line of the message
    ''')


def chained(inner: str, outer: str) -> str:
    return textwrap.dedent('''\
        Traceback (most recent call last):
          File "a.py", line 1, in f
        %s

        During handling of the above exception, another exception occurred:

        Traceback (most recent call last):
          File "a.py", line 3, in g
            raise X()
        %s
        ''') % (inner, outer)


class SignatureTestCase(test.NoDBTestCase):

    def test_exception_type_and_first_line(self):
        self.assertEqual(
            "testtools.matchers._impl.MismatchError: '1.13' != '1.14'",
            results.signature(TRACEBACK))

    def test_last_exception_of_a_chain(self):
        self.assertEqual('ValueError: outer', results.signature(
            chained('KeyError: inner', 'ValueError: outer')))

    def test_addresses_and_uuids_do_not_count(self):
        one = results.signature(chained(
            'X', 'Error: <Obj at 0x7f01ab> '
                 '7c1e4e2a-2b8e-4d8a-9a1e-0f1e2d3c4b5a'))
        two = results.signature(chained(
            'X', 'Error: <Obj at 0x7e99ff> '
                 '00000000-1111-2222-3333-444455556666'))
        self.assertEqual(one, two)
        self.assertEqual('Error: <Obj at 0x?> <uuid>', one)

    def test_message_on_the_next_line(self):
        self.assertEqual('AssertionError: expected:', results.signature(
            chained('X', 'AssertionError:\n\nexpected:\n{"a": 1}')))

    def test_skip_reason(self):
        self.assertEqual('needs a thing', results.signature(
            '\nneeds a thing\nmore\n'))

    def test_nothing(self):
        self.assertEqual('', results.signature(''))


def entry(status: str, text: str = '') -> list:
    return [status, 0.1, text]


class CompareTestCase(test.NoDBTestCase):

    def compare(self, pristine: dict, patched: dict, upstream=()):
        return results.compare(pristine, patched, upstream)

    def test_same_results_are_no_regression(self):
        runs = {'a': entry('success'), 'b': entry('skip', 'why'),
                'c': entry('fail', TRACEBACK), 'd': entry('xfail')}
        found = self.compare(runs, dict(runs))
        self.assertEqual([], found['regressions'])
        self.assertEqual([{'id': 'c', 'reason': results.signature(
            TRACEBACK)}], found['known_failures'])
        self.assertFalse(results.failed(found))

    def test_passing_test_that_fails_is_a_regression(self):
        found = self.compare({'a': entry('success')},
                             {'a': entry('fail', TRACEBACK)})
        self.assertEqual(
            [{'id': 'a', 'pristine': 'passed', 'patched': 'failed',
              'reason': "testtools.matchers._impl.MismatchError: "
                        "'1.13' != '1.14'"}],
            found['regressions'])
        self.assertTrue(results.failed(found))

    def test_passing_test_that_is_skipped_or_gone_is_a_regression(self):
        found = self.compare(
            {'a': entry('success'), 'b': entry('success')},
            {'a': entry('skip', 'no libvirt')})
        self.assertEqual(
            [('a', 'skipped', 'skipped: no libvirt'),
             ('b', 'missing', 'did not run')],
            [(r['id'], r['patched'], r['reason'])
             for r in found['regressions']])

    def test_failing_test_must_fail_the_same_way(self):
        before = chained('X', 'ValueError: bad value 1')
        found = self.compare(
            {'a': entry('fail', before), 'b': entry('fail', before)},
            {'a': entry('fail', chained('Y', 'ValueError: bad value 1')),
             'b': entry('fail', chained('X', 'KeyError: other'))})
        self.assertEqual(['a'], [r['id'] for r in found['known_failures']])
        self.assertEqual(
            [{'id': 'b', 'pristine': 'failed', 'patched': 'failed',
              'reason': 'KeyError: other',
              'pristine_reason': 'ValueError: bad value 1'}],
            found['regressions'])

    def test_failing_test_that_passes_is_fixed(self):
        found = self.compare({'a': entry('fail', TRACEBACK),
                              'b': entry('skip', 'x')},
                             {'a': entry('success'), 'b': entry('success')})
        self.assertEqual([], found['regressions'])
        self.assertEqual(['a', 'b'], [r['id'] for r in found['fixed']])

    def test_failing_test_that_is_skipped_is_a_regression(self):
        found = self.compare({'a': entry('fail', TRACEBACK)},
                             {'a': entry('skip', 'not here')})
        self.assertEqual(['a'], [r['id'] for r in found['regressions']])

    def test_unexpected_success_is_a_failure(self):
        found = self.compare({'a': entry('xfail')},
                             {'a': entry('uxsuccess')})
        self.assertEqual('passed, expected to fail',
                         found['regressions'][0]['reason'])

    def test_new_and_upstream_tests_listed_apart(self):
        up = 'nova.tests.functional.libvirt.test_x_from_nova_30_3_0'
        found = self.compare(
            {'old': entry('success')},
            {'old': entry('success'), 'nova.tests.new.T.test_a':
             entry('success'), up + '.T.test_b': entry('fail', TRACEBACK)},
            (up,))
        self.assertEqual([{'id': 'nova.tests.new.T.test_a',
                           'patched': 'passed'}], found['new'])
        self.assertEqual([up + '.T.test_b'],
                         [r['id'] for r in found['upstream']])
        self.assertEqual([], found['regressions'])
        # A failing added test fails the run.
        self.assertTrue(results.failed(found))

    def test_test_split_into_data_driven_cases_is_held_per_case(self):
        # A patch that turns test_x into ddt cases: each case is held to
        # what test_x did on the pristine tree.
        t = 'nova.tests.functional.T.test_x'
        found = self.compare(
            {t: entry('success'), t + '_other': entry('success')},
            {t + '_1': entry('success'),
             t + '_2___9002000____loader_secure__no____': entry(
                 'fail', TRACEBACK),
             t + '_other': entry('success')})
        self.assertEqual(
            [{'id': t, 'cases': [
                t + '_1', t + '_2___9002000____loader_secure__no____']}],
            found['split'])
        self.assertEqual(
            [(t + '_2___9002000____loader_secure__no____', t, 'failed')],
            [(r['id'], r['pristine_id'], r['patched'])
             for r in found['regressions']])
        # The cases are not the series' own tests.
        self.assertEqual([], found['new'])

    def test_only_numbered_cases_replace_a_missing_test(self):
        t = 'nova.tests.functional.T.test_x'
        found = self.compare({t: entry('success'), t + '_2': entry('fail')},
                             {t + '_other': entry('success'),
                              t + '_0': entry('success'),
                              t + '_2': entry('fail')})
        self.assertEqual([], found['split'])
        self.assertEqual([(t, 'missing')], [
            (r['id'], r['patched']) for r in found['regressions']])
        # test_x_2 is a test of the pristine tree, not a case of test_x.
        self.assertEqual([t + '_2'],
                         [r['id'] for r in found['known_failures']])
        self.assertEqual([t + '_0', t + '_other'],
                         [r['id'] for r in found['new']])

    def test_counts(self):
        self.assertEqual(
            {'passed': 2, 'failed': 2, 'skipped': 1, 'total': 5},
            results.counts({'a': entry('success'), 'b': entry('xfail'),
                            'c': entry('fail'), 'd': entry('uxsuccess'),
                            'e': entry('skip')}))

    def test_summary_names_each_regression(self):
        found = self.compare({'a': entry('success')},
                             {'a': entry('fail', TRACEBACK)})
        sides = {'pristine': {'results': {'a': entry('success')},
                              'seconds': 5, 'reused': True,
                              'date': '2026-01-01T00:00:00Z'},
                 'patched': {'results': {'a': entry('fail')},
                             'seconds': 6}}
        lines = results.summary('unit', sides, found)
        self.assertIn('saved run of 2026-01-01T00:00:00Z', lines[0])
        self.assertIn('1 regressions', lines[2])
        self.assertEqual(
            "  REGRESSION a: passed pristine, failed patched: "
            "testtools.matchers._impl.MismatchError: '1.13' != '1.14'",
            lines[3])

    def test_summary_lists_each_split_with_its_cases(self):
        t = 'nova.tests.functional.T.test_x'
        pristine = {t: entry('success')}
        patched = {t + '_1_8006000': entry('success'),
                   t + '_2_9002000': entry('success')}
        sides = {'pristine': {'results': pristine, 'seconds': 5},
                 'patched': {'results': patched, 'seconds': 6}}
        lines = results.summary('functional', sides,
                                self.compare(pristine, patched))
        self.assertIn('0 regressions', lines[2])
        self.assertEqual(
            ['  split into data-driven cases: %s: test_x_1_8006000, '
             'test_x_2_9002000' % t], lines[3:])


class SavedRunTestCase(test.NoDBTestCase):

    def test_key_depends_on_every_part_and_their_bounds(self):
        self.assertNotEqual(results.cache_key('ab', 'c'),
                            results.cache_key('a', 'bc'))
        self.assertEqual(results.cache_key('a', b'b'),
                         results.cache_key('a', 'b'))

    def test_saved_run_is_reused_under_its_key_only(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'cache', 'unit.json')
        self.assertIsNone(results.load(path, 'k1'))
        results.save(path, 'k1', {'results': {'a': entry('success')},
                                  'seconds': 3})
        self.assertEqual({'a': entry('success')},
                         results.load(path, 'k1')['results'])
        self.assertIsNone(results.load(path, 'k2'))
        self.assertEqual(['unit.json'], os.listdir(os.path.dirname(path)))

    def test_full_mode_reuses_a_saved_run_unless_fresh(self):
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'functional-patched.json')
        results.save(path, 'k1', {'results': {'a': entry('success')},
                                  'date': '2026-12-07T02:00:00Z'})
        out = io.StringIO()
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', out))
        self.assertIsNone(run._saved(path, 'k1', True, 'functional patched'))
        self.assertIsNone(run._saved(path, 'k2', False, 'functional patched'))
        self.assertEqual('', out.getvalue())
        saved = run._saved(path, 'k1', False, 'functional patched')
        self.assertTrue(saved['reused'])
        self.assertEqual(
            'functional patched: the run of 2026-12-07T02:00:00Z, saved in '
            '%s\n' % path, out.getvalue())

    def test_machine_says_where_and_when(self):
        info = results.machine(sys.executable)
        self.assertEqual(
            {'date', 'host', 'nproc', 'python', 'libvirt', 'qemu', 'load'},
            set(info))
        self.assertRegex(info['date'], r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$')
        self.assertRegex(info['python'], r'^3\.\d+\.\d+')


def make_sdist(path: str, top: str, files: dict[str, bytes]) -> None:
    with tarfile.open(path, 'w:gz') as tar:
        for name, data in files.items():
            info = tarfile.TarInfo('%s/%s' % (top, name))
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


class UpstreamFilesTestCase(test.NoDBTestCase):

    PATH = 'nova/tests/functional/libvirt/test_stateless_firmware.py'

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.spec = release_mod.Upstream('nova', '30.3.0', 'ab' * 32,
                                         (self.PATH,))

    def test_name_says_where_the_file_comes_from(self):
        self.assertEqual(
            'nova/tests/functional/libvirt/'
            'test_stateless_firmware_from_nova_30_3_0.py',
            upstream.injected_path(self.PATH, self.spec))

    def test_read_from_the_sdist(self):
        sdist = os.path.join(self.tmp, 'nova-30.3.0.tar.gz')
        make_sdist(sdist, 'nova-30.3.0', {self.PATH: b'# upstream\n',
                                          'setup.py': b''})
        self.assertEqual({self.PATH: b'# upstream\n'},
                         upstream.read_files(sdist, self.spec))

    def test_file_missing_from_the_sdist(self):
        sdist = os.path.join(self.tmp, 'nova-30.3.0.tar.gz')
        make_sdist(sdist, 'nova-30.3.0', {'setup.py': b''})
        ex = self.assertRaises(release_mod.SeriesError,
                               upstream.read_files, sdist, self.spec)
        self.assertEqual('nova-30.3.0.tar.gz has no %s' % self.PATH,
                         str(ex))

    def test_copies_live_beside_the_series_test_for_the_run_only(self):
        make_tree(self.tmp, [self.PATH])
        copies = upstream.plan({self.spec: {self.PATH: b'# upstream\n'}})
        target = os.path.join(
            self.tmp, upstream.injected_path(self.PATH, self.spec))
        with upstream.injected(self.tmp, copies) as paths:
            with open(target, 'rb') as f:
                self.assertEqual(b'# upstream\n', f.read())
            self.assertTrue(os.path.isfile(os.path.join(self.tmp,
                                                        self.PATH)))
            self.assertEqual(
                ['nova.tests.functional.libvirt.'
                 'test_stateless_firmware_from_nova_30_3_0'],
                upstream.modules(copies))
            self.assertEqual(sorted(copies), paths)
        self.assertFalse(os.path.exists(target))

    def test_copies_removed_when_the_run_fails(self):
        make_tree(self.tmp, [self.PATH])
        copies = upstream.plan({self.spec: {self.PATH: b''}})
        with testtools.ExpectedException(RuntimeError):
            with upstream.injected(self.tmp, copies):
                raise RuntimeError()
        self.assertEqual(['__init__.py', 'test_stateless_firmware.py'],
                         sorted(os.listdir(os.path.dirname(
                             os.path.join(self.tmp, self.PATH)))))

    def test_never_replaces_a_file_of_the_tree(self):
        copies = upstream.plan({self.spec: {self.PATH: b'new'}})
        make_tree(self.tmp, list(copies))
        ex = self.assertRaises(release_mod.SeriesError,
                               upstream.injected(self.tmp, copies).__enter__)
        self.assertIn('already exists', str(ex))
        with open(os.path.join(self.tmp, list(copies)[0]), 'rb') as f:
            self.assertEqual(b'', f.read())

    def test_needs_the_test_package(self):
        copies = upstream.plan({self.spec: {self.PATH: b''}})
        ex = self.assertRaises(release_mod.SeriesError,
                               upstream.injected(self.tmp, copies).__enter__)
        self.assertIn('no test package nova/tests/functional/libvirt',
                      str(ex))

    def test_two_copies_at_one_path_refused(self):
        other = release_mod.Upstream('nova', '30_3_0', 'cd' * 32,
                                     (self.PATH,))
        self.assertRaises(release_mod.SeriesError, upstream.plan, {
            self.spec: {self.PATH: b'a'}, other: {self.PATH: b'b'}})


class SubunitTestCase(test.NoDBTestCase):

    def test_results_of_a_stream(self):
        out = io.BytesIO()
        stream = subunit.StreamResultToBytes(out)
        stream.status(test_id='t.ok', test_status='success')
        stream.status(test_id='t.bad', test_status='fail',
                      file_name='traceback', file_bytes=TRACEBACK.encode(),
                      mime_type='text/plain; charset=utf8', eof=True)
        stream.status(test_id='t.skip', test_status='skip',
                      file_name='reason', file_bytes=b'no libvirt',
                      mime_type='text/plain; charset=utf8', eof=True)
        stream.status(test_id='t.listed', test_status='exists')
        out.seek(0)
        found = subunit_results.read(out)
        self.assertEqual({'t.ok': ['success', None, ''],
                          't.bad': ['fail', None, TRACEBACK],
                          't.skip': ['skip', None, 'no libvirt']}, found)


class StestrTestCase(test.NoDBTestCase):
    """The runner's stestr step, on a tree of three tests."""

    def setUp(self):
        super().setUp()
        self.tree = self.useFixture(fixtures.TempDir()).path
        make_tree(self.tree, ['nova/tests/unit/test_a.py'])
        with open(os.path.join(self.tree, 'nova/tests/unit/test_a.py'),
                  'w') as f:
            f.write(textwrap.dedent('''\
                import unittest


                class T(unittest.TestCase):
                    def test_ok(self):
                        pass

                    def test_bad(self):
                        self.assertEqual('1.13', '1.14')

                    def test_skip(self):
                        self.skipTest('not here')
                '''))
        self.venv = os.path.dirname(os.path.dirname(sys.executable))
        if not os.path.isfile(os.path.join(self.venv, 'bin', 'stestr')):
            self.skipTest('stestr is not beside %s' % sys.executable)
        # stestr's output goes to ours; keep it out of the test's.
        self.useFixture(fixtures.MonkeyPatch('sys.stdout', io.StringIO()))

    def test_per_test_results(self):
        rc, found = run.stestr(self.venv, self.tree, './nova/tests/unit',
                               ['nova.tests.unit.test_a'], concurrency=1)
        self.assertEqual(1, rc)
        self.assertEqual(
            {'nova.tests.unit.test_a.T.test_ok': 'success',
             'nova.tests.unit.test_a.T.test_bad': 'fail',
             'nova.tests.unit.test_a.T.test_skip': 'skip'},
            {k: v[0] for k, v in found.items()})
        self.assertEqual(
            "AssertionError: '1.13' != '1.14'", results.signature(
                found['nova.tests.unit.test_a.T.test_bad'][2]))
        totals = run.totals(rc, found)
        self.assertEqual(
            [['nova.tests.unit.test_a.T.test_bad',
              "AssertionError: '1.13' != '1.14'"]], totals['failures'])

    def test_module_that_does_not_import_is_a_failure(self):
        with open(os.path.join(self.tree, 'nova/tests/unit/test_a.py'),
                  'a') as f:
            f.write('import no_such_module\n')
        log = os.path.join(self.tree, 'log')
        rc, found = run.stestr(self.venv, self.tree, './nova/tests/unit',
                               [], concurrency=1, log=log, label='t')
        self.assertNotEqual(0, rc)
        self.assertEqual(
            {'unittest.loader._FailedTest.nova.tests.unit.test_a':
             "ModuleNotFoundError: No module named 'no_such_module'"},
            {k: results.signature(v[2]) for k, v in found.items()})
        with open(log) as f:
            self.assertIn('no_such_module', f.read())

    def test_run_not_recorded_gives_no_results(self):
        # First a run that is recorded, then one that stops before any
        # test: the second must not report the first's results as its own.
        run.stestr(self.venv, self.tree, './nova/tests/unit', [],
                   concurrency=1)
        rc, found = run.stestr(self.venv, self.tree, './nova/tests/nope',
                               [], concurrency=1)
        self.assertNotEqual(0, rc)
        self.assertIsNone(found)
        totals = run.totals(rc, found)
        self.assertEqual(
            'stestr recorded no run: the tests did not load',
            totals['error'])
        self.assertTrue(run._failed({'unit': totals}))


class ParserTestCase(test.NoDBTestCase):

    def parse(self, *argv):
        return run.build_parser().parse_args(['2024.1', *argv])

    def test_ci_by_default(self):
        args = self.parse()
        self.assertIsNone(args.full)
        self.assertEqual(2, args.concurrency)

    def test_full_runs_both_suites(self):
        self.assertEqual(['unit', 'functional'], self.parse('--full').full)

    def test_full_of_some_suites(self):
        self.assertEqual(['functional'],
                         self.parse('--full=functional').full)
        self.assertEqual(['unit', 'functional'],
                         self.parse('--full', 'functional,unit').full)

    def test_unknown_suite_refused(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        self.assertRaises(SystemExit, self.parse, '--full=smoke')

    def test_full_and_per_patch_exclude_each_other(self):
        self.useFixture(fixtures.MonkeyPatch('sys.stderr', io.StringIO()))
        self.assertRaises(SystemExit, self.parse, '--full', '--per-patch')


def nova_tree(version: str) -> str | None:
    """An unpacked Nova sdist on this machine, if there is one.

    The runner's pristine trees, or those in /tmp/sdists.
    """
    candidates = glob.glob(os.path.join(run.DEFAULT_WORK, '*', 'pristine'))
    candidates.append('/tmp/sdists/nova-%s' % version)
    for path in candidates:
        with contextlib.suppress(OSError):
            with open(os.path.join(path, 'PKG-INFO')) as f:
                if 'Version: %s\n' % version in f.read():
                    return path
    return None


class SeriesSelectionTestCase(test.NoDBTestCase):
    """The selection of each series in this repository, on Nova's tree."""

    def check(self, release, version, expected):
        tree = nova_tree(version)
        if tree is None:
            self.skipTest('no unpacked nova %s' % version)
        rel = release_mod.load(run.ROOT, release)
        picked = run.all_tests(rel, tree)
        self.assertEqual(expected, selected_ids(picked, expected))

    def test_2024_1_runs_what_it_broke(self):
        self.check('2024.1', '29.4.0', MISSED_BEFORE[:2])

    def test_2026_2_runs_what_it_broke(self):
        self.check('2026.2', '34.0.0', MISSED_BEFORE[2:])
