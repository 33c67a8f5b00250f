"""The system services under the cloud: MariaDB, RabbitMQ, libvirt.

They come from Debian (``bindep.txt``, profile ``cloud``) and start with
their init scripts, as on a host without systemd, listening on
127.0.0.1 only. A service already running when the run starts is used
and left running; one the run starts is stopped at its end. Erlang's
port mapper (``epmd``), which RabbitMQ would start and leave behind, is
started here first, in the foreground, so that it ends by its PID.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import typing as ty

from tools.cloud import config as config_mod
from tools.cloud import processes
from tools import libvirt_daemons

MARIADB_INIT = '/etc/init.d/mariadb'
MARIADB_PIDFILE = '/run/mysqld/mysqld.pid'
#: Our settings for MariaDB, read after Debian's own.
MARIADB_CNF = '/etc/mysql/mariadb.conf.d/99-nova-cloud.cnf'
MARIADB_SETTINGS = """\
# Written by tools/cloud: loopback only; a test cloud's databases do not
# need every commit on disk.
[mysqld]
bind-address = 127.0.0.1
skip-name-resolve
innodb_flush_log_at_trx_commit = 2
max_connections = 500
"""

RABBITMQ_INIT = '/etc/init.d/rabbitmq-server'
RABBITMQ_PIDFILE = '/var/run/rabbitmq/pid'
RABBITMQ_ENV = '/etc/rabbitmq/rabbitmq-env.conf'
RABBITMQ_SETTINGS = {
    'NODE_IP_ADDRESS': '127.0.0.1',
    'SERVER_ADDITIONAL_ERL_ARGS':
        '"-kernel inet_dist_use_interface {127,0,0,1}"',
    'ERL_EPMD_ADDRESS': '127.0.0.1',
}
EPMD_PORT = 4369

READY_TIMEOUT = 120.0


class ServiceError(Exception):
    pass


def _run(argv: list[str], env: dict[str, str] | None = None,
         timeout: float = 300) -> str:
    proc = subprocess.run(argv, env=dict(os.environ, **(env or {})),
                          text=True, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise ServiceError('%s exited %d: %s' % (
            ' '.join(argv), proc.returncode, proc.stdout.strip()[-2000:]))
    return proc.stdout


def missing_packages(root: str) -> list[str]:
    """System packages of ``bindep.txt`` (profile ``cloud``) not
    installed; bindep comes with the tox environment.
    """
    bindep = shutil.which('bindep')
    if bindep is None:
        raise ServiceError('bindep is not installed (pip install bindep)')
    proc = subprocess.run([bindep, '-b', 'cloud'], cwd=root, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if proc.returncode not in (0, 1):
        raise ServiceError('bindep failed: %s' % proc.stderr.strip())
    return proc.stdout.split()


def install_packages(root: str, say: ty.Callable[[str], None]) -> None:
    missing = missing_packages(root)
    if not missing:
        say('system packages: all present')
        return
    say('system packages: installing %s' % ' '.join(missing))
    env = {'DEBIAN_FRONTEND': 'noninteractive'}
    _run(['apt-get', 'update', '-q'], env=env, timeout=600)
    _run(['apt-get', 'install', '-y', '-q', '-o', 'DPkg::Lock::Timeout=600',
          *missing], env=env, timeout=1200)


def _pid_from(path: str) -> int | None:
    try:
        with open(path) as f:
            pid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if processes.alive(pid, None) else None


def _wait(what: str, ready: ty.Callable[[], bool],
          timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise ServiceError('%s not ready in %d s' % (what, timeout))
        time.sleep(0.2)


def _write_if_changed(path: str, text: str) -> None:
    with contextlib.suppress(OSError):
        with open(path) as f:
            if f.read() == text:
                return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write(text)


def rabbitmq_env(current: str) -> str:
    """``rabbitmq-env.conf`` with our settings, the rest kept."""
    lines = [line for line in current.splitlines()
             if line.split('=', 1)[0].strip() not in RABBITMQ_SETTINGS]
    lines += ['%s=%s' % kv for kv in RABBITMQ_SETTINGS.items()]
    return '\n'.join(lines) + '\n'


# --- MariaDB ----------------------------------------------------------------

def mariadb_start(state: processes.State,
                  say: ty.Callable[[str], None]) -> None:
    pid = _pid_from(MARIADB_PIDFILE)
    if pid is not None:
        say('MariaDB already runs (pid %d): using it, leaving it running'
            % pid)
        state['mariadb'] = {'started': False, 'pid': pid}
        return
    _write_if_changed(MARIADB_CNF, MARIADB_SETTINGS)
    _run([MARIADB_INIT, 'start'])
    pid = _pid_from(MARIADB_PIDFILE)
    if pid is None:
        raise ServiceError('MariaDB started but wrote no PID in %s' %
                           MARIADB_PIDFILE)
    state['mariadb'] = {'started': True, 'pid': pid,
                        'start_time': processes.start_time(pid)}
    say('MariaDB started (pid %d)' % pid)


def mysql(statement: str) -> str:
    """Run SQL as MariaDB's root, over its UNIX socket."""
    return _run(['mysql', '--batch', '--skip-column-names', '-e',
                 statement])


