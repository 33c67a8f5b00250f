"""``nova-firmware`` as a process, under the accidents an operator meets.

Each test runs the command as a real process (``python -m
nova.cmd.firmware``), on this machine's real libvirt, QEMU and placement,
and does to it what happens in real life: a signal (SIGTERM from a
service manager, SIGHUP when a terminal closes, Ctrl-C once or twice),
``kill -9``, a reader that goes away (``| head``), QEMU dying under it,
a libvirt that never answers. Afterwards the test looks at the host
itself (domain definitions, QEMU processes, files, placement), not at
what the tool says, to check that nothing was left behind.

Most run libvirt embedded in the tool's process (the default), each with
a state directory of its own. The ``qemu:///system`` tests use the host's
libvirt daemon, started as on a compute host when none runs
(``libvirt_system.ensure_daemon``), and are skipped, saying so, only where
this machine cannot run one; ``NOVA_TEST_REQUIRE_LIBVIRTD=1`` makes that
a failure.
"""

import glob
import grp
import json
import os
import pwd
import re
import select
import signal
import stat
import subprocess
import sys
import time
import typing as ty
import unittest

import fixtures
from oslo_utils import units

from nova import test
from nova.tests.fixtures import filesystem
from nova.tests.fixtures import libvirt_system
from nova.tests.fixtures import placement as placement_fixture
from nova.tests.fixtures import servers
from nova.virt.libvirt import boot_evidence

#: How long a test waits for the tool, at most: a boot takes well under a
#: minute even on a loaded machine. A tool that hangs fails the test.
PROCESS_TIMEOUT = 120
SYSTEM_URI = 'qemu:///system'


def _clean_environment() -> dict[str, str]:
    # The tool sets up libvirt's logging from the environment; start it as
    # an operator's shell would.
    return {k: v for k, v in os.environ.items()
            if not k.startswith('LIBVIRT_')}


def _default_signals() -> None:
    """Give the child the signal handling of a shell's foreground job.

    A test run started in the background inherits SIGINT ignored (and
    under nohup SIGHUP), and ``nova-firmware`` rightly keeps a signal its
    parent ignored: the tests that interrupt it send those.
    """
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(signum, signal.SIG_DFL)


