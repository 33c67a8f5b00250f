"""An all-in-one cloud on a patched Nova release, in one command.

``python3 -m tools.cloud RELEASE`` (``tox -e cloud-RELEASE``):

1. install MariaDB and RabbitMQ from Debian when missing (``bindep.txt``,
   profile ``cloud``), and build the patched Nova with ``tools.series``
   into a virtualenv under ``.tox/cloud/RELEASE`` with keystone, glance,
   placement, neutron and the clients of the same cycle;
2. start MariaDB, RabbitMQ and the libvirt daemons, then keystone, glance
   (file store), placement, neutron (ML2, no agents), nova-api,
   nova-conductor, nova-scheduler and nova-compute (``qemu:///system``),
   each its own process, all on 127.0.0.1;
3. run the scenario through ``openstack`` (:mod:`tools.cloud.scenario`)
   and print a line per step and a table at the end; a second compute,
   the release as published, and before the live migration a third, a
   patched peer, each on a host of its own on this kernel;
4. tear everything down: every process it started ended by its PID, the
   databases dropped, no domain left in libvirt; also when a step fails
   or the run is interrupted (SIGINT, SIGTERM).

``--keep`` leaves the cloud up and prints how to reach it;
``--teardown`` ends a kept cloud by the PIDs it recorded.
"""

import argparse
import contextlib
import glob
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
from tools.cloud import install
from tools.cloud import processes
from tools.cloud import releases
from tools.cloud import scenario as scenario_mod
from tools.cloud import services as services_mod
from tools.cloud import system
from tools import host_lock
from tools.series import release as release_mod
from tools.series import run as series_run

ROOT = series_run.ROOT
DEFAULT_WORK = os.path.join(ROOT, '.tox', 'cloud')
#: Where the upgrade command (tools/cloud/upgrade.py) keeps its clouds.
UPGRADE_WORK = os.path.join(ROOT, '.tox', 'upgrade')
#: The guests' disks: where the QEMU user of the libvirt daemon can reach
#: them (the work tree's .tox is private to root).
INSTANCES_ROOT = '/var/lib/nova-cloud'


#: The domains this cloud's computes name: the patched ones' (a guest
#: that live-migrated keeps its name on the peer) and the unpatched one's.
CLOUD_DOMAINS = tuple(scenario_mod.name_pattern(template) for template in (
    config_mod.INSTANCE_NAME_TEMPLATE, config_mod.UNPATCHED_NAME_TEMPLATE))


class Interrupted(BaseException):
    """A signal ends the run: like KeyboardInterrupt, no step catches
    it.
    """


class SetupFailed(Exception):
    pass


