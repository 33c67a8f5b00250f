"""Upgrade a patched 2024.1 cloud: rolling to 2024.2, skip-level to 2025.1.

``python3 -m tools.cloud.upgrade [PATH ...]`` (``tox -e upgrade-2024.1``):

1. deploy the all-in-one cloud of ``tox -e cloud-2024.1`` (nova 29.4.0
   patched by ``series/2024.1``) and give it five servers: stateless UEFI
   running, stopped, and shelved (offloaded); stateful UEFI running; BIOS.
   Each one's domain ``<os>`` and NVRAM files (sha256) are recorded;
2. ``rolling``: placement 12 and the nova 30.3.0 control plane
   (``nova-manage api_db sync``, ``db sync``, ``db
   online_data_migrations``; ``[upgrade_levels] compute = auto``) while
   the patched 29.4.0 compute runs on; ``nova-status upgrade check``; a
   new stateless server, hard reboots, a start, an unshelve and a rebuild
   on the old compute; then the compute to 30.3.0, its trait, hard
   reboots, stops and starts of every server and a new stateless one;
3. ``skip-level``: from a new 2024.1 cloud made the same way, placement
   13 and all of nova 31.3.1 at once, with the same checks;
4. the moves of a step are made to all its servers at once, then each
   server is checked;
5. a line per check, the service logs searched for RPC and object
   version problems, a table of servers by steps and the time of each
   path; everything torn down as ``tox -e cloud-2024.1`` does, also on
   failure, SIGINT or SIGTERM.

Keystone, glance and neutron stay on 2024.1: nova and placement are what
is upgraded. The upgraded releases come from PyPI with their own upper
constraints (``tools/cloud/constraints/``), each in its virtualenv.
"""

import argparse
import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
import typing as ty

from tools.cloud import config as config_mod
from tools.cloud import evidence
from tools.cloud.evidence import StepError
from tools.cloud import install
from tools.cloud import processes
from tools.cloud import releases
from tools.cloud import run as cloud_run
from tools.cloud import scenario as scenario_mod
from tools.cloud import services as services_mod
from tools.cloud import system
from tools.cloud import upgrade_checks as checks
from tools import host_lock
from tools import libvirt_daemons
from tools.series import release as release_mod
from tools.series import run as series_run

ROOT = series_run.ROOT
DEFAULT_WORK = cloud_run.UPGRADE_WORK
RELEASE = '2024.1'
#: This cloud's names, apart from those of ``tox -e cloud-RELEASE``, so
#: that neither one's teardown touches the other's domains, databases or
#: RabbitMQ user.
INSTANCE_NAME_TEMPLATE = 'upgrade-%08x'
DOMAIN_NAME = scenario_mod.name_pattern(INSTANCE_NAME_TEMPLATE)
DB_PREFIX = 'upgrade_'
#: The nova services of a control plane, in the order they start.
CONTROL = ('nova-api', 'nova-conductor', 'nova-scheduler')
#: Seconds an NVRAM file must stay the same to count as written.
SETTLE = 8
#: Seconds to wait for another cloud's ports to be free.
PORTS_TIMEOUT = 3600
#: Seconds a restarted nova-compute may take to report its state.
COMPUTE_TIMEOUT = 600


# --- the virtualenvs of the releases upgraded to ----------------------------

def build_target(target: checks.Target, work: str,
                 say: ty.Callable[[str], None]) -> str:
    """nova and placement of ``target`` from PyPI in their virtualenv,
    made anew when the pins or the requirements changed.
    """
    venv = os.path.join(work, 'venv-%s' % target.release)
    key = install.venv_key(target.pins, target.requirements)
    stamp = os.path.join(venv, '.upgrade-stamp')
    if install.is_current(stamp, key):
        say('reusing %s' % venv)
        return venv
    start = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    series_run.run([sys.executable, '-m', 'venv', venv])
    series_run.run([series_run.venv_python(venv), '-m', 'pip', 'install',
                    '-q', '--no-compile', '--progress-bar', 'off',
                    '-c', target.pins, *target.requirements], capture=True)
    with open(stamp, 'w') as f:
        f.write(key)
    say('%s installed in %.0f s' % (venv, time.monotonic() - start))
    return venv


# --- the cloud ---------------------------------------------------------------

def settings(work: str, path: str, built: install.Built,
             state: processes.State) -> config_mod.Settings:
    saved = state['settings']
    if saved:
        return config_mod.Settings(**saved)
    s = config_mod.Settings(
        run_dir=os.path.join(work, 'run'),
        venv=built.venv,
        placement_venv=built.placement_venv,
        db_password=secrets.token_hex(12),
        rabbit_password=secrets.token_hex(12),
        service_password=secrets.token_hex(12),
        admin_password=secrets.token_hex(12),
        instances_path=os.path.join(cloud_run.INSTANCES_ROOT,
                                    'upgrade-' + path, 'instances'),
        db_prefix=DB_PREFIX, db_user='upgrade',
        # A name of its own each run: RabbitMQ keeps its users across
        # restarts, and a run ended by SIGKILL leaves its user behind.
        rabbit_user='upgrade-%s' % secrets.token_hex(3))
    state['settings'] = {f: getattr(s, f) for f in s.__dataclass_fields__}
    return s