class ToolProcess:
    """One run of ``nova-firmware`` as a child process.

    Its standard output is read as it comes, so a test can act when a
    stage starts.
    """

    def __init__(self, argv: list[str], stdout: int = subprocess.PIPE
                 ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, '-m', 'nova.cmd.firmware'] + argv,
            stdout=stdout, stderr=subprocess.PIPE, env=_clean_environment(),
            preexec_fn=_default_signals)
        self.stdout = ''

    def _read(self, timeout: float) -> bool:
        ready, _w, _x = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return True
        data = os.read(self.process.stdout.fileno(), 65536)
        self.stdout += data.decode('utf-8', 'replace')
        return bool(data)

    def wait_for(self, text: str) -> None:
        """Wait until ``text`` appears on the tool's standard output."""
        deadline = time.monotonic() + PROCESS_TIMEOUT
        while text not in self.stdout:
            if time.monotonic() > deadline or not self._read(0.1):
                raise AssertionError('%r never showed; output so far:\n%s%s'
                                     % (text, self.stdout, self.stderr()))

    def stderr(self) -> str:
        if self.process.poll() is None:
            return ''
        return self.process.stderr.read().decode('utf-8', 'replace')

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def kill(self) -> None:
        """Make sure it is gone, once the test is over."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def finish(self) -> tuple[int, str, str]:
        """Wait for the tool to end: its exit status, stdout and stderr."""
        out, err = self.process.communicate(timeout=PROCESS_TIMEOUT)
        self.stdout += (out or b'').decode('utf-8', 'replace')
        return (self.process.returncode, self.stdout,
                err.decode('utf-8', 'replace'))


def qemu_processes(state_dir: str) -> list[int]:
    """QEMU processes of guests whose files are in ``state_dir``."""
    pids = []
    for path in glob.glob('/proc/[0-9]*/cmdline'):
        try:
            with open(path, 'rb') as f:
                cmdline = f.read().decode('utf-8', 'replace')
        except OSError:
            continue
        if 'qemu-system' in cmdline and state_dir in cmdline:
            pids.append(int(path.split('/')[2]))
    return pids


def _kill_qemu_of(state_dir: str) -> None:
    # Only if a test failed half way: never leave a guest running.
    for pid in qemu_processes(state_dir):
        os.kill(pid, signal.SIGKILL)


class _ProcessTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.addCleanup(self._kill_leftover_qemu)

    def _kill_leftover_qemu(self):
        _kill_qemu_of(self.state_dir)

    def start(self, *argv, **kwargs) -> ToolProcess:
        tool = ToolProcess(['--state-dir', self.state_dir] + list(argv),
                           **kwargs)
        self.addCleanup(tool.kill)
        return tool

    def run_tool(self, *argv) -> tuple[int, str, str]:
        return self.start(*argv).finish()

    def instance_uuid(self, output: str) -> str:
        return re.search(r'\[3/8\] api: .* \(instance ([-0-9a-f]{36})\)',
                         output).group(1)

    def assertNothingLeft(self, state_dir: str | None = None) -> None:
        """No guest, definition, NVRAM, instance file or record is left."""
        state_dir = state_dir or self.state_dir
        root = os.path.join(state_dir, 'libvirt')
        self.assertEqual([], qemu_processes(state_dir))
        self.assertEqual(
            [], glob.glob(os.path.join(root, 'etc', 'qemu', '*.xml')))
        self.assertEqual([], glob.glob(os.path.join(
            boot_evidence.nvram_dir('qemu:///embed?root=%s' % root), '*')))
        self.assertEqual([], os.listdir(os.path.join(state_dir,
                                                     'instances')))
        self.assertEqual([], glob.glob(os.path.join(state_dir, 'runs', '*')))


class SignalTestCase(_ProcessTestCase):
    """Every signal ends a boot with the whole cleanup."""

    def boot_and_signal(self, *signals, gap=0.3, stage='[6/8] firmware'):
        tool = self.start('boot')
        tool.wait_for(stage)
        for index, signum in enumerate(signals):
            if index:
                time.sleep(gap)
            tool.signal(signum)
        return tool.finish()

    def assertInterrupted(self, name, code, out, err):
        self.assertEqual(2, code, out + err)
        self.assertIn('(no domain, NVRAM, instance files or allocation '
                      'left)', out)
        self.assertEqual('nova-firmware boot: error: interrupted by %s' %
                         name, err.splitlines()[-1])
        self.assertNothingLeft()

    def test_sigterm_after_spawn(self):
        code, out, err = self.boot_and_signal(signal.SIGTERM)

        self.assertIn('[6/8] firmware: wait for it on the serial console (up '
                      'to 120s) ... failed', out)
        self.assertIn('(interrupted by SIGTERM)', out)
        self.assertInterrupted('SIGTERM', code, out, err)

    def test_sighup_after_spawn(self):
        code, out, err = self.boot_and_signal(signal.SIGHUP)

        self.assertInterrupted('SIGHUP', code, out, err)

    def test_second_ctrl_c_during_cleanup(self):
        code, out, err = self.boot_and_signal(signal.SIGINT, signal.SIGINT)

        self.assertIn('nova-firmware boot: SIGINT: still cleaning up; '
                      'interrupting it would leave the guest behind', err)
        self.assertInterrupted('SIGINT', code, out, err)

    def test_ctrl_c_while_libvirt_does_not_answer(self):
        # A libvirt that accepts the connection and never answers: the
        # compute stage waits inside libvirt, where Python cannot run a
        # signal handler until the call returns. It must not wait for it.
        socket_path = os.path.join(self.state_dir, 'libvirt-sock')
        self.useFixture(servers.SilentUnixServerFixture(socket_path))
        tool = self.start('--connection',
                          'qemu+unix:///system?socket=%s' % socket_path,
                          'boot')
        tool.wait_for('[2/8] compute:')
        time.sleep(0.5)
        tool.signal(signal.SIGINT)
        code, out, err = tool.finish()

        self.assertEqual(2, code, out + err)
        self.assertIn('[2/8] compute: register', out)
        self.assertIn('(interrupted by SIGINT)', out)
        self.assertEqual(['nova-firmware boot: error: interrupted by SIGINT'],
                         err.splitlines())
        # It stopped before the request was even validated.
        self.assertNotIn('[3/8]', out)


class KilledRunTestCase(_ProcessTestCase):
    """``kill -9`` of the tool: the next run removes what it left."""

    def test_cleanup_removes_what_a_killed_boot_left(self):
        # Placement in a file, so the allocation outlives the run too.
        database = os.path.join(self.state_dir, 'placement.sqlite')
        conf = os.path.join(self.state_dir, 'nova.conf')
        with open(conf, 'w') as f:
            f.write('[placement]\nembedded_connection = sqlite:///%s\n' %
                    database)
        tool = self.start('--config-file', conf, 'boot')
        tool.wait_for('[6/8] firmware')
        uuid = self.instance_uuid(tool.stdout)
        instance_dir = os.path.join(self.state_dir, 'instances', uuid)
        # Created private: QEMU runs as root here.
        self.assertEqual(0o700, stat.S_IMODE(os.stat(instance_dir).st_mode))
        self.assertEqual(0o600, stat.S_IMODE(
            os.stat(os.path.join(instance_dir, 'disk')).st_mode))
        tool.signal(signal.SIGKILL)
        tool.finish()
        # The guest runs on, as a real killed run leaves it.
        self.assertEqual(1, len(qemu_processes(self.state_dir)))
        self.assertTrue(os.path.isdir(instance_dir))

        code, out, err = self.run_tool('--config-file', conf, 'cleanup')

        self.assertEqual(0, code, out + err)
        lines = out.splitlines()
        self.assertEqual('removed:', lines[0])
        self.assertRegex(lines[1], r'^  - (running|defined) domain '
                                   r'instance-00000001 \(%s\) left by an '
                                   r'earlier run \(pid \d+\)$' % uuid)
        self.assertIn('  - instance directory %s' % instance_dir, lines)
        self.assertIn('  - allocation of %s in placement embedded (sqlite:'
                      '///%s)' % (uuid, database), lines)
        self.assertNothingLeft()
        self.flags(embedded_connection='sqlite:///%s' % database,
                   group='placement')
        placement = self.useFixture(placement_fixture.PlacementFixture())
        resp = placement.adapter.get('/allocations/%s' % uuid,
                                     microversion='1.28')
        self.assertEqual({}, resp.json()['allocations'])

        code, out, err = self.run_tool('--config-file', conf, 'cleanup')
        self.assertEqual(
            (0, 'nothing left by earlier runs in %s\n' % self.state_dir, ''),
            (code, out, err))


class OutputClosedTestCase(_ProcessTestCase):

    def test_reader_gone_does_not_stop_the_cleanup(self):
        # nova-firmware boot | head -14: the reader leaves after the spawn.
        read, write = os.pipe()
        tool = self.start('boot', stdout=write)
        os.close(write)
        with os.fdopen(read, 'rb') as pipe:
            seen = b''
            while b'[5/8] spawn' not in seen:
                chunk = pipe.read1(4096)
                self.assertTrue(chunk, seen)
                seen += chunk
        # Now the pipe has no reader at all.
        code, _out, err = tool.finish()

        self.assertEqual(0, code, err)
        self.assertEqual('', err)
        self.assertNothingLeft()


class QemuDiesTestCase(_ProcessTestCase):

    def test_qemu_killed_while_waiting_for_the_firmware(self):
        tool = self.start('boot', '--timeout', '3600')
        tool.wait_for('[6/8] firmware')
        pid_file = os.path.join(self.state_dir, 'libvirt', 'run', 'qemu',
                                'instance-00000001.pid')
        with open(pid_file) as f:
            os.kill(int(f.read()), signal.SIGKILL)

        # Noticed at once, not after the hour of --timeout: the process
        # wait would time out first.
        code, out, err = tool.finish()

        self.assertEqual(2, code, out + err)
        error = err.splitlines()[-1]
        self.assertTrue(error.startswith(
            'nova-firmware boot: error: QEMU stopped before the firmware '
            'showed on the serial console: domain instance-00000001 is '
            'shut off (crashed); the end of its QEMU log: '), error)
        self.assertTrue(error.endswith('shutting down, reason=crashed'),
                        error)
        self.assertIn('(no domain, NVRAM, instance files or allocation '
                      'left)', out)
        self.assertNothingLeft()


class FullDiskTestCase(_ProcessTestCase):

    def test_state_dir_on_a_nearly_full_filesystem(self):
        fs = self.useFixture(filesystem.SmallFilesystemFixture(4 * units.Mi))
        fs.fill(leave=256 * units.Ki)

        code, out, err = ToolProcess(['--state-dir', fs.path,
                                      'check']).finish()

        # libvirt failed to probe QEMU there, and the driver read that as
        # "Nova requires QEMU version 5.2.0 or greater".
        self.assertEqual((2, ''), (code, out))
        self.assertRegex(
            err,
            r"^nova-firmware check: error: the state directory %s is on a "
            r"filesystem with \d+ KiB free; nova-firmware needs at least "
            r"16.0 MiB there \(libvirt's cache of QEMU's capabilities, the "
            r"guest's disk, logs\). Free some space or use another "
            r"--state-dir.\n$" % fs.path)


class PlantedStateDirTestCase(_ProcessTestCase):

    def test_domain_planted_by_another_user_is_never_started(self):
        # Someone else's directory, with a domain marked for autostart:
        # libvirt would start it, as root, when the tool opens the root.
        etc = os.path.join(self.state_dir, 'libvirt', 'etc', 'qemu')
        os.makedirs(os.path.join(etc, 'autostart'))
        with open(os.path.join(etc, 'planted.xml'), 'w') as f:
            f.write("<domain type='qemu'><name>planted</name>"
                    "<memory unit='MiB'>64</memory><os><type arch='x86_64'>"
                    "hvm</type></os></domain>")
        os.symlink('../planted.xml', os.path.join(etc, 'autostart',
                                                  'planted.xml'))
        nobody = pwd.getpwnam('nobody').pw_uid
        for path in (self.state_dir, os.path.join(self.state_dir, 'libvirt'),
                     os.path.dirname(etc), etc,
                     os.path.join(etc, 'planted.xml')):
            os.chown(path, nobody, -1)

        code, out, err = self.run_tool('check')

        self.assertEqual((2, ''), (code, out))
        self.assertEqual(
            ['nova-firmware check: error: state directory %s belongs to '
             'nobody, not to root who runs nova-firmware: libvirt would '
             'start the guests defined there as root. Use a state directory '
             'of your own (--state-dir).' % self.state_dir],
            err.splitlines())
        self.assertEqual([], qemu_processes(self.state_dir))
        self.assertFalse(os.path.exists(
            os.path.join(self.state_dir, 'libvirt', 'run')))

    def test_file_planted_in_a_directory_of_ours(self):
        etc = os.path.join(self.state_dir, 'libvirt', 'etc', 'qemu')
        os.makedirs(etc)
        planted = os.path.join(etc, 'planted.xml')
        with open(planted, 'w') as f:
            f.write('<domain/>')
        os.chown(planted, pwd.getpwnam('nobody').pw_uid, -1)

        code, out, err = self.run_tool('check')

        self.assertEqual(2, code)
        self.assertIn('libvirt configuration %s belongs to nobody' % planted,
                      err)

    def test_directory_others_can_write_to(self):
        os.chmod(self.state_dir, 0o777)

        code, out, err = self.run_tool('check')

        self.assertEqual(2, code)
        self.assertEqual(
            ['nova-firmware check: error: state directory %s is writable '
             'by others (mode 0777): whoever can write there can make '
             'libvirt start guests as root. Run chmod go-w %s, or use '
             'another --state-dir.' % (self.state_dir, self.state_dir)],
            err.splitlines())


class QemuIdentity(ty.NamedTuple):

    uid: int
    gid: int

    def __str__(self) -> str:
        return '%s:%s (uid %d, gid %d)' % (
            pwd.getpwuid(self.uid).pw_name, grp.getgrgid(self.gid).gr_name,
            self.uid, self.gid)


def _libvirtd_answers() -> str | None:
    """Why ``qemu:///system`` cannot be used here; None when it can."""
    try:
        libvirt_system.ensure_daemon()
    except (libvirt_system.SystemLibvirtUnavailable,
            subprocess.CalledProcessError) as e:
        return 'no libvirt daemon can run here: %s' % e
    result = subprocess.run(['virsh', '-c', SYSTEM_URI, 'version'],
                            capture_output=True, text=True)
    if result.returncode == 0:
        return None
    return 'no libvirt daemon answers at %s (%s)' % (
        SYSTEM_URI, result.stderr.strip())


