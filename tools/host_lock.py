"""One run at a time of the commands that own this host's shared services.

The cloud and upgrade commands (``tools/cloud``) start MariaDB, RabbitMQ
and libvirt's system daemons on fixed ports and sockets, create databases
of fixed names, and end what they started by its PID; ``tools/
libvirt_daemons.py`` starts and ends the system daemons around the
functional tests. Two such runs at once share each other's services and
then pull them down under each other: a cloud's teardown stops the
``libvirtd`` a test run is using, a second cloud's ``nova-manage`` syncs
into the first one's databases.

Each of these runs holds an exclusive ``flock`` on one file for as long as
it runs. A second one stops at once with an error naming the holder,
rather than waiting behind a run that may take an hour. The kernel drops
the lock when the holder's process ends, however it ends, so a crash
leaves nothing to clean up.
"""

import contextlib
import fcntl
import os
import typing as ty

#: On Debian, /run/lock is a tmpfs every user may write to, emptied at boot.
LOCK_DIR = '/run/lock'
LOCK_NAME = 'nova-stateless-firmware-host.lock'


class HostBusy(Exception):
    """Another run holds the host's shared services."""

    def __init__(self, holder: str, path: str) -> None:
        self.holder = holder
        self.path = path
        super().__init__(
            'another run holds this host\'s shared services (MariaDB, '
            'RabbitMQ, the libvirt system daemons): %s. Wait for it to end; '
            'the lock is %s' % (holder, path))


#: Names another lock file: tests use one of their own.
PATH_ENV = 'NOVA_STATELESS_HOST_LOCK'


def default_path() -> str:
    if os.environ.get(PATH_ENV):
        return os.environ[PATH_ENV]
    directory = LOCK_DIR if os.access(LOCK_DIR, os.W_OK) else '/tmp'
    return os.path.join(directory, LOCK_NAME)


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 4096).decode('utf-8', 'replace').strip()
    return text or 'a process that has not yet written its name'


@contextlib.contextmanager
def held(purpose: str, path: ty.Optional[str] = None) -> ty.Iterator[str]:
    """Hold the host's lock for the duration of the ``with`` block.

    :param purpose: what this run is, written into the lock file so that a
        refused run can say who holds it (``tox -e cloud-2026.2``).
    :param path: the lock file; :func:`default_path` when None.
    :raises HostBusy: when another process holds it.
    :returns: the lock file's path.
    """
    path = path or default_path()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise HostBusy(_holder(fd), path) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, ('pid %d: %s\n' % (os.getpid(), purpose)).encode(), 0)
        try:
            yield path
        finally:
            # Emptied before the lock goes, so the file never names a
            # process that no longer holds it.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
