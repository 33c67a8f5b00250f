"""The host lock that keeps a cloud, an upgrade and the functional tests'
libvirt daemons from running over each other (tools/host_lock.py)."""

import contextlib
import io
import os
import signal
import subprocess
import sys

import fixtures

from nova import test
from tools.cloud import run as cloud_run
from tools.cloud import upgrade as cloud_upgrade
from tools import host_lock
from tools import libvirt_daemons
from tools.series import run as series_run

#: Holds the lock until killed, and says so once it holds it.
HOLDER = '''
import sys, time
from tools import host_lock
with host_lock.held(sys.argv[1]):
    print('held', flush=True)
    time.sleep(600)
'''


class HostLockTest(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        tmp = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(tmp, 'host.lock')
        self.useFixture(fixtures.EnvironmentVariable(
            host_lock.PATH_ENV, self.path))

    def _holder_process(self, purpose):
        proc = subprocess.Popen(
            [sys.executable, '-c', HOLDER, purpose], cwd=series_run.ROOT,
            stdout=subprocess.PIPE, text=True)
        self.addCleanup(proc.wait)
        self.addCleanup(proc.kill)
        self.assertEqual('held', proc.stdout.readline().strip())
        return proc

    def test_second_run_names_the_first(self):
        with host_lock.held('tox -e cloud-2026.2') as path:
            self.assertEqual(self.path, path)
            ex = self.assertRaises(host_lock.HostBusy, host_lock.held(
                'tox -e functional').__enter__)
            self.assertIn('pid %d: tox -e cloud-2026.2' % os.getpid(),
                          str(ex))
            self.assertIn(self.path, str(ex))
        # released and emptied: the next run takes it
        with open(self.path) as f:
            self.assertEqual('', f.read())
        with host_lock.held('tox -e functional'):
            pass

    def test_lock_of_another_process(self):
        proc = self._holder_process('tox -e upgrade-2024.1 -- rolling')
        ex = self.assertRaises(host_lock.HostBusy,
                               host_lock.held('x').__enter__)
        self.assertEqual('pid %d: tox -e upgrade-2024.1 -- rolling' %
                         proc.pid, ex.holder)

    def test_killed_holder_leaves_nothing_to_clean(self):
        proc = self._holder_process('tox -e cloud-2024.1')
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # The kernel dropped the lock with the process; the file still
        # names it, and is taken over all the same.
        with host_lock.held('tox -e cloud-2026.2'):
            with open(self.path) as f:
                self.assertEqual('pid %d: tox -e cloud-2026.2\n' %
                                 os.getpid(), f.read())

    def test_cloud_refuses_to_start(self):
        work = self.useFixture(fixtures.TempDir()).path
        out = io.StringIO()
        with host_lock.held('tox -e functional'), \
                contextlib.redirect_stdout(out):
            rc = cloud_run.main(['cloud-2026.2', '--work', work])
        self.assertEqual(2, rc)
        self.assertIn('another run holds', out.getvalue())
        self.assertIn('tox -e functional', out.getvalue())
        # refused before anything started: no state of a cloud
        self.assertEqual([], os.listdir(work))

    def test_upgrade_refuses_to_start(self):
        work = self.useFixture(fixtures.TempDir()).path
        out = io.StringIO()
        with host_lock.held('tox -e cloud-2024.1'), \
                contextlib.redirect_stdout(out):
            rc = cloud_upgrade.main(['rolling', '--work', work])
        self.assertEqual(2, rc)
        self.assertIn('tox -e cloud-2024.1', out.getvalue())
        self.assertEqual([], os.listdir(work))

    def test_libvirt_daemons_refuse_to_run_the_command(self):
        marker = os.path.join(self.useFixture(fixtures.TempDir()).path, 'ran')
        err = io.StringIO()
        with host_lock.held('tox -e cloud-2024.1'), \
                contextlib.redirect_stderr(err):
            rc = libvirt_daemons.main(['--', 'touch', marker])
        self.assertEqual(2, rc)
        self.assertFalse(os.path.exists(marker))
        self.assertIn('tox -e cloud-2024.1', err.getvalue())

    def test_cloud_refuses_beside_a_kept_cloud(self):
        work = self.useFixture(fixtures.TempDir()).path
        os.makedirs(os.path.join(work, '2024.1'))
        kept = os.path.join(work, '2024.1', 'state.json')
        with open(kept, 'w') as f:
            f.write('{"processes": []}')
        self.assertEqual([kept], cloud_run.kept_clouds(work))
        self.assertEqual([], cloud_run.kept_clouds(work, own=kept))
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cloud_run.main(['cloud-2026.2', '--work', work])
        self.assertEqual(2, rc)
        self.assertIn('tox -e cloud-2024.1 -- --teardown', out.getvalue())
        self.assertFalse(os.path.exists(
            os.path.join(work, '2026.2', 'state.json')))

    def test_upgrade_cloud_left_refuses_a_cloud(self):
        clouds = self.useFixture(fixtures.TempDir()).path
        upgrades = self.useFixture(fixtures.TempDir()).path
        self.useFixture(fixtures.MonkeyPatch(
            'tools.cloud.run.UPGRADE_WORK', upgrades))
        self.assertIsNone(cloud_run.kept_cloud_refusal(clouds))
        os.makedirs(os.path.join(upgrades, 'rolling'))
        left = os.path.join(upgrades, 'rolling', 'state.json')
        with open(left, 'w') as f:
            f.write('{"processes": []}')
        refusal = cloud_run.kept_cloud_refusal(clouds)
        self.assertIn(left, refusal)
        self.assertIn('tox -e upgrade-2024.1 -- --teardown', refusal)
