"""The state directory of ``nova-firmware``, and what QEMU may reach in it.

Everything the tool creates lives under one directory: the embedded
libvirt root, the instance files of its guests, their logs, and a record
of each boot. libvirt reads domain definitions from that root and starts
the ones marked for autostart, as the user running the tool (root,
usually): so the directory must belong to that user and nobody else may
write to it. It is refused otherwise.

Files are created private (the tool runs with umask 077). A libvirt
daemon (``qemu:///system``) runs QEMU as another user, though, which must
reach the guest's disk. libvirt itself hands it the files: its DAC
security driver (``dynamic_ownership``, on by default) gives each file a
guest uses to QEMU's user for as long as the guest runs and gives it back
afterwards. What libvirt does not do is open the directories on the way:
the tool gives QEMU's *group* (which libvirt reports in its capabilities,
as the DAC base label) search permission, and nothing else, on the state
directory, its ``instances`` directory and the guest's own directory
(mode 0710). So QEMU can open the files libvirt lent it and no other user
can even look inside.
"""

import dataclasses
import errno
import fcntl
import grp
import json
import os
import pwd
import shutil
import stat
import typing as ty

from oslo_log import log as logging
from oslo_utils import units

from nova.cmd import firmware_common as common

LOG = logging.getLogger(__name__)

#: The process's umask: everything the tool and libvirt inside it create
#: is private to the user running it.
UMASK = 0o077
#: The state directory and the directories QEMU must pass through, when
#: QEMU runs as another user: search for QEMU's group, nothing for others.
QEMU_SEARCH_MODE = 0o710
#: Without room for libvirt's cache of QEMU's capabilities, a guest's disk
#: and the logs, libvirt fails in ways that do not say why (it cannot
#: probe QEMU, and reports that it finds no emulator).
MIN_FREE_BYTES = 16 * units.Mi

INSTANCES_DIR = 'instances'
LIBVIRT_DIR = 'libvirt'
RUNS_DIR = 'runs'
#: Where libvirt's embedded QEMU driver reads the domains it defines and
#: starts when it opens (``autostart``), and its ``qemu.conf``.
_LIBVIRT_CONFIG_DIRS = ('libvirt', 'libvirt/etc', 'libvirt/etc/qemu',
                        'libvirt/etc/qemu/autostart')


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return 'uid %d' % uid


def _group(gid: int) -> str:
    try:
        return grp.getgrgid(gid).gr_name
    except KeyError:
        return 'gid %d' % gid


def _check_ours(path: str, what: str, st: os.stat_result,
                check_mode: bool = True) -> None:
    """Refuse a directory or file the invoking user does not control."""
    uid = os.geteuid()
    if st.st_uid != uid:
        raise common.CommandError(
            '%s %s belongs to %s, not to %s who runs %s: libvirt would '
            'start the guests defined there as %s. Use a state directory '
            'of your own (--state-dir).' % (
                what, path, _user(st.st_uid), _user(uid), common.PROG,
                _user(uid)))
    if check_mode and st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise common.CommandError(
            '%s %s is writable by %s (mode %04o): whoever can write there '
            'can make libvirt start guests as %s. Run chmod go-w %s, or use '
            'another --state-dir.' % (
                what, path,
                'others' if st.st_mode & stat.S_IWOTH
                else 'group %s' % _group(st.st_gid),
                stat.S_IMODE(st.st_mode), _user(uid), path))


def _check_inside(state_dir: str) -> None:
    """Check what libvirt reads and the tool writes inside the state dir.

    Symbolic links are refused there: they would lead libvirt or the
    cleanup somewhere else.
    """
    for relative in _LIBVIRT_CONFIG_DIRS + (INSTANCES_DIR, RUNS_DIR):
        path = os.path.join(state_dir, relative)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        if not stat.S_ISDIR(st.st_mode):
            raise common.CommandError(
                '%s in the state directory is not a directory; remove it '
                'or use another --state-dir.' % path)
        _check_ours(path, 'directory', st)
    for relative in _LIBVIRT_CONFIG_DIRS[1:]:
        directory = os.path.join(state_dir, relative)
        if not os.path.isdir(directory):
            continue
        for name in sorted(os.listdir(directory)):
            path = os.path.join(directory, name)
            st = os.lstat(path)
            # A link's own mode means nothing; libvirt's autostart
            # markers are links to the definitions checked here.
            _check_ours(path, 'libvirt configuration', st,
                        check_mode=not stat.S_ISLNK(st.st_mode))