def _interrupt(signum: int, _frame: ty.Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


def settings_for(work: str, name: str, built: install.Built | None,
                 state: processes.State) -> config_mod.Settings:
    """New secrets for a new cloud, or the recorded ones of a kept one."""
    saved = state['settings']
    if saved:
        return config_mod.Settings(**saved)
    venv = built.venv if built else os.path.join(work, 'venv')
    s = config_mod.Settings(
        run_dir=os.path.join(work, 'run'),
        venv=venv,
        placement_venv=built.placement_venv if built else venv,
        db_password=secrets.token_hex(12),
        rabbit_password=secrets.token_hex(12),
        service_password=secrets.token_hex(12),
        admin_password=secrets.token_hex(12),
        instances_path=os.path.join(INSTANCES_ROOT, name, 'instances'),
        unpatched_venv=os.path.join(work, 'venv-unpatched'),
    )
    state['settings'] = {f: getattr(s, f)
                         for f in s.__dataclass_fields__}
    return s


def cloud_pids(state: processes.State, procs: processes.Processes
               ) -> set[int]:
    pids = procs.pids()
    for key in ('mariadb', 'rabbitmq'):
        info = state[key] or {}
        if info.get('pid') and processes.alive(info['pid'], None):
            pids.add(info['pid'])
            pids.update(processes.children(info['pid']))
    return pids


def teardown(state: processes.State, say: ty.Callable[[str], None],
             domain_pattern: ty.Pattern[str] | None = None) -> bool:
    """End and remove everything ``state`` records; True when clean.

    ``domain_pattern``: the names of the domains the cloud made, when its
    instance name template is not this module's.
    """
    old = {sig: signal.signal(sig, signal.SIG_IGN)
           for sig in (signal.SIGINT, signal.SIGTERM)}
    clean = True
    try:
        procs = processes.Processes(state, say)
        procs.stop_all('openstack')
        saved = state['settings'] or {}
        try:
            clean = remove_domains(say, pattern=domain_pattern) and clean
            for holder in system.host_holders(state).values():
                clean = remove_domains(say, holder) and clean
        except Exception as ex:
            say('domains: %s' % ex)
            clean = False
        for group in sorted({e.get('group', '') for e in state.processes
                             if e.get('group', '').startswith(
                                 system.HOST_GROUP)}):
            procs.stop_all(group)
        if saved.get('instances_path'):
            top = os.path.dirname(saved['instances_path'])
            end_guests_under(top, say)
            shutil.rmtree(top, ignore_errors=True)
        mariadb = state['mariadb'] or {}
        if saved and mariadb.get('pid') and processes.alive(
                mariadb['pid'], None):
            try:
                dropped = system.drop_databases(saved['db_prefix'],
                                                saved['db_user'])
                say('databases dropped: %s' % (', '.join(dropped) or
                                               'none left'))
            except system.ServiceError as ex:
                say('databases: %s' % ex)
                clean = False
        system.rabbitmq_stop(state, say)
        system.mariadb_stop(state, say)
        procs.stop_all('system')
        left = state.running()
        if left:
            say('still running: %s' % left)
            clean = False
        else:
            state['settings'] = None
            os.unlink(state.path)
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return clean


def end_guests_under(top: str, say: ty.Callable[[str], None]) -> None:
    """End QEMU processes whose disks are under ``top`` (the cloud's),
    should a libvirt daemon that ended have left any; each is known by
    its command line, which names its files.
    """
    root = os.path.join(top, '')
    for pid in processes.with_argument(root, 'qemu'):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        say('QEMU (pid %d) of a guest under %s ended' % (pid, top))


def remove_domains(say: ty.Callable[[str], None],
                   holder: int | None = None,
                   pattern: ty.Pattern[str] | None = None) -> bool:
    """Destroy and undefine what this cloud's name templates made (or
    the domains ``pattern`` matches); with ``holder``, on the second host
    it holds.
    """
    virsh = ['virsh', '-c', 'qemu:///system']
    if holder:
        virsh = system.in_host(holder, virsh)
    proc = subprocess.run(virsh + ['list', '--all', '--name'], text=True,
                          capture_output=True, stdin=subprocess.DEVNULL,
                          timeout=60)
    if proc.returncode != 0:
        say('libvirt not reachable, no domain to remove: %s' %
            proc.stderr.strip())
        return True
    domains = []
    for each in ([pattern] if pattern else CLOUD_DOMAINS):
        domains += scenario_mod.cloud_domains(proc.stdout, each)
    for name in domains:
        for args in (['destroy', name], ['undefine', '--nvram', name]):
            subprocess.run(virsh + args, capture_output=True,
                           stdin=subprocess.DEVNULL, timeout=120)
        say('domain %s left by the run: destroyed and undefined' % name)
    return True


def up(args: argparse.Namespace, rel: release_mod.Release,
       cloud: releases.Cloud, work: str, state: processes.State,
       procs: processes.Processes, ev: evidence.Evidence
       ) -> tuple[config_mod.Settings, install.Built, str]:
    """Install and start the cloud; each phase a step."""
    def phase(name: str, expect: str, func: ty.Callable[[], str]) -> None:
        if not ev.check(name, expect, func).ok:
            raise SetupFailed(name)

    built: list[install.Built] = []

    def packages() -> str:
        system.install_packages(ROOT, ev.say)
        return 'mariadb-server, rabbitmq-server, libvirt, QEMU, OVMF present'
    phase('system packages', 'bindep.txt (profile cloud) installed',
          packages)

    def build() -> str:
        built.append(install.build(rel, cloud, work, ev.say))
        return 'nova %s + %d patches; %s%s' % (
            rel.version, len(rel.patches), ', '.join(cloud.services),
            '; placement with os-traits %s' % cloud.placement_os_traits
            if cloud.placement_os_traits else '')
    phase('build', 'the patched nova and its cycle\'s services installed',
          build)
    if cloud.placement_os_traits:
        ev.say('NOTE: %s' % cloud.placement_note)
    s = settings_for(work, rel.name, built[0], state)
    shutil.rmtree(s.run_dir, ignore_errors=True)
    os.makedirs(s.log_dir)
    svc = services_mod.Services(s, cloud, built[0], procs, ev.say)

    def system_services() -> str:
        system.libvirt_start(state, procs, s, ev.say)
        system.mariadb_start(state, ev.say)
        system.rabbitmq_start(state, procs, s, ev.say)
        return 'libvirt, MariaDB, RabbitMQ up'
    phase('system services', 'libvirt daemons, MariaDB and RabbitMQ '
          'running on loopback', system_services)

    def databases() -> str:
        system.create_databases(s)
        svc.write_configs()
        svc.sync_databases()
        return '%d databases, tables synced, keystone bootstrapped' % len(
            config_mod.DATABASES)
    phase('databases', 'every service\'s tables created', databases)

    def start() -> str:
        svc.start_all()
        return ', '.join(releases.API_SERVICES) + (
            ', nova-conductor, nova-scheduler, nova-compute started')
    phase('services', 'each service its own process, answering', start)

    hostname = socket.gethostname()
    provider: list[str] = []

    def compute() -> str:
        provider.append(svc.wait_compute(hostname))
        return 'provider %s (%s), host mapped to cell1' % (provider[0],
                                                            hostname)
    phase('compute', 'nova-compute reports to placement and is mapped',
          compute)
    return s, built[0], provider[0]


def start_on_second_host(compute: config_mod.Compute, cloud: releases.Cloud,
                         s: config_mod.Settings, built: install.Built,
                         procs: processes.Processes,
                         ev: evidence.Evidence) -> tuple[str, int]:
    """``compute`` on a second host of its own
    (:func:`system.host_start`); its provider and the PID holding its
    host, once it reports to placement and is mapped.
    """
    holder = system.host_start(compute, procs, s.log_dir, ev.say)
    svc = services_mod.Services(s, cloud, built, procs, ev.say)
    svc.write_compute_config(compute)
    svc.start_compute(compute, holder)
    return svc.wait_compute(compute.host, compute.name), holder


def up_unpatched(rel: release_mod.Release, cloud: releases.Cloud,
                 work: str, s: config_mod.Settings, built: install.Built,
                 procs: processes.Processes, ev: evidence.Evidence
                 ) -> tuple[config_mod.Compute, str, int] | None:
    """The second compute: the release as published, as a compute is
    midway through a rollout of the series, on a second host of its own;
    (compute, its provider, the PID holding its host) or None if it did
    not start.
    """
    compute = config_mod.unpatched_compute(s, socket.gethostname())
    started: list[tuple[str, int]] = []

    def start() -> str:
        install.build_unpatched(rel, work, ev.say)
        started.append(start_on_second_host(compute, cloud, s, built, procs,
                                            ev))
        version = services_mod.compute_version(
            os.path.join(s.log_dir, compute.name + '.log'))
        return ('nova-compute %s (no patch, %s) on host %s: its own '
                'libvirtd and virtlogd (%s); provider %s, mapped to '
                'cell1' % (version, os.path.relpath(compute.venv, work),
                           compute.host, compute.libvirt_root,
                           started[0][0]))
    step = ev.check('unpatched compute',
                    'nova %s as published (same pins, own virtualenv) on a '
                    'host of its own: its host name, its libvirt daemons; '
                    'reports to placement and is mapped' % rel.version,
                    start)
    if not step.ok:
        return None
    return compute, started[0][0], started[0][1]


def up_peer(rel: release_mod.Release, cloud: releases.Cloud,
            s: config_mod.Settings, built: install.Built,
            procs: processes.Processes, ev: evidence.Evidence
            ) -> tuple[config_mod.Compute, str, int] | None:
    """The patched compute's peer, to live-migrate to
    (:func:`config_mod.peer_compute`); as :func:`up_unpatched`.
    """
    compute = config_mod.peer_compute(s, socket.gethostname())
    started: list[tuple[str, int]] = []

    def start() -> str:
        started.append(start_on_second_host(compute, cloud, s, built, procs,
                                            ev))
        return ('nova-compute on host %s from the patched virtualenv: its '
                'own libvirtd and virtlogd (%s), instance directory %s; '
                'provider %s, mapped to cell1' % (
                    compute.host, compute.libvirt_root,
                    compute.instances_path, started[0][0]))
    step = ev.check('peer compute',
                    'a second compute of nova %s patched, on a host of its '
                    'own with its own instance storage; reports to placement '
                    'and is mapped' % rel.version, start)
    if not step.ok:
        return None
    return compute, started[0][0], started[0][1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python3 -m tools.cloud',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('release', help='2024.1, 2026.1 or 2026.2 (a series/ '
                        'directory with a cloud in tools/cloud/releases.py)')
    parser.add_argument('--keep', action='store_true',
                        help='leave the cloud running; print its openrc '
                             'and how to tear it down')
    parser.add_argument('--teardown', action='store_true',
                        help='end a cloud kept with --keep, by the PIDs it '
                             'recorded, and drop its databases')
    parser.add_argument('--no-moves', action='store_true',
                        help='skip rebuild, resize, shelve and rescue')
    parser.add_argument('--single-compute', action='store_true',
                        help='no other compute: neither the release as '
                             'published nor a patched peer')
    parser.add_argument('--no-live-migration', action='store_true',
                        help='no patched peer compute, and no live '
                             'migration to it')
    parser.add_argument('--work', default=DEFAULT_WORK, metavar='DIR',
                        help='virtualenvs, configuration, logs '
                             '(default: %(default)s)')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    name = args.release
    if name.startswith('cloud-'):
        name = name[len('cloud-'):]
    try:
        cloud = releases.get(name)
        rel = release_mod.load(ROOT, name)
    except (KeyError, release_mod.SeriesError) as ex:
        print('error: %s' % ex.args[0])
        return 2
    try:
        with host_lock.held('tox -e cloud-%s%s' % (
                rel.name, ' -- --teardown' if args.teardown else '')):
            return _run(args, cloud, rel)
    except host_lock.HostBusy as ex:
        print('error: %s' % ex)
        return 2


def kept_clouds(top: str, own: ty.Optional[str] = None) -> list[str]:
    """The state files of clouds kept, or left, under ``top``, but ``own``.

    Their services still hold the ports, databases and libvirt daemons a
    new cloud would start, after their runs (and so their locks) ended.
    """
    return sorted(
        p for p in glob.glob(os.path.join(top, '*', 'state.json'))
        if own is None or os.path.abspath(p) != os.path.abspath(own))


def kept_cloud_refusal(clouds: str,
                       own: ty.Optional[str] = None) -> ty.Optional[str]:
    """Why a new cloud or upgrade cannot start, or None.

    :param clouds: the work directory of the cloud command's clouds; the
        upgrade command's are looked at too.
    :param own: the state file of the run asking, not counted.
    """
    for top, teardown in ((clouds, 'tox -e cloud-%s -- --teardown'),
                          (UPGRADE_WORK, 'tox -e upgrade-2024.1 -- '
                           '--teardown')):
        for path in kept_clouds(top, own):
            name = os.path.basename(os.path.dirname(path))
            return ('the cloud of %s is kept or was left (%s) and holds '
                    'the services this one needs: end it first with: %s' %
                    (name, path, teardown.replace('%s', name)))
    return None


def _run(args: argparse.Namespace, cloud: releases.Cloud,
         rel: release_mod.Release) -> int:
    work = os.path.join(os.path.abspath(args.work), rel.name)
    os.makedirs(work, exist_ok=True)
    state = processes.State(os.path.join(work, 'state.json'))
    ev = evidence.Evidence()
    teardown_cmd = 'tox -e cloud-%s -- --teardown' % rel.name
    if args.teardown:
        if not os.path.isfile(state.path):
            ev.say('no kept cloud for %s' % rel.name)
            return 0
        ok = teardown(state, ev.say)
        ev.say('teardown %s' % ('done' if ok else 'INCOMPLETE'))
        return 0 if ok else 1
    if os.path.isfile(state.path):
        ev.say('a cloud for %s is kept or was left (%s): end it first '
               'with: %s' % (rel.name, state.path, teardown_cmd))
        return 2
    refusal = kept_cloud_refusal(os.path.abspath(args.work), state.path)
    if refusal:
        ev.say(refusal)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)
    procs = processes.Processes(state, ev.say)
    ev.say('cloud %s: nova %s with %d patches from series/%s' % (
        rel.name, rel.version, len(rel.patches), rel.name))
    s = None
    interrupted = None
    try:
        s, built, provider = up(args, rel, cloud, work, state, procs, ev)
        cli = scenario_mod.Cli(built.venv, config_mod.admin_env(s),
                               os.path.join(s.log_dir, 'scenario.log'))
        second = None
        unpatched = (None if args.single_compute else
                     up_unpatched(rel, cloud, work, s, built, procs, ev))
        if unpatched:
            compute, second_provider, holder = unpatched
            second = scenario_mod.SecondHost(
                cli, compute, second_provider, holder,
                log=os.path.join(s.log_dir, compute.name + '.log'))
        keystone = services_mod.Keystone(s)
        keystone.login()
        status = scenario_mod.ServerStatus(s.url('nova-api'),
                                           lambda: keystone.token)

        def start_peer() -> scenario_mod.SecondHost | None:
            peer = up_peer(rel, cloud, s, built, procs, ev)
            if peer is None:
                return None
            compute, peer_provider, holder = peer
            return scenario_mod.SecondHost(
                cli, compute, peer_provider, holder,
                log=os.path.join(s.log_dir, compute.name + '.log'))
        scenario = scenario_mod.Scenario(
            cli, ev, socket.gethostname(), provider, s.run_dir, status,
            second=second, cloud=cloud,
            start_peer=None if (args.single_compute or
                                args.no_live_migration) else start_peer,
            compute_log=os.path.join(s.log_dir, 'nova-compute.log'),
            instances_path=s.instances_path)
        scenario.run(cloud_pids(state, procs), moves=not args.no_moves)
    except SetupFailed as ex:
        ev.say('setup failed at %s; the scenario does not run' % ex)
    except (KeyboardInterrupt, Interrupted) as ex:
        interrupted = str(ex) or 'SIGINT'
        ev.record('interrupted', 'the run to finish', False,
                  'interrupted by %s' % interrupted)
    except Exception as ex:
        traceback.print_exc()
        ev.record('runner', 'no error in the runner', False,
                  '%s: %s' % (type(ex).__name__, ex))
    failed = bool(ev.failed)
    print('\n' + ev.table(), flush=True)
    log_dir = s.log_dir if s else os.path.join(work, 'run', 'logs')
    if args.keep and not interrupted:
        openrc = os.path.join(s.run_dir, 'openrc') if s else None
        ev.say('kept the cloud running.')
        if openrc and os.path.isfile(openrc):
            ev.say('reach it with: source %s; openstack server list' %
                   openrc)
        ev.say('service logs: %s' % log_dir)
        ev.say('tear it down with: %s' % teardown_cmd)
        return 1 if failed else 0
    start = time.monotonic()
    ev.say('tearing down')
    clean = teardown(state, ev.say)
    ev.say('teardown %s in %.0f s' % ('done' if clean else 'INCOMPLETE',
                                     time.monotonic() - start))
    if failed or not clean:
        ev.say('service logs kept in %s' % log_dir)
    ev.say('cloud %s %s in %.0f s' % (
        rel.name, 'FAILED' if failed or not clean else 'OK',
        ev.clock() - ev.started))
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    return 1 if failed or not clean else 0