def create_databases(s: config_mod.Settings) -> None:
    sql = []
    for name in config_mod.DATABASES:
        sql.append('DROP DATABASE IF EXISTS `%s`;' % s.db_name(name))
        sql.append('CREATE DATABASE `%s` CHARACTER SET utf8;' %
                   s.db_name(name))
    sql.append("CREATE OR REPLACE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s';"
               % (s.db_user, s.db_password))
    sql.append("GRANT ALL PRIVILEGES ON `%s%%`.* TO '%s'@'127.0.0.1';" % (
        s.db_prefix.replace('_', '\\_'), s.db_user))
    mysql(' '.join(sql))


def drop_databases(db_prefix: str, db_user: str) -> list[str]:
    names = [n for n in mysql('SHOW DATABASES').split()
             if n.startswith(db_prefix)]
    sql = ['DROP DATABASE `%s`;' % n for n in names]
    sql.append("DROP USER IF EXISTS '%s'@'127.0.0.1';" % db_user)
    mysql(' '.join(sql))
    return names


def mariadb_stop(state: processes.State,
                 say: ty.Callable[[str], None]) -> None:
    info = state['mariadb'] or {}
    if not info.get('started'):
        return
    pid, started = info['pid'], info.get('start_time')
    if processes.alive(pid, started):
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            _run([MARIADB_INIT, 'stop'], timeout=120)
        _ensure_ended('mariadbd', pid, started, say)
    say('MariaDB stopped (pid %d)' % pid)
    state['mariadb'] = None