def prepare_state_dir(path: str) -> str:
    """Create the state directory, or check an existing one.

    :returns: its absolute real path.
    :raises CommandError: naming the directory and what is wrong.
    """
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
    except FileExistsError:
        raise common.CommandError(
            '--state-dir %s exists and is not a directory.' % path)
    except OSError as exc:
        raise common.CommandError(
            '--state-dir %s cannot be created: %s.' % (
                path, exc.strerror or exc))
    real = os.path.realpath(path)
    if not os.path.isdir(real):
        raise common.CommandError(
            '--state-dir %s exists and is not a directory.' % path)
    _check_ours(real, 'state directory', os.stat(real))
    _check_inside(real)
    return real


def _size(n_bytes: int) -> str:
    for unit, name in ((units.Gi, 'GiB'), (units.Mi, 'MiB')):
        if n_bytes >= unit:
            return '%.1f %s' % (n_bytes / unit, name)
    return '%d KiB' % (n_bytes // units.Ki)


def check_free_space(state_dir: str) -> None:
    """Refuse a state directory on a (nearly) full filesystem.

    :raises CommandError: naming the directory and the room it needs.
    """
    fs = os.statvfs(state_dir)
    free = fs.f_bavail * fs.f_frsize
    if free < MIN_FREE_BYTES:
        raise common.CommandError(
            'the state directory %s is on a filesystem with %s free; %s '
            'needs at least %s there (libvirt\'s cache of QEMU\'s '
            'capabilities, the guest\'s disk, logs). Free some space or '
            'use another --state-dir.' % (
                state_dir, _size(free), common.PROG, _size(MIN_FREE_BYTES)))


def check_disk_capacity(state_dir: str, disk_gb: int) -> None:
    """Refuse a filesystem too small for the guest's disk.

    The compute node reports the size of the filesystem of its instances
    path (the state directory here) as its ``DISK_GB`` inventory, in whole
    GiB: on a smaller filesystem no guest with a disk can be scheduled.

    :raises CommandError: naming the directory and the size needed.
    """
    fs = os.statvfs(state_dir)
    total = fs.f_blocks * fs.f_frsize
    if disk_gb and total // units.Gi < disk_gb:
        raise common.CommandError(
            'the state directory %s is on a filesystem of %s: the compute '
            'node reports %d GiB of disk (DISK_GB) and the flavor needs %d '
            'GiB. Use a --state-dir on a filesystem of at least %d GiB, or '
            '--flavor disk=0.' % (state_dir, _size(total),
                                  total // units.Gi, disk_gb, disk_gb))


# --- QEMU run by a libvirt daemon as another user ---------------------------

@dataclasses.dataclass(frozen=True)
class QemuIdentity:
    """The user and group libvirt runs QEMU as."""

    uid: int
    gid: int

    def __str__(self) -> str:
        return '%s:%s (uid %d, gid %d)' % (_user(self.uid), _group(self.gid),
                                           self.uid, self.gid)

    def groups(self) -> set[int]:
        """QEMU's groups: libvirt gives it its user's supplementary ones."""
        try:
            name = pwd.getpwuid(self.uid).pw_name
        except KeyError:
            return {self.gid}
        return set(os.getgrouplist(name, self.gid))


def parse_dac_label(label: str | None) -> QemuIdentity | None:
    """``+64055:+64055``, libvirt's DAC base label, as an identity."""
    if not label:
        return None
    user, sep, group = label.partition(':')
    try:
        return QemuIdentity(int(user.lstrip('+')), int(group.lstrip('+')))
    except ValueError:
        LOG.debug('Cannot read the DAC base label %r', label)
        return None


def other_qemu_identity(label: str | None) -> QemuIdentity | None:
    """The identity QEMU runs as, when it is not the invoking user's."""
    identity = parse_dac_label(label)
    if identity is None or identity.uid == os.geteuid():
        return None
    return identity


def _can_search(st: os.stat_result, identity: QemuIdentity) -> bool:
    if identity.uid == 0:
        return True
    if st.st_uid == identity.uid:
        return bool(st.st_mode & stat.S_IXUSR)
    if st.st_gid in identity.groups():
        return bool(st.st_mode & stat.S_IXGRP)
    return bool(st.st_mode & stat.S_IXOTH)


def check_qemu_can_reach(state_dir: str, identity: QemuIdentity) -> None:
    """Check that QEMU can pass through every parent of the state dir.

    The state directory itself and the ones under it are the tool's to
    open (``open_to_qemu``); the parents are not.

    :raises CommandError: naming the first directory in the way.
    """
    path = '/'
    for part in state_dir.strip('/').split('/')[:-1]:
        path = os.path.join(path, part)
        st = os.stat(path)
        if not _can_search(st, identity):
            raise common.CommandError(
                'libvirt runs QEMU as %s, which cannot reach the state '
                'directory %s: %s (mode %04o, owner %s, group %s) does not '
                'let it through. Use a --state-dir it can reach, such as '
                '/var/lib/%s, or let it through (setfacl -m u:%s:x %s).' % (
                    identity, state_dir, path, stat.S_IMODE(st.st_mode),
                    _user(st.st_uid), _group(st.st_gid), common.PROG,
                    _user(identity.uid), path))


def open_to_qemu(paths: ty.Iterable[str], identity: QemuIdentity) -> None:
    """Let QEMU's group search the directories it must pass through.

    Only search: it cannot list them, and opens only the files libvirt's
    DAC driver lends it. A user who may not give a directory to QEMU's
    group (not root, not a member) lets everyone search it instead; the
    files stay private either way.
    """
    for path in paths:
        try:
            os.chown(path, -1, identity.gid)
            os.chmod(path, QEMU_SEARCH_MODE)
        except PermissionError:
            LOG.debug('Cannot give %s to group %d; letting everyone search '
                      'it', path, identity.gid)
            os.chmod(path, QEMU_SEARCH_MODE | stat.S_IXOTH)


# --- the record of what a boot created ---------------------------------------

@dataclasses.dataclass
class RunRecord:
    """What one ``boot`` creates, written before it creates it.

    If the run is killed (``kill -9`` included), a later run with the same
    state directory finds the record and removes what it names.
    """

    instance_uuid: str
    domain: str
    uri: str
    instance_dir: str
    #: The placement holding the guest's allocation, when it outlives the
    #: run (a database file or a service); None for an in-memory one.
    placement: str | None
    pid: int = dataclasses.field(default_factory=os.getpid)
    #: The guest was kept on purpose (``--keep``).
    kept: bool = False

    def describe(self) -> str:
        if self.kept:
            return 'kept by an earlier run (pid %d, --keep)' % self.pid
        return 'left by an earlier run (pid %d)' % self.pid


class RunRecords:
    """The records of the state directory's boots (``STATE_DIR/runs``).

    A run holds a lock on its own record while it lives, so a concurrent
    run with the same state directory leaves it alone; the lock goes with
    the process, however it ends.
    """

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.directory = os.path.join(state_dir, RUNS_DIR)
        self._held: dict[str, int] = {}

    def _path(self, uuid: str) -> str:
        return os.path.join(self.directory, uuid + '.json')

    def _write(self, fd: int, record: RunRecord) -> None:
        data = json.dumps(dataclasses.asdict(record), indent=2,
                          sort_keys=True).encode('utf-8')
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def begin(self, record: RunRecord) -> None:
        """Write and lock the record of a run, before it creates anything."""
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        fd = os.open(self._path(record.instance_uuid),
                     os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                     0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self._write(fd, record)
        # The record must be on disk before what it names exists.
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        self._held[record.instance_uuid] = fd

    def update(self, record: RunRecord) -> None:
        self._write(self._held[record.instance_uuid], record)

    def end(self, record: RunRecord, remove: bool) -> None:
        """Release a run's record; remove it when nothing it names is left."""
        fd = self._held.pop(record.instance_uuid)
        try:
            if remove:
                os.unlink(self._path(record.instance_uuid))
        finally:
            os.close(fd)

    def leftovers(self) -> list[RunRecord]:
        """The records of runs that ended without removing them.

        Each one returned is locked by this process until ``end``.
        """
        try:
            names = sorted(os.listdir(self.directory))
        except FileNotFoundError:
            return []
        records = []
        for name in names:
            if not name.endswith('.json'):
                continue
            path = os.path.join(self.directory, name)
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EAGAIN, errno.EACCES):
                    continue  # a run that is still going
                raise
            try:
                with os.fdopen(os.dup(fd), encoding='utf-8') as f:
                    record = RunRecord(**json.load(f))
            except (ValueError, TypeError) as exc:
                os.close(fd)
                raise common.CommandError(
                    'cannot read the run record %s (%s); remove it.' % (
                        path, exc))
            self._held[record.instance_uuid] = fd
            records.append(record)
        return records

    def instance_dir_is_ours(self, record: RunRecord) -> bool:
        """Whether a record's instance directory is one the tool made."""
        instances = os.path.join(self.state_dir, INSTANCES_DIR)
        path = os.path.realpath(record.instance_dir)
        return os.path.dirname(path) == instances

    def remove_instance_dir(self, record: RunRecord) -> bool:
        """Remove a record's instance directory; True if it existed."""
        if not self.instance_dir_is_ours(record):
            return False
        if not os.path.lexists(record.instance_dir):
            return False
        shutil.rmtree(record.instance_dir)
        return True