class Nova(services_mod.Services):
    """The cloud's services, nova's configuration this cloud's own: its
    instance name template and, when upgrading, the upgrade levels and
    the release's privsep helper.
    """

    upgrade_levels: str | None = None

    def write_configs(self) -> None:
        super().write_configs()
        self.write_nova()

    def write_nova(self, compute: bool = True) -> None:
        s = dataclasses.replace(self.s, venv=self.built.venv)
        conf = config_mod.nova_conf(s)
        conf['DEFAULT']['instance_name_template'] = INSTANCE_NAME_TEMPLATE
        if self.upgrade_levels:
            conf['upgrade_levels'] = {'compute': self.upgrade_levels}
        self._write('nova', 'nova.conf', config_mod.render_ini(conf))
        if compute:
            conf = config_mod.nova_compute_conf(s)
            conf['DEFAULT']['instance_name_template'] = (
                INSTANCE_NAME_TEMPLATE)
            # This cloud has one compute: nowhere to live-migrate to.
            del conf['libvirt']['live_migration_uri']
            self._write('nova', 'nova-compute.conf',
                        config_mod.render_ini(conf))

    def nova_manage(self, *args: str) -> None:
        self._commands('nova', [[self.bin('nova-manage'), '--config-file',
                                 self.conf('nova', 'nova.conf'), *args]])

    def stop(self, names: ty.Collection[str]) -> None:
        """End the recorded processes ``names``, by PID."""
        entries = [e for e in reversed(self.procs.state.processes)
                   if e['name'] in names]
        self.procs.stop(entries)
        self.procs.state.data['processes'] = [
            p for p in self.procs.state.processes if p not in entries]
        self.procs.state.save()

    def wait_log(self, name: str, offset: int, text: str,
                 timeout: float = services_mod.READY_TIMEOUT) -> str:
        """The first line of ``name``'s log after ``offset`` holding
        ``text``.
        """
        log = os.path.join(self.s.log_dir, name + '.log')
        deadline = time.monotonic() + timeout
        while True:
            self._check_alive(name)
            with open(log, errors='replace') as f:
                f.seek(offset)
                for line in f:
                    if text in line:
                        return line.strip()
            if time.monotonic() > deadline:
                raise services_mod.ServiceFailed(
                    '%s logged no %r in %d s (%s)' % (name, text, timeout,
                                                      log))
            time.sleep(1)


class Logs:
    """Where each service log stood when a step began."""

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self.offsets: dict[str, int] = {}

    def files(self) -> list[str]:
        return sorted(os.path.join(self.log_dir, n)
                      for n in os.listdir(self.log_dir)
                      if n.endswith('.log') and n != 'scenario.log')

    def mark(self) -> None:
        self.offsets = {p: os.path.getsize(p) for p in self.files()}

    def since(self, path: str) -> list[str]:
        with open(path, errors='replace') as f:
            f.seek(self.offsets.get(path, 0))
            return f.readlines()

    def errors(self) -> str:
        """The error lines each log got since :meth:`mark`."""
        out = []
        for path in self.files():
            for line in checks.error_lines(self.since(path)):
                out.append('  %s: %s' % (os.path.basename(path),
                                         evidence.one_line(line, 300)))
        return '\n'.join(out)


@dataclasses.dataclass(frozen=True)
class Move:
    """One step of a path on one server: what is done to it, and what
    its firmware must show after.
    """

    column: str
    server: str
    action: ty.Callable[[], object]
    expect: str