class SystemLibvirtTestCase(_ProcessTestCase):
    """On a compute host's libvirt daemon, where QEMU runs as its own user.

    Only guests this test creates (``instance-...`` of a state directory
    of its own) are touched; the daemon is shared with others.
    """

    def setUp(self):
        super().setUp()
        reason = _libvirtd_answers()
        if reason is not None:
            if os.environ.get('NOVA_TEST_REQUIRE_LIBVIRTD'):
                self.fail(reason)
            raise unittest.SkipTest(reason)
        self.addCleanup(self._remove_our_domains)

    def _remove_our_domains(self):
        # Only if a test failed half way; by their UUIDs, which only this
        # test's runs wrote into its state directory.
        for path in glob.glob(os.path.join(self.state_dir, 'runs', '*')):
            uuid = os.path.basename(path)[:-len('.json')]
            subprocess.run(['virsh', '-c', SYSTEM_URI, 'destroy', uuid],
                           capture_output=True)
            subprocess.run(['virsh', '-c', SYSTEM_URI, 'undefine', '--nvram',
                            uuid], capture_output=True)

    def domain_exists(self, uuid: str) -> bool:
        return subprocess.run(['virsh', '-c', SYSTEM_URI, 'dominfo', uuid],
                              capture_output=True).returncode == 0

    def qemu_identity(self) -> 'QemuIdentity':
        """Who the daemon runs QEMU as: its DAC base label, +UID:+GID."""
        capabilities = subprocess.run(
            ['virsh', '-c', SYSTEM_URI, 'capabilities'], capture_output=True,
            text=True, check=True).stdout
        uid, gid = re.search(
            r"<baselabel type='qemu'>\+(\d+):\+(\d+)</baselabel>",
            capabilities).groups()
        return QemuIdentity(int(uid), int(gid))

    def test_boot(self):
        code, out, err = self.run_tool('--connection', SYSTEM_URI, 'boot')

        self.assertEqual(0, code, out + err)
        self.assertEqual('', err)
        qemu = self.qemu_identity()
        self.assertIn('      qemu runs as:       %s\n' % str(qemu), out)
        self.assertRegex(out, r'PASS: the guest booted stateless UEFI '
                              r'firmware, as requested')
        self.assertFalse(self.domain_exists(self.instance_uuid(out)))
        # QEMU's group may pass through the state directory, no more.
        for path in (self.state_dir,
                     os.path.join(self.state_dir, 'instances')):
            st = os.stat(path)
            self.assertEqual((0o710, qemu.gid),
                             (stat.S_IMODE(st.st_mode), st.st_gid), path)
        self.assertEqual([], os.listdir(os.path.join(self.state_dir,
                                                     'instances')))
        self.assertEqual([], os.listdir(os.path.join(self.state_dir, 'runs')))

    def test_check_with_a_nova_conf_without_uri_checks_the_daemon(self):
        # A typical compute host's nova.conf names no connection_uri:
        # nova-compute then talks to the daemon, and so must check.
        conf = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'nova.conf')
        with open(conf, 'w') as f:
            f.write('[libvirt]\nvirt_type = qemu\n')

        code, out, err = self.run_tool('--config-file', conf, '--json',
                                       'check')

        self.assertEqual(0, code, out + err)
        report = json.loads(out)
        self.assertEqual(SYSTEM_URI, report['uri'])
        self.assertEqual(
            'derived from the virt type as nova-compute derives it; '
            "[libvirt] connection_uri: nova's default (empty); %s does "
            'not set it' % conf, report['uri_from'])
        self.assertEqual('[libvirt] virt_type in %s' % conf,
                         report['virt_type_from'])
        self.assertTrue(report['stateless_firmware'])
        self.assertIn('COMPUTE_SECURITY_STATELESS_FIRMWARE',
                      report['traits'])

    def test_two_boots_at_once_on_one_daemon(self):
        # Runs that list the daemon's domains at the same moment would
        # pick the same free name; they take turns, and both boot.
        other_dir = self.useFixture(fixtures.TempDir()).path
        other = ToolProcess(['--state-dir', other_dir, '--connection',
                             SYSTEM_URI, 'boot'])
        self.addCleanup(other.kill)
        self.addCleanup(_kill_qemu_of, other_dir)
        first = self.start('--connection', SYSTEM_URI, 'boot')

        results = [first.finish(), other.finish()]

        for code, out, err in results:
            self.assertEqual(0, code, out + err)
            self.assertRegex(out, r'PASS: the guest booted stateless UEFI '
                                  r'firmware, as requested')
        names = [re.search(r'\[5/8\] spawn: (instance-[0-9a-f]{8}) ',
                           out).group(1) for _code, out, _err in results]
        self.assertNotEqual(names[0], names[1])
        for _code, out, _err in results:
            self.assertFalse(self.domain_exists(self.instance_uuid(out)))

    def test_keep_then_cleanup(self):
        code, out, err = self.run_tool('--connection', SYSTEM_URI, 'boot',
                                       '--keep')

        self.assertEqual(0, code, out + err)
        uuid = self.instance_uuid(out)
        self.assertTrue(self.domain_exists(uuid))
        self.assertIn('      remove with:        nova-firmware --state-dir '
                      '%s --connection %s cleanup\n' % (self.state_dir,
                                                        SYSTEM_URI), out)
        # The guest's files are private; libvirt lent the disk to QEMU's
        # user while the guest runs.
        qemu = self.qemu_identity()
        instance_dir = os.path.join(self.state_dir, 'instances', uuid)
        st = os.stat(instance_dir)
        self.assertEqual((0o710, 0, qemu.gid),
                         (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid))
        disk = os.stat(os.path.join(instance_dir, 'disk'))
        self.assertEqual((0o600, qemu.uid),
                         (stat.S_IMODE(disk.st_mode), disk.st_uid))

        code, out, err = self.run_tool('--connection', SYSTEM_URI,
                                       'cleanup')

        self.assertEqual(0, code, out + err)
        # Another test may run a guest on the same daemon: the name is
        # the first free one.
        self.assertRegex(out, r'  - running domain instance-[0-9a-f]{8} '
                              r'\(%s\) kept by an earlier run \(pid \d+, '
                              r'--keep\)\n' % uuid)
        self.assertIn('  - instance directory %s' % instance_dir, out)
        self.assertFalse(self.domain_exists(uuid))
        self.assertFalse(os.path.exists(instance_dir))

    def test_state_dir_qemu_cannot_reach(self):
        # A directory of root's, 0700 (as mkdtemp makes them), on the way.
        state_dir = os.path.join(self.state_dir, 'inner')

        code, out, err = ToolProcess(['--state-dir', state_dir,
                                      '--connection', SYSTEM_URI,
                                      'boot']).finish()

        self.assertEqual(2, code, out + err)
        qemu = self.qemu_identity()
        self.assertEqual(
            ['nova-firmware boot: error: libvirt runs QEMU as %s, which '
             'cannot reach the state directory %s: %s (mode 0700, owner '
             'root, group root) does not let it through. Use a --state-dir '
             'it can reach, such as /var/lib/nova-firmware, or let it '
             'through (setfacl -m u:%s:x %s).' % (
                 qemu, state_dir, self.state_dir,
                 pwd.getpwuid(qemu.uid).pw_name, self.state_dir)],
            err.splitlines())
        self.assertNotIn('[3/8]', out)
        self.assertEqual('root', grp.getgrgid(
            os.stat(self.state_dir).st_gid).gr_name)
