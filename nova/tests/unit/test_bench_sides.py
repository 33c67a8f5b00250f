"""The benchmarks' other Novas: every one is measured or says what builds it.

Nothing here times anything; these tests read the sides the benchmark
would measure, and the runner's git trees they are built from.
"""

import dataclasses
import os
import subprocess
import sys

import fixtures

from benchmarks import sides
from nova import test
from tools.series import release as release_mod
from tools.series import run as series_run


def _series_on_disk() -> list[str]:
    top = os.path.join(series_run.ROOT, 'series')
    return sorted(d for d in os.listdir(top)
                  if os.path.isfile(os.path.join(top, d, 'release.ini')))


class TestSidesKnown(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        self.series_dir = os.path.join(self.tmp, 'series')
        self.upstream = os.path.join(self.tmp, 'upstream-nova')

    def _sides(self, extra=()):
        return sides.prepare(
            sides.parse_sides(self.upstream, extra, self.series_dir),
            self.upstream, self.series_dir, build=False,
            say=self.fail)

    def test_every_side_is_listed_with_what_builds_it(self):
        found = self._sides()
        releases = _series_on_disk()
        self.assertTrue(releases)
        self.assertEqual(
            ['upstream 34.0.0'] + ['patched %s' % r for r in releases],
            [side.label for side in found])
        for side in found:
            self.assertIsNone(side.python)
        self.assertIn('build it with: bash benchmarks/upstream-venv.sh %s'
                      % self.upstream, found[0].unavailable)
        for release, side in zip(releases, found[1:]):
            self.assertIn(
                'build it with: python3 -m tools.series %s --no-tests '
                '--no-boot --work %s' % (release, self.series_dir),
                side.unavailable)

    def test_a_side_named_on_the_command_line_comes_after_upstream(self):
        found = self._sides(['mine=%s' % os.path.join(self.tmp, 'none')])
        self.assertEqual('mine', found[1].label)
        self.assertIn('no virtualenv at %s' % os.path.join(self.tmp, 'none'),
                      found[1].unavailable)
        self.assertRaises(ValueError, sides.parse_sides, self.upstream,
                          ['no-venv'], self.series_dir)

    def test_a_series_without_its_libvirt_binding_says_so(self):
        release = _series_on_disk()[0]
        bin_dir = os.path.join(self.series_dir, release, 'venv', 'bin')
        os.makedirs(bin_dir)
        os.symlink(sys.executable, os.path.join(bin_dir, 'python'))
        side = self._sides()[1]
        self.assertIsNone(side.python)
        self.assertIn('no libvirt binding', side.unavailable)
        self.assertIn('install it with: python3 -m tools.series %s '
                      '--no-tests --work %s' % (release, self.series_dir),
                      side.unavailable)

    def test_a_tree_the_build_would_replace_is_left_alone(self):
        release = _series_on_disk()[0]
        os.makedirs(os.path.join(self.series_dir, release, 'git'))
        side = self._sides()[1]
        self.assertIsNone(side.python)
        self.assertIn('building it would replace the tree',
                      side.unavailable)


class TestTreeState(test.NoDBTestCase):
    """How a runner's tree stands to the series it was built from."""

    def setUp(self):
        super().setUp()
        self.tmp = self.useFixture(fixtures.TempDir()).path
        pristine = os.path.join(self.tmp, 'pristine')
        os.makedirs(pristine)
        with open(os.path.join(pristine, 'a.txt'), 'w') as f:
            f.write('one\n')
        self.tree = os.path.join(self.tmp, 'git')
        series_run.make_git_tree(pristine, self.tree, '1.0')
        self.first = self._patch('two\n', 'first')
        self.second = self._patch('three\n', 'second')
        self.release = dataclasses.replace(
            release_mod.load(series_run.ROOT, _series_on_disk()[0]),
            patches=(self.first,))

    def _patch(self, text, name):
        # A patch as format-patch writes it, made on the pristine tree.
        with open(os.path.join(self.tree, 'a.txt'), 'w') as f:
            f.write(text)
        series_run.git(self.tree, 'commit', '-q', '-a', '-m', name)
        out = os.path.join(self.tmp, name)
        series_run.git(self.tree, 'format-patch', '-q', '-1', '-o', out)
        series_run.git(self.tree, 'reset', '-q', '--hard', 'pristine')
        [patch] = os.listdir(out)
        return release_mod.Patch(patch, os.path.join(out, patch))

    def _by_hand(self, *args):
        env = dict(os.environ, GIT_COMMITTER_NAME='Dev',
                   GIT_COMMITTER_EMAIL='dev@example.com',
                   GIT_AUTHOR_NAME='Dev', GIT_AUTHOR_EMAIL='dev@example.com')
        subprocess.run(['git', '-C', self.tree, *args], env=env, check=True,
                       capture_output=True)

    def test_current_old_and_edited(self):
        series_run.git_am(self.tree, self.first)
        self.assertEqual('current', sides.tree_state(self.release, self.tree))
        # The series moved on; the runner made this tree from the old one.
        newer = dataclasses.replace(self.release, patches=(self.second,))
        self.assertEqual('old', sides.tree_state(newer, self.tree))
        # A change not committed yet is someone's work.
        with open(os.path.join(self.tree, 'a.txt'), 'w') as f:
            f.write('work\n')
        self.assertEqual('edited', sides.tree_state(newer, self.tree))
        self._by_hand('commit', '-q', '-a', '--amend', '--no-edit')
        self.assertEqual('edited', sides.tree_state(newer, self.tree))
        self.assertEqual('edited', sides.tree_state(self.release, self.tree))

    def test_edited_back_to_the_series_is_current(self):
        series_run.git_am(self.tree, self.first)
        self._by_hand('commit', '-q', '--amend', '--no-edit',
                      '--reset-author')
        self.assertEqual('current', sides.tree_state(self.release, self.tree))
