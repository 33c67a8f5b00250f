"""The processes a cloud run starts, recorded so that they end by PID.

Every process is started in a session of its own (a ^C at the terminal
reaches the runner, which ends them in order) and written to the run's
state file with its PID and its start time (from ``/proc``), so that a
later ``--teardown`` ends exactly these processes and never another
that got a recycled PID.
"""

import contextlib
import json
import os
import signal
import subprocess
import time
import typing as ty

STOP_TIMEOUT = 20.0


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name, in parentheses, may itself hold spaces.
    return stat.rsplit(')', 1)[1].split()


def start_time(pid: int) -> int | None:
    """The start time of ``pid`` in clock ticks since boot, or None."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None) -> bool:
    """Whether ``pid`` runs and is the process that started at
    ``started`` (any, if None); a zombie has ended.
    """
    fields = _stat(pid)
    if fields is None or fields[0] in ('Z', 'X'):
        return False
    return started is None or int(fields[19]) == started


def children(pid: int) -> list[int]:
    """PIDs of the processes whose parent is ``pid``, and theirs."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                ppid = int(f.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def with_argument(prefix: str, program: str = '') -> list[int]:
    """PIDs of the processes (whose program's name holds ``program``)
    with an argument starting with ``prefix`` or naming a path under it
    (``...,path=PREFIX...``).
    """
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                args = f.read().decode(errors='replace').split('\0')
        except OSError:
            continue
        if program not in os.path.basename(args[0]):
            continue
        if any(arg.startswith(prefix) or ('=' + prefix) in arg
               for arg in args[1:]):
            out.append(int(entry))
    return out


class State:
    """The run's state file: what to end and drop at teardown."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.data: dict[str, ty.Any] = {'processes': []}
        if os.path.isfile(path):
            with open(path) as f:
                self.data = json.load(f)

    def save(self) -> None:
        tmp = self.path + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(self.data, f, indent=1)
        os.replace(tmp, self.path)

    def __getitem__(self, key: str) -> ty.Any:
        return self.data.get(key)

    def __setitem__(self, key: str, value: ty.Any) -> None:
        self.data[key] = value
        self.save()

    @property
    def processes(self) -> list[dict]:
        return self.data.setdefault('processes', [])

    def running(self) -> list[dict]:
        return [p for p in self.processes
                if alive(p['pid'], p.get('start_time'))]


class Processes:
    """Start processes and end them, newest first, by PID."""

    def __init__(self, state: State, say: ty.Callable[[str], None]) -> None:
        self.state = state
        self.say = say

    def start(self, name: str, argv: list[str], *, log: str,
              env: dict[str, str] | None = None,
              cwd: str | None = None,
              group: str = 'openstack') -> subprocess.Popen:
        with open(log, 'ab') as out:
            proc = subprocess.Popen(
                argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        self.record(name, proc.pid, log, group)
        return proc

    def record(self, name: str, pid: int, log: str = '',
               group: str = 'openstack') -> None:
        """Add a process started otherwise (e.g. by another module)."""
        self.state.processes.append({
            'name': name, 'pid': pid, 'start_time': start_time(pid),
            'log': log, 'group': group})
        self.state.save()

    def pids(self) -> set[int]:
        """The recorded processes still running, and their children."""
        out = set()
        for p in self.state.running():
            out.add(p['pid'])
            out.update(children(p['pid']))
        return out

    def stop(self, entries: list[dict]) -> None:
        """End ``entries`` together: SIGTERM to each, SIGKILL to those
        still running after :data:`STOP_TIMEOUT`, then to the children
        they leave.
        """
        running = []
        for entry in entries:
            pid, started = entry['pid'], entry.get('start_time')
            if not alive(pid, started):
                _reap(pid)
                self.say('%s (pid %d) had already exited' % (
                    entry['name'], pid))
                continue
            family = [(c, start_time(c)) for c in children(pid)]
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
            running.append((entry, family))
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(
                alive(e['pid'], e.get('start_time')) for e, _f in running):
            for entry, _family in running:
                _reap(entry['pid'])
            time.sleep(0.1)
        for entry, family in running:
            pid, how = entry['pid'], 'ended'
            if alive(pid, entry.get('start_time')):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                how = 'killed'
            _reap(pid)
            # Workers the process forked (gunicorn's) end with it; any
            # still there are ended by their own PIDs.
            for child, child_started in family:
                if alive(child, child_started):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGKILL)
                    _reap(child)
            self.say('%s %s (pid %d)' % (how, entry['name'], pid))

    def stop_all(self, group: str) -> None:
        """End the processes of ``group``."""
        self.stop([e for e in reversed(self.state.processes)
                   if e.get('group') == group])
        self.state.data['processes'] = [
            p for p in self.state.processes if p.get('group') != group]
        self.state.save()


def _reap(pid: int) -> None:
    """Collect a child's exit status, so that it does not linger."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)