class Upgrade:
    """One path: a patched 2024.1 cloud, its servers, its upgrade."""

    def __init__(self, path: checks.Path, rel: release_mod.Release,
                 cloud: releases.Cloud, built: install.Built,
                 target_venv: str, work: str, ev: evidence.Evidence,
                 matrix: checks.Matrix) -> None:
        self.path = path
        self.rel = rel
        self.cloud = cloud
        self.built = built
        self.target_venv = target_venv
        self.work = work
        self.ev = ev
        self.matrix = matrix
        os.makedirs(work, exist_ok=True)
        self.state = processes.State(os.path.join(work, 'state.json'))
        self.procs = processes.Processes(self.state, ev.say)
        self.before: dict[str, checks.Snapshot] = {}
        #: Each server's firmware after its last step.
        self.last: dict[str, checks.Snapshot] = {}
        self.findings: list[str] = []
        self.observations: list[str] = []
        #: Servers shelved and offloaded: no domain to read.
        self.offloaded: set[str] = set()
        self.compute_version = rel.version
        self.kinds = {n: kind for n, (kind, _s) in checks.SERVERS.items()}
        self.new_servers = 0

    # --- setup -------------------------------------------------------------

    def phase(self, name: str, expect: str,
              func: ty.Callable[[], str]) -> None:
        if not self.ev.check('%s: %s' % (self.path.name, name), expect,
                             func).ok:
            raise cloud_run.SetupFailed(name)

    def deploy(self) -> None:
        wait_ports(self.ev.say)
        s = settings(self.work, self.path.name, self.built, self.state)
        self.s = s
        shutil.rmtree(s.run_dir, ignore_errors=True)
        os.makedirs(s.log_dir)
        self.old = Nova(s, self.cloud, self.built, self.procs, self.ev.say)
        target = dataclasses.replace(self.built, venv=self.target_venv,
                                     placement_venv=self.target_venv,
                                     tree=None)
        self.new = Nova(s, self.cloud, target, self.procs, self.ev.say)

        def system_services() -> str:
            libvirt_start(self.procs, s, self.ev.say)
            system.mariadb_start(self.state, self.ev.say)
            system.rabbitmq_start(self.state, self.procs, s, self.ev.say)
            return 'libvirt, MariaDB, RabbitMQ up'
        self.phase('system services', 'libvirt, MariaDB, RabbitMQ running',
                   system_services)

        def databases() -> str:
            system.create_databases(s)
            self.old.write_configs()
            self.old.sync_databases()
            return '%d databases (%s*), tables synced' % (
                len(config_mod.DATABASES), DB_PREFIX)
        self.phase('databases', 'every service\'s tables created',
                   databases)

        def start() -> str:
            self.old.start_all()
            return 'keystone, glance, placement, neutron, nova 29.4.0 ' \
                '(patched) started'
        self.phase('services', 'each service its own process, answering',
                   start)
        self.hostname = socket.gethostname()

        def compute() -> str:
            self.provider = self.old.wait_compute(self.hostname)
            return 'provider %s, host mapped' % self.provider
        self.phase('compute', 'nova-compute reports to placement', compute)
        self.cli = scenario_mod.Cli(self.built.venv, config_mod.admin_env(s),
                                    os.path.join(s.log_dir, 'scenario.log'))
        keystone = services_mod.Keystone(s)
        keystone.login()
        self.status = scenario_mod.ServerStatus(s.url('nova-api'),
                                                lambda: keystone.token)
        self.sc = scenario_mod.Scenario(self.cli, self.ev, self.hostname,
                                        self.provider, s.run_dir,
                                        self.status)
        self.logs = Logs(s.log_dir)

    # --- what the host shows ------------------------------------------------

    def snap(self, server: str, settle: bool = False,
             timeout: float = 180,
             booted_since: checks.Snapshot | None = None
             ) -> checks.Snapshot:
        """The server's domain and NVRAM files; with ``settle``, once
        the firmware has stopped writing its store (the same bytes
        :data:`SETTLE` seconds apart), so that a boot's own writes are
        not taken for a change; with ``booted_since`` as well, once the
        firmware has counted a boot after that snapshot. After
        ``timeout`` seconds, as they are.
        """
        domain = self.sc.domain_of(server)
        deadline = time.monotonic() + timeout
        keeps = checks.keeps_store(self.compute_version)
        while True:
            xml = self.cli.virsh('dumpxml', domain)
            nvram = stores(domain)
            now = checks.snapshot(domain, xml, nvram)
            if not settle or time.monotonic() > deadline:
                return now
            if booted_since is not None and not checks.boot_counted(
                    booted_since, now, keeps):
                time.sleep(1)
                continue
            time.sleep(SETTLE)
            if stores(domain) == nvram:
                return now

    def step(self, column: str, server: str,
             action: ty.Callable[[], object] | None, expect: str,
             mark: bool = True) -> bool:
        """``action`` on ``server``, then its firmware checked against
        what it had before the upgrade; a failure names the server, the
        step and the service log lines the step added (with ``mark``
        false, those since the caller marked the logs).
        """
        kind = self.kinds[server]
        verdict = [checks.FAILED]

        def check() -> str:
            if mark:
                self.logs.mark()
            try:
                if action:
                    action()
                now = self.snap(server, settle=kind == 'stateful',
                                booted_since=self.last.get(server)
                                if action else None)
                verdict[0], seen = checks.check_kept(
                    kind, self.last.get(server), now,
                    checks.keeps_store(self.compute_version),
                    booted=action is not None)
            except Exception as ex:
                errors = self.logs.errors()
                if errors:
                    self.ev.say('service log lines of %s at %s:\n%s' % (
                        server, column, errors))
                raise StepError('%s at "%s": %s%s' % (
                    server, column, ex, ' | logs: ' + errors.replace(
                        '\n', ' |') if errors else '')) from ex
            self.last[server] = now
            if verdict[0] == checks.RESET:
                self.findings.append('%s at "%s" (nova-compute %s): %s' % (
                    server, column, self.compute_version, seen))
            return '%s %s' % (now.domain, seen)
        ok = self.ev.check('%s: %s: %s' % (self.path.name, column, server),
                           expect, check).ok
        self.matrix.mark(server, '%s: %s' % (self.path.name, column),
                         verdict[0] if ok else checks.FAILED)
        return ok

    # --- the servers before the upgrade --------------------------------------

    def servers(self) -> None:
        self.sc.trait()
        self.sc.images()

        def bios_image() -> str:
            self.cli.os('image', 'create', '--disk-format', 'raw',
                        '--container-format', 'bare', '--file',
                        os.path.join(self.s.run_dir, 'zeros.raw'),
                        'cloud-bios')
            return 'cloud-bios: no firmware properties'
        self.ev.check('%s: BIOS image' % self.path.name,
                      'an image without hw_firmware_type', bios_image)
        images = {'stateless': 'cloud-stateless', 'stateful': 'cloud-uefi',
                  'bios': 'cloud-bios'}
        # The five boot together: on a busy host each boot waits mostly
        # for CPU, and one after the other took seven minutes.
        with concurrent.futures.ThreadPoolExecutor(len(checks.SERVERS)) as (
                pool):
            created = {name: pool.submit(
                self.cli.os, 'server', 'create', '--image', images[kind],
                '--flavor', 'cloud.tiny', '--nic', 'none', name)
                for name, (kind, _want) in checks.SERVERS.items()}
        for name, (kind, want) in checks.SERVERS.items():
            def make(name: str = name, kind: str = kind,
                     want: str = want) -> None:
                created[name].result()
                self.sc.wait_status(name, 'ACTIVE', 600)
                self.sc.domain_of(name)
                if want == 'SHUTOFF':
                    self.cli.os('server', 'stop', name)
                    self.sc.wait_status(name, 'SHUTOFF')
                elif want == 'SHELVED_OFFLOADED':
                    # Its domain's firmware is recorded while it exists.
                    self.before[name] = self.last[name] = self.snap(name)
                    self.cli.os('server', 'shelve', '--wait', name)
                    self.sc.wait_status(name, 'SHELVED_OFFLOADED')
                    self.offloaded.add(name)
                    domains = self.cli.virsh('list', '--all', '--name')
                    if self.sc.domains[name] in domains.split():
                        raise StepError('shelved, but %s is still defined'
                                        % self.sc.domains[name])
            if want == 'SHELVED_OFFLOADED':
                self.ev.check('%s: before (2024.1 patched): %s' % (
                    self.path.name, name), 'stateless, then shelved and '
                    'offloaded: no domain left', lambda: (
                        make() or 'SHELVED_OFFLOADED, domain %s undefined; '
                        'before: %s' % (self.sc.domains[name],
                                        self.before[name].describe())))
                self.matrix.mark(name, '%s: before (2024.1 patched)' %
                                 self.path.name, checks.OK
                                 if name in self.before else checks.FAILED)
                continue
            if not self.step('before (2024.1 patched)', name, make,
                             '%s server, %s' % (kind, want)):
                continue
            if name not in self.before:
                self.before[name] = self.last[name]
        for name, snap in self.before.items():
            self.ev.say('%s (%s) before: %s' % (name, self.kinds[name],
                                                snap.describe()))
            self.ev.say('  <os>: %s' % snap.os_xml)

    # --- the upgrade -------------------------------------------------------

    def upgrade_control(self, with_compute: bool) -> None:
        target = checks.TARGETS[self.path.target]
        self.new.upgrade_levels = 'auto' if not with_compute else None
        new = self.new

        def stop() -> str:
            names = ['placement', *CONTROL]
            if with_compute:
                names.append('nova-compute')
            new.stop(names)
            return 'ended %s' % ', '.join(names)
        self.phase('stop', 'the services to upgrade ended', stop)

        def placement() -> str:
            new._commands('placement', [[
                new.bin('placement-manage'), '--config-file',
                new.conf('placement', 'placement.conf'), 'db', 'sync']])
            new._write('placement', 'gunicorn.conf.py',
                       config_mod.gunicorn_conf(
                           placement_app(self.target_venv),
                           config_mod.PORTS['placement'], self.s.host,
                           name='cloud-placement'))
            new.start_api('placement')
            new.wait_api('placement')
            return 'openstack-placement %s: db sync, started' % (
                target.placement)
        self.phase('placement %s' % target.placement,
                   'placement upgraded first', placement)

        def databases() -> str:
            new.write_nova(compute=with_compute)
            shutil.copy(install.data_file(self.target_venv, None, 'nova',
                                          'api-paste.ini'),
                        new.conf('nova', 'api-paste.ini'))
            for args in (('api_db', 'sync'), ('db', 'sync'),
                         ('db', 'online_data_migrations')):
                new.nova_manage(*args)
            return 'nova-manage api_db sync, db sync, db ' \
                'online_data_migrations (nova %s)' % target.nova
        self.phase('nova-manage', 'the schema and data migrations of '
                   'nova %s' % target.nova, databases)

        def start() -> str:
            since = self.db_now()
            new.start_api('nova-api')
            new.wait_api('nova-api')
            for name in CONTROL[1:]:
                new.start_nova(name)
            if with_compute:
                new.start_nova('nova-compute')
                self.compute_version = target.nova
                self.wait_compute(new, since)
            for name in CONTROL[1:]:
                new.wait_log(name, 0, 'Starting %s node (version %s)' % (
                    name.split('-', 1)[1], target.nova))
            return '%s %s started%s' % (
                ', '.join(CONTROL + (('nova-compute',) if with_compute
                                     else ())), target.nova,
                '' if with_compute else
                '; [upgrade_levels] compute = auto; nova-compute stays '
                '29.4.0 (patched)')
        self.phase('nova %s' % target.nova, 'the new services started',
                   start)
        self.phase('service versions', 'the services table as the '
                   'upgraded control plane sees it', self.service_versions)
        self.phase('nova-status upgrade check', 'exit 0', self.nova_status)

    def upgrade_compute(self) -> None:
        target = checks.TARGETS[self.path.target]
        new = self.new

        def compute() -> str:
            new.stop(['nova-compute'])
            since = self.db_now()
            new.write_nova(compute=True)
            new.start_nova('nova-compute')
            self.compute_version = target.nova
            return self.wait_compute(new, since)
        self.phase('nova-compute %s' % target.nova,
                   'the compute restarted on nova %s (unpatched)' %
                   target.nova, compute)
        self.phase('service versions', 'every service upgraded',
                   self.service_versions)

    def wait_compute(self, new: Nova, since: str) -> str:
        """The restarted compute's first report of its state after
        ``since`` (the database's clock): a service reports only once it
        has started, after its first update of the resources (inventory
        and traits) in placement.
        """
        target = checks.TARGETS[self.path.target]
        started = new.wait_log('nova-compute', 0,
                               'Starting compute node (version %s)' %
                               target.nova)
        deadline = time.monotonic() + COMPUTE_TIMEOUT
        while True:
            new._check_alive('nova-compute')
            seen = system.mysql(
                "SELECT updated_at FROM `%snova`.services WHERE `binary` = "
                "'nova-compute' AND deleted = 0 AND updated_at > '%s'" % (
                    DB_PREFIX, since)).strip()
            if seen:
                break
            if time.monotonic() > deadline:
                raise services_mod.ServiceFailed(
                    'nova-compute %s reported no state in %d s' % (
                        target.nova, COMPUTE_TIMEOUT))
            time.sleep(3)
        return '%s; reported its state at %s' % (
            evidence.one_line(started, 120), seen)

    def db_now(self) -> str:
        return system.mysql('SELECT UTC_TIMESTAMP()').strip()

    def service_versions(self) -> str:
        rows = system.mysql(
            'SELECT `binary`, version, IF(disabled, "disabled", "enabled") '
            'FROM `%snova`.services WHERE deleted = 0 ORDER BY `binary`' %
            DB_PREFIX)
        return '; '.join(' '.join(r.split('\t')) for r in rows.splitlines())

    def nova_status(self) -> str:
        argv = [self.new.bin('nova-status'), '--config-file',
                self.new.conf('nova', 'nova.conf'), 'upgrade', 'check']
        proc = subprocess.run(argv, env=self.new.env(), text=True,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=600)
        with open(os.path.join(self.s.log_dir, 'nova-status.log'),
                  'a') as f:
            f.write(proc.stdout)
        ok, seen = checks.status_verdict(proc.returncode, proc.stdout)
        if not ok:
            raise StepError('%s\n%s' % (seen, proc.stdout[-2000:]))
        return seen

    # --- the checks after an upgrade -----------------------------------------

    def together(self, moves: list[Move]) -> None:
        """Each move's action on its server, all at once, then each
        server's firmware checked in turn.

        The guests boot side by side, as a cloud's do: on a host of two
        cores one after the other took twice as long, most of it waiting
        for CPU. A step's time is the wait for its action plus its check;
        a failure shows the service log lines since the first action
        began.
        """
        self.logs.mark()
        pool = concurrent.futures.ThreadPoolExecutor(len(moves))
        try:
            running = [pool.submit(move.action) for move in moves]
            for move, future in zip(moves, running):
                self.step(move.column, move.server, future.result,
                          move.expect, mark=False)
        finally:
            # Interrupted, the teardown must not wait for the moves: their
            # waits end once it has stopped the services they poll.
            pool.shutdown(wait=False, cancel_futures=True)

    def new_server(self, column: str) -> Move:
        self.new_servers += 1
        name = 'fw-new-%s-%d' % (self.path.target, self.new_servers)
        self.kinds[name] = 'stateless'
        return Move(column, name,
                    lambda: self.sc.create(name, 'cloud-stateless'),
                    'a new stateless server boots: one read-only pflash, '
                    'no <nvram>, no NVRAM file')

    def moves(self, column: str) -> None:
        """What the brief asks of the servers after a control plane
        upgrade: a new server; hard reboot the running ones, start the
        stopped one, unshelve the shelved one; then rebuild one.
        """
        moves = [self.new_server(column + ': boot')]
        for name, (kind, state) in checks.SERVERS.items():
            if state == 'ACTIVE':
                moves.append(Move(column + ': reboot --hard', name,
                                  functools.partial(self.hard_reboot, name),
                                  'ACTIVE again; %s firmware as before' %
                                  kind))
        moves += [
            Move(column + ': start', 'fw-stateless-off',
                 functools.partial(self.start, 'fw-stateless-off'),
                 'ACTIVE; stateless as before'),
            Move(column + ': unshelve', 'fw-stateless-shelved',
                 functools.partial(self.unshelve, 'fw-stateless-shelved'),
                 'ACTIVE; stateless as before it was shelved')]
        self.together(moves)
        self.together([Move(column + ': rebuild', 'fw-stateless',
                            functools.partial(self.rebuild, 'fw-stateless',
                                              'cloud-stateless'),
                            'ACTIVE on the same image; stateless')])

    def bad_input(self, column: str) -> None:
        """What the upgraded API does with ``hw_firmware_stateless=ture``,
        which the patched 2024.1 API refuses with a 400: printed, the
        server (if any) deleted.
        """
        proc = self.cli.run(['openstack', 'server', 'create', '--image',
                             'cloud-bad', '--flavor', 'cloud.tiny',
                             '--nic', 'none', '--wait', 'fw-bad'],
                            check=False)
        out = evidence.one_line(proc.stderr + proc.stdout, 300)
        servers = self.cli.os_json('server', 'list', '--name', '^fw-bad$')
        if not servers:
            seen = 'refused (exit %d): %s' % (proc.returncode, out)
        else:
            server = self.status.get('fw-bad')
            seen = 'accepted (exit %d): server %s' % (proc.returncode,
                                                     server['status'])
            if server['status'] == 'ACTIVE':
                self.kinds['fw-bad'] = 'stateless'
                fw = self.snap('fw-bad')
                seen += ', booted with %s' % fw.describe()
            self.cli.os('server', 'delete', '--wait', 'fw-bad')
            self.sc.domains.pop('fw-bad', None)
            self.kinds.pop('fw-bad', None)
        self.ev.say('%s: %s: server create with hw_firmware_stateless=ture: '
                    '%s' % (self.path.name, column, seen))
        self.observations.append('%s, %s: hw_firmware_stateless=ture %s' % (
            self.path.name, column, seen))

    def untouched(self, column: str) -> None:
        """Each server with a domain, as the upgrade left it: nothing
        booted, so a stateful server's NVRAM has the same bytes.
        """
        for name in self.kinds:
            if name in self.sc.domains and name not in self.offloaded:
                self.step(column + ': untouched', name, None,
                          '%s firmware as before, NVRAM byte for byte' %
                          self.kinds[name])

    def every_server(self, column: str) -> None:
        """Hard reboot, then stop and start, each server."""
        names = [n for n in self.kinds if n in self.sc.domains]
        self.together([Move(column + ': reboot --hard', name,
                            functools.partial(self.hard_reboot, name),
                            'ACTIVE; %s firmware as before' %
                            self.kinds[name]) for name in names])
        self.together([Move(column + ': stop, start', name,
                            functools.partial(self.stop_start, name),
                            'SHUTOFF, ACTIVE; %s firmware as before' %
                            self.kinds[name]) for name in names])
        self.together([self.new_server(column + ': boot')])

    # Without ``--wait``: the API has set the task state when it answers,
    # so the status read next is already the move's, and ``--wait`` polls
    # only every five seconds.

    def hard_reboot(self, name: str) -> None:
        self.cli.os('server', 'reboot', '--hard', name)
        self.sc.wait_status(name, 'ACTIVE')

    def start(self, name: str) -> None:
        self.cli.os('server', 'start', name)
        self.sc.wait_status(name, 'ACTIVE')

    def stop_start(self, name: str) -> None:
        self.cli.os('server', 'stop', name)
        self.sc.wait_status(name, 'SHUTOFF')
        self.start(name)

    def unshelve(self, name: str) -> None:
        self.cli.os('server', 'unshelve', name)
        self.sc.wait_status(name, 'ACTIVE')
        self.offloaded.discard(name)

    def rebuild(self, name: str, image: str) -> None:
        self.cli.os('server', 'rebuild', '--image', image, name)
        self.sc.wait_status(name, 'ACTIVE')

    def trait(self, column: str) -> None:
        def check() -> str:
            traits = self.cli.os('resource', 'provider', 'trait', 'list',
                                 self.provider, '-f', 'value').split()
            if scenario_mod.TRAIT not in traits:
                raise StepError('%s lacks %s after the compute\'s first '
                                'update; has %s' % (
                                    self.provider, scenario_mod.TRAIT,
                                    ' '.join(sorted(traits))))
            return '%s on %s (%d traits)' % (scenario_mod.TRAIT,
                                             self.provider, len(traits))
        self.ev.check('%s: %s: trait' % (self.path.name, column),
                      '%s stays on the provider after the upgraded '
                      'compute updated it' % scenario_mod.TRAIT, check)

    def log_grep(self) -> None:
        def check() -> str:
            counts, found = [], []
            for path in self.logs.files():
                with open(path, errors='replace') as f:
                    lines = checks.version_problems(f)
                counts.append('%s %d' % (os.path.basename(path),
                                         len(lines)))
                found += ['%s: %s' % (os.path.basename(path),
                                      evidence.one_line(line, 300))
                          for line in lines]
            self.ev.say('grep -Eic %r %s/*.log:\n  %s' % (
                checks.VERSION_PROBLEMS.pattern, self.s.log_dir,
                ', '.join(counts)))
            if found:
                raise StepError('%d lines: %s' % (len(found),
                                                  ' | '.join(found[:10])))
            return 'no line in %d logs (%s)' % (len(counts),
                                                ', '.join(counts))
        self.ev.check('%s: version problems in the logs' % self.path.name,
                      'no object backport, version or RPC pin error in '
                      'any service log', check)

    # --- the path ------------------------------------------------------------

    def run(self) -> None:
        self.deploy()
        self.servers()
        target = checks.TARGETS[self.path.target]
        if self.path.rolling:
            self.upgrade_control(with_compute=False)
            column = '%s control, 29.4.0 compute' % target.release
            self.untouched(column)
            self.bad_input(column)
            self.moves(column)
            self.log_grep()
            self.upgrade_compute()
            column = '%s compute' % target.release
            self.trait(column)
            self.untouched(column)
            self.every_server(column)
        else:
            self.upgrade_control(with_compute=True)
            column = '%s' % target.release
            self.trait(column)
            self.untouched(column)
            self.bad_input(column)
            self.moves(column)
            self.every_server(column)
        self.log_grep()

    def teardown(self) -> bool:
        return cloud_run.teardown(self.state, self.ev.say, DOMAIN_NAME)


