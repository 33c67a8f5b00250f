"""Run a command beside the host's libvirt daemons, and end those it started.

``python3 -m tools.libvirt_daemons -- COMMAND...``

A few functional tests use the libvirt daemon (``qemu:///system``) for
what libvirt embedded in the test process cannot show. When no daemon
runs, this starts ``virtlogd`` and ``libvirtd`` as its own children, in
the foreground so that their PIDs are known, runs the command, and ends
them by PID when the command ends, fails or is interrupted. Daemons that
already run (a developer's, a compute host's) are used and left alone.
libvirtd listens on its UNIX sockets only, as Debian configures it.

Where the daemons cannot run (not root, not installed) the command runs
all the same: the tests that need a daemon say why they skip.

It holds the host's lock (``tools/host_lock.py``) while it runs, so it
refuses to start beside a cloud or upgrade run, whose teardown would end
the daemons under the tests.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
import typing as ty

from tools import host_lock

#: The daemons in the order they start, each with the socket that says it
#: is ready to serve.
DAEMONS = (
    ('virtlogd', '/run/libvirt/virtlogd-sock'),
    ('libvirtd', '/run/libvirt/libvirt-sock'),
)

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0


class DaemonFailed(Exception):
    pass


def say(text: str) -> None:
    print('libvirt daemons: %s' % text, file=sys.stderr, flush=True)


def running(name: str) -> bool:
    return subprocess.run(['pgrep', '-x', name],
                          capture_output=True).returncode == 0


def executable(name: str) -> str | None:
    return shutil.which(name, path=os.pathsep.join(
        (os.environ.get('PATH', ''), '/usr/sbin')))


def start(name: str, socket: str, log_dir: str) -> subprocess.Popen:
    """Start ``name`` in the foreground; return once it serves."""
    path = executable(name)
    assert path is not None
    # A socket left by a daemon that was killed would read as ready.
    if os.path.exists(socket):
        os.unlink(socket)
    log_path = os.path.join(log_dir, '%s.log' % name)
    with open(log_path, 'ab') as log:
        # A session of its own: a ^C at the terminal reaches this runner,
        # which ends the daemon after the command, not before.
        proc = subprocess.Popen([path], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    deadline = time.monotonic() + READY_TIMEOUT
    while not os.path.exists(socket):
        if proc.poll() is not None:
            raise DaemonFailed('%s exited with status %d; see %s' % (
                name, proc.returncode, log_path))
        if time.monotonic() > deadline:
            stop(name, proc)
            raise DaemonFailed('%s did not create %s in %d s; see %s' % (
                name, socket, READY_TIMEOUT, log_path))
        time.sleep(0.1)
    say('started %s (pid %d), log %s' % (name, proc.pid, log_path))
    return proc


def stop(name: str, proc: subprocess.Popen) -> None:
    """End a daemon this runner started, by its PID."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    say('ended %s (pid %d, status %d)' % (name, proc.pid, proc.returncode))


def why_not(names: ty.Iterable[str]) -> str | None:
    """Why these daemons cannot be started here; None when they can."""
    if os.geteuid() != 0:
        return 'not root'
    missing = [name for name in names if executable(name) is None]
    if missing:
        return '%s not installed (package libvirt-daemon-system)' % (
            ', '.join(missing))
    return None


def _raise_exit(signum: int, _frame: ty.Any) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ['--']:
        argv = argv[1:]
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with host_lock.held('python -m tools.libvirt_daemons -- %s' % (
                ' '.join(argv))):
            return _run(argv)
    except host_lock.HostBusy as ex:
        say(str(ex))
        return 2


def _run(argv: list[str]) -> int:
    wanted = [(name, socket) for name, socket in DAEMONS
              if not running(name)]
    reason = why_not(name for name, _socket in wanted) if wanted else None
    if reason is not None:
        say('not started (%s)' % reason)
        wanted = []
    started: list[tuple[str, subprocess.Popen]] = []
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_exit)
    log_dir = os.environ.get('LIBVIRT_DAEMONS_LOG_DIR') or '/var/log/libvirt'
    os.makedirs(log_dir, exist_ok=True)
    try:
        for name, socket in wanted:
            started.append((name, start(name, socket, log_dir)))
        return subprocess.call(argv)
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except DaemonFailed as ex:
        say(str(ex))
        return 1
    finally:
        for name, proc in reversed(started):
            stop(name, proc)


if __name__ == '__main__':
    sys.exit(main())