def _ensure_ended(name: str, pid: int, started: int | None,
                  say: ty.Callable[[str], None]) -> None:
    with contextlib.suppress(ServiceError):
        _wait(name, lambda: not processes.alive(pid, started), 30)
    if processes.alive(pid, started):
        say('%s (pid %d) outlived its init script: ending it' % (name, pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# --- RabbitMQ ---------------------------------------------------------------

def epmd_path() -> str:
    path = shutil.which('epmd')
    if path is None:
        raise ServiceError('epmd not found (package erlang-base)')
    return path


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(('127.0.0.1', port)) == 0


def rabbitmq_start(state: processes.State, procs: processes.Processes,
                   s: config_mod.Settings,
                   say: ty.Callable[[str], None]) -> None:
    pid = _pid_from(RABBITMQ_PIDFILE)
    if pid is not None:
        say('RabbitMQ already runs (pid %d): using it, leaving it running'
            % pid)
        state['rabbitmq'] = {'started': False, 'pid': pid}
    else:
        current = ''
        with contextlib.suppress(OSError):
            with open(RABBITMQ_ENV) as f:
                current = f.read()
        _write_if_changed(RABBITMQ_ENV, rabbitmq_env(current))
        if not _port_open(EPMD_PORT):
            procs.start('epmd', [epmd_path(), '-address', '127.0.0.1',
                                 '-port', str(EPMD_PORT)],
                        log=os.path.join(s.log_dir, 'epmd.log'),
                        group='system')
            _wait('epmd', lambda: _port_open(EPMD_PORT), 30)
        _run([RABBITMQ_INIT, 'start'], env={'ERL_EPMD_ADDRESS': '127.0.0.1'},
             timeout=300)
        pid = _pid_from(RABBITMQ_PIDFILE)
        if pid is None:
            raise ServiceError('RabbitMQ started but wrote no PID in %s' %
                               RABBITMQ_PIDFILE)
        state['rabbitmq'] = {'started': True, 'pid': pid,
                             'start_time': processes.start_time(pid)}
        say('RabbitMQ started (pid %d)' % pid)
    _run(['rabbitmqctl', '-q', 'add_user', s.rabbit_user,
          s.rabbit_password])
    state['rabbit_user'] = s.rabbit_user
    _run(['rabbitmqctl', '-q', 'set_permissions', '-p', '/', s.rabbit_user,
          '.*', '.*', '.*'])


def rabbitmq_stop(state: processes.State,
                  say: ty.Callable[[str], None]) -> None:
    info = state['rabbitmq'] or {}
    pid, started = info.get('pid'), info.get('start_time')
    user = state['rabbit_user']
    if user and pid and processes.alive(pid, None):
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            _run(['rabbitmqctl', '-q', 'delete_user', user], timeout=60)
            say('RabbitMQ user %s deleted' % user)
        state['rabbit_user'] = None
    if not info.get('started'):
        return
    if processes.alive(pid, started):
        with contextlib.suppress(ServiceError, subprocess.TimeoutExpired):
            _run([RABBITMQ_INIT, 'stop'], timeout=120)
        _ensure_ended('rabbitmq', pid, started, say)
    say('RabbitMQ stopped (pid %d)' % pid)
    state['rabbitmq'] = None


# --- libvirt ----------------------------------------------------------------

def libvirt_start(state: processes.State, procs: processes.Processes,
                  s: config_mod.Settings,
                  say: ty.Callable[[str], None]) -> None:
    """The libvirt daemons nova-compute talks to (qemu:///system)."""
    # A daemon serves here if its socket does: one of another mount
    # namespace (a container's, a second host's) does not.
    wanted = [(name, sock) for name, sock in libvirt_daemons.DAEMONS
              if not (libvirt_daemons.running(name) and
                      os.path.exists(sock))]
    if not wanted:
        say('libvirt daemons already run: using them, leaving them running')
        return
    reason = libvirt_daemons.why_not(name for name, _sock in wanted)
    if reason:
        raise ServiceError('cannot start the libvirt daemons: %s' % reason)
    for name, sock in wanted:
        proc = libvirt_daemons.start(name, sock, s.log_dir)
        procs.record(name, proc.pid, os.path.join(s.log_dir, name + '.log'),
                     group='system')
        say('%s started (pid %d)' % (name, proc.pid))


# --- a second host ---------------------------------------------------------

#: The groups of the second hosts' processes in the run's state start
#: with this: they end after nova-compute, once their guests are removed.
HOST_GROUP = 'host-'


def host_group(compute: config_mod.Compute) -> str:
    """The group of the processes of ``compute``'s host, named after its
    directory (``host-NAME``).
    """
    group = os.path.basename(compute.libvirt_root)
    assert group.startswith(HOST_GROUP), group
    return group


def prepare_host(compute: config_mod.Compute) -> None:
    """The directories of a second host's libvirt: empty ones, and a
    copy of the host's libvirt configuration with no network of
    libvirt's started on its own; where it has an address of its own,
    its QEMU receives migrations there only.
    """
    root = compute.libvirt_root
    # Sockets and PID files of an earlier run would read as ready.
    shutil.rmtree(compute.host_path('/run/libvirt'), ignore_errors=True)
    for path in compute.own_dirs:
        if path != '/etc/libvirt':
            os.makedirs(compute.host_path(path), exist_ok=True)
    etc = compute.host_path('/etc/libvirt')
    if not os.path.isdir(etc):
        shutil.copytree('/etc/libvirt', etc, symlinks=True,
                        ignore=_no_guests)
    if compute.address:
        qemu_conf = os.path.join(etc, 'qemu.conf')
        with open(qemu_conf) as f:
            current = f.read()
        _write_if_changed(qemu_conf, config_mod.qemu_conf(current,
                                                          compute.address))
    autostart = os.path.join(etc, 'qemu', 'networks', 'autostart')
    if os.path.isdir(autostart):
        for entry in os.listdir(autostart):
            os.unlink(os.path.join(autostart, entry))
    os.chmod(root, 0o755)


def _no_guests(directory: str, names: list[str]) -> list[str]:
    """What of /etc/libvirt a second host does not copy: the domains
    defined on this one (``qemu/*.xml``, ``qemu/autostart``), which its
    nova-compute would take for instances of its own.
    """
    if os.path.normpath(directory) != '/etc/libvirt/qemu':
        return []
    return [n for n in names if n.endswith('.xml') or n == 'autostart']


def in_host(holder: int, argv: list[str],
            network: bool = False) -> list[str]:
    """``argv`` run in the namespaces of the second host ``holder``
    holds, and in its network namespace too with ``network``;
    ``nsenter`` execs it, so that its PID is the command's.
    """
    return ['nsenter', '--target', str(holder), '--mount', '--uts',
            *(['--net'] if network else []), '--', *argv]


def link_host(compute: config_mod.Compute, holder: int) -> None:
    """Join the network namespace of ``compute``'s host to this one:
    a veth pair (:data:`config_mod.PEER_LINK`), one end here, the other
    there with ``compute.address``. The pair goes with the namespace,
    when the last process in it ends.
    """
    here, here_addr, there, there_addr, prefix = config_mod.PEER_LINK
    assert compute.address == there_addr
    taken = _run(['ip', '-o', 'addr', 'show', 'to', '%s/%d' % (
        here_addr, prefix)]).strip()
    if taken:
        raise ServiceError('%s/%d is in use here, for the network of %s: '
                           '%s' % (here_addr, prefix, compute.host, taken))
    for argv in (
            ['ip', 'link', 'add', here, 'type', 'veth', 'peer', 'name',
             there, 'netns', str(holder)],
            ['ip', 'addr', 'add', '%s/%d' % (here_addr, prefix), 'dev',
             here],
            ['ip', 'link', 'set', here, 'up'],
            in_host(holder, ['ip', 'addr', 'add', '%s/%d' % (
                there_addr, prefix), 'dev', there], network=True),
            in_host(holder, ['ip', 'link', 'set', there, 'up'],
                    network=True),
            in_host(holder, ['ip', 'link', 'set', 'lo', 'up'],
                    network=True)):
        _run(argv)


def host_start(compute: config_mod.Compute, procs: processes.Processes,
               log_dir: str, say: ty.Callable[[str], None]) -> int:
    """A second host on this kernel for ``compute``: a mount and UTS
    namespace of its own, with its own libvirt daemons (``virtlogd``,
    ``libvirtd``) serving ``qemu:///system`` there; the PID of the
    process that holds the namespaces.

    A libvirt daemon of the QEMU driver keeps its sockets, PID files and
    guests' state at fixed paths: two on one file system collide. In the
    namespace those paths are directories of the second host's own
    (``compute.libvirt_root``), bound over the host's; the rest of the
    file system, the network and the processes are shared.
    """
    reason = libvirt_daemons.why_not(name for name, _s in
                                     libvirt_daemons.DAEMONS)
    if reason:
        raise ServiceError('cannot start a second host: %s' % reason)
    prepare_host(compute)
    holder = procs.start(
        compute.host, ['unshare', '--mount', '--uts',
                       *(['--net'] if compute.address else []),
                       '--propagation', 'private', '--', 'sh', '-c',
                       config_mod.host_script(compute.own_dirs),
                       compute.host, compute.libvirt_root],
        log=os.path.join(log_dir, compute.host + '.log'),
        group=host_group(compute)).pid

    def holding() -> bool:
        if not processes.alive(holder, None):
            raise ServiceError('the namespace of %s ended; see %s' % (
                compute.host, os.path.join(log_dir, compute.host + '.log')))
        with open('/proc/%d/cmdline' % holder, 'rb') as f:
            return f.read().startswith(b'sleep')
    _wait(compute.host, holding, 30)
    if compute.address:
        link_host(compute, holder)
    for name, sock in libvirt_daemons.DAEMONS:
        path = libvirt_daemons.executable(name)
        assert path is not None
        pid_file = '/run/libvirt/%s.pid' % name
        log = os.path.join(log_dir, '%s-%s.log' % (name, compute.host))
        proc = procs.start('%s (%s)' % (name, compute.host),
                           in_host(holder, [path, '--pid-file', pid_file],
                                   network=bool(compute.address)),
                           log=log, group=host_group(compute))

        def ready(sock: str = sock, proc: ty.Any = proc,
                  log: str = log) -> bool:
            if proc.poll() is not None:
                raise ServiceError('%s exited %d; see %s' % (
                    name, proc.returncode, log))
            return os.path.exists(compute.host_path(sock))
        _wait(name, ready, libvirt_daemons.READY_TIMEOUT)
        say('%s of %s started (pid %d)' % (name, compute.host, proc.pid))
    return holder


def host_holders(state: processes.State) -> dict[str, int]:
    """The second hosts that run: their process group -> the PID
    holding their namespaces.
    """
    holders = {}
    for entry in state.processes:
        if (entry.get('group', '').startswith(HOST_GROUP) and
                processes.alive(entry['pid'], entry.get('start_time')) and
                entry['name'] not in ('virtlogd', 'libvirtd') and
                not entry['name'].startswith(('virtlogd ', 'libvirtd '))):
            holders.setdefault(entry['group'], entry['pid'])
    return holders