def ports_in_use(host: str = '127.0.0.1') -> list[str]:
    """The API ports of a cloud that something listens on."""
    used = []
    for service, port in config_mod.PORTS.items():
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex((host, port)) == 0:
                used.append('%s:%d' % (service, port))
    return used


def _answers(path: str) -> bool:
    """Whether a daemon listens on the UNIX socket ``path``."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        return sock.connect_ex(path) == 0


def libvirt_start(procs: processes.Processes, s: config_mod.Settings,
                  say: ty.Callable[[str], None]) -> None:
    """The libvirt daemons, unless they answer on their sockets here.

    A daemon of the same name may run in another mount namespace (a
    cloud in a sandbox of its own) with its sockets there: its process
    is no daemon of ours.
    """
    wanted = [(name, sock) for name, sock in libvirt_daemons.DAEMONS
              if not _answers(sock)]
    if not wanted:
        say('libvirt daemons answer: using them, leaving them running')
        return
    reason = libvirt_daemons.why_not(name for name, _sock in wanted)
    if reason:
        raise system.ServiceError('cannot start the libvirt daemons: %s' %
                                  reason)
    for name, sock in wanted:
        proc = libvirt_daemons.start(name, sock, s.log_dir)
        procs.record(name, proc.pid, os.path.join(s.log_dir, name + '.log'),
                     group='system')
        say('%s started (pid %d)' % (name, proc.pid))


def _namespaces(pid: str) -> tuple[str, str]:
    return tuple(os.readlink('/proc/%s/ns/%s' % (pid, ns))
                 for ns in ('net', 'mnt'))


def other_clouds() -> list[str]:
    """Other runs of ``python3 -m tools.cloud`` on this host, read from
    ``/proc`` (their command lines), as 'PID command'. A run in network
    and mount namespaces of its own (its own ports, its own ``/run`` and
    MariaDB) is not in the way.
    """
    found = []
    ours = _namespaces('self')
    for entry in os.listdir('/proc'):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            with open('/proc/%s/cmdline' % entry, 'rb') as f:
                argv = f.read().split(b'\0')
            words = [a.decode(errors='replace') for a in argv if a]
            if not checks.is_cloud_runner(words):
                continue
            theirs = _namespaces(entry)
            if theirs[0] == ours[0] or theirs[1] == ours[1]:
                found.append('%s %s' % (entry, ' '.join(words[1:4])))
    return found


def wait_ports(say: ty.Callable[[str], None],
               timeout: float = PORTS_TIMEOUT) -> None:
    """Wait for another cloud on this host (``tox -e cloud-RELEASE``,
    which has the same ports) to end, its teardown included: the
    MariaDB, RabbitMQ and libvirt daemons it started end with it.
    """
    deadline = time.monotonic() + timeout
    busy = ports_in_use() + other_clouds()
    if busy:
        say('another cloud runs (%s): waiting up to %d s for it to end' % (
            ', '.join(busy), timeout))
    while busy:
        if time.monotonic() > deadline:
            raise cloud_run.SetupFailed('another cloud: %s' % ', '.join(
                busy))
        time.sleep(10)
        busy = ports_in_use() + other_clouds()


def stores(domain: str) -> dict[str, checks.Store]:
    """The NVRAM files of ``domain``, read."""
    out = {}
    for path in scenario_mod.nvram_files(domain):
        with open(path, 'rb') as f:
            out[path] = checks.store_of(f.read())
    return out


def placement_app(venv: str) -> str:
    """The WSGI application placement ships in ``venv``."""
    site = subprocess.run(
        [series_run.venv_python(venv), '-c',
         'import placement, os; print(os.path.dirname(placement.__file__))'],
        text=True, capture_output=True, check=True).stdout.strip()
    if os.path.isfile(os.path.join(site, 'wsgi', 'api.py')):
        return 'placement.wsgi.api:application'
    return 'placement.wsgi:init_application()'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python3 -m tools.cloud.upgrade',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('paths', nargs='*', metavar='PATH',
                        help='%s (default: all, one after the other, '
                             'each from a new 2024.1 cloud)' % ', '.join(
                                 checks.PATHS))
    parser.add_argument('--teardown', action='store_true',
                        help='end the clouds a run left (killed with '
                             'SIGKILL), by the PIDs they recorded')
    parser.add_argument('--work', default=DEFAULT_WORK, metavar='DIR',
                        help='the virtualenvs of the releases upgraded to, '
                             'configuration, logs (default: %(default)s)')
    parser.add_argument('--build', default=cloud_run.DEFAULT_WORK,
                        metavar='DIR',
                        help='where DIR/%s holds the patched tree and its '
                             'virtualenvs; the default is the cloud '
                             'command\'s, so that one build serves both '
                             '(default: %%(default)s)' % RELEASE)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    names = args.paths or list(checks.PATHS)
    unknown = [n for n in names if n not in checks.PATHS]
    if unknown:
        parser.error('unknown path %s (known: %s)' % (
            ', '.join(unknown), ', '.join(checks.PATHS)))
    try:
        with host_lock.held('tox -e upgrade-2024.1 -- %s' % ' '.join(
                ['--teardown'] if args.teardown else names)):
            return _run(args, names)
    except host_lock.HostBusy as ex:
        print('error: %s' % ex)
        return 2


def _run(args: argparse.Namespace, names: list[str]) -> int:
    work = os.path.abspath(args.work)
    os.makedirs(work, exist_ok=True)
    ev = evidence.Evidence()
    left = [n for n in names
            if os.path.isfile(os.path.join(work, n, 'state.json'))]
    if args.teardown:
        clean = True
        for name in left:
            state = processes.State(os.path.join(work, name, 'state.json'))
            clean = cloud_run.teardown(state, ev.say, DOMAIN_NAME) and clean
        ev.say('teardown %s' % ('done' if clean else 'INCOMPLETE'))
        return 0 if clean else 1
    if left:
        ev.say('the cloud of %s was left (%s): end it first with: tox -e '
               'upgrade-2024.1 -- --teardown' % (
                   ', '.join(left), os.path.join(work, left[0],
                                                 'state.json')))
        return 2
    # Its own paths' clouds were refused above; any other cloud is too.
    refusal = cloud_run.kept_cloud_refusal(cloud_run.DEFAULT_WORK)
    if refusal:
        ev.say(refusal)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, cloud_run._interrupt)
    cloud = releases.get(RELEASE)
    rel = release_mod.load(ROOT, RELEASE)
    matrix = checks.Matrix()
    findings: list[str] = []
    observations: list[str] = []
    times: dict[str, float] = {}
    interrupted = None
    clean = True
    try:
        built: list[install.Built] = []
        venvs: dict[str, str] = {}

        def build() -> str:
            system.install_packages(ROOT, ev.say)
            built.append(install.build(rel, cloud, os.path.join(
                os.path.abspath(args.build), RELEASE), ev.say))
            for name in names:
                target = checks.TARGETS[checks.PATHS[name].target]
                venvs[target.release] = build_target(target, work, ev.say)
            return 'nova %s + %d patches; %s' % (
                rel.version, len(rel.patches), '; '.join(
                    'nova %s, placement %s (%s pins)' % (
                        checks.TARGETS[r].nova, checks.TARGETS[r].placement,
                        r) for r in venvs))
        start = ev.clock()
        if not ev.check('build', 'the patched 2024.1 cloud and the '
                        'releases to upgrade to installed', build).ok:
            raise cloud_run.SetupFailed('build')
        times['build'] = ev.clock() - start
        for name in names:
            path = checks.PATHS[name]
            ev.say('=== %s: %s' % (name, path.description))
            up = Upgrade(path, rel, cloud, built[0],
                         venvs[path.target], os.path.join(work, name), ev,
                         matrix)
            start = ev.clock()
            try:
                up.run()
            except cloud_run.SetupFailed as ex:
                ev.say('%s: setup failed at %s; the path stops here' % (
                    name, ex))
            finally:
                times[name] = ev.clock() - start
                findings += up.findings
                observations += up.observations
                ev.say('%s: tearing down' % name)
                t0 = ev.clock()
                ok = up.teardown()
                clean = clean and ok
                ev.say('%s: teardown %s in %.0f s' % (
                    name, 'done' if ok else 'INCOMPLETE', ev.clock() - t0))
    except cloud_run.SetupFailed as ex:
        ev.say('setup failed at %s' % ex)
    except (KeyboardInterrupt, cloud_run.Interrupted) as ex:
        interrupted = str(ex) or 'SIGINT'
        ev.record('interrupted', 'the run to finish', False,
                  'interrupted by %s' % interrupted)
    except Exception as ex:
        traceback.print_exc()
        ev.record('runner', 'no error in the runner', False,
                  '%s: %s' % (type(ex).__name__, ex))
    print('\n' + ev.table(), flush=True)
    print('\nservers x steps (ok; reset: NVRAM recreated by a compute '
          'that does so; FAIL)\n' + matrix.render(), flush=True)
    for line in findings:
        ev.say('FINDING: %s' % line)
    for line in observations:
        ev.say('SEEN: %s' % line)
    failed = bool(ev.failed) or not clean
    ev.say('times: %s' % ', '.join('%s %.0f s' % kv for kv in times.items()))
    ev.say('upgrade %s %s in %.0f s' % (
        ' and '.join(names), 'FAILED' if failed else 'OK',
        ev.clock() - ev.started))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
