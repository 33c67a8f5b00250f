"""The OpenStack services of the cloud: configure, create their
databases' tables, start, register in keystone's catalog.

Each service is its own process, started with its release's own
commands: the APIs under gunicorn with the WSGI application their
packages ship, ``nova-conductor``, ``nova-scheduler`` and
``nova-compute`` as console scripts. Their output goes to
``logs/NAME.log`` under the run's directory.
"""

import concurrent.futures
import json
import os
import re
import shutil
import socket
import subprocess
import time
import typing as ty
import urllib.error
import urllib.request

from tools.cloud import config as config_mod
from tools.cloud import install
from tools.cloud import processes
from tools.cloud import releases
from tools.cloud import system

READY_TIMEOUT = 180.0


class ServiceFailed(Exception):
    pass


def http(method: str, url: str, body: ty.Any = None,
         token: str | None = None, headers: dict | None = None,
         timeout: float = 60) -> tuple[int, dict, ty.Any]:
    """One JSON request; (status, headers, decoded body)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header('Accept', 'application/json')
    if data is not None:
        req.add_header('Content-Type', 'application/json')
    if token:
        req.add_header('X-Auth-Token', token)
    for key, value in (headers or {}).items():
        req.add_header(key, value)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            status, hdrs, raw = resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as ex:
        status, hdrs, raw = ex.code, dict(ex.headers), ex.read()
    try:
        decoded = json.loads(raw) if raw else None
    except ValueError:
        decoded = raw.decode(errors='replace')
    return status, hdrs, decoded


class Keystone:
    """Just enough of keystone's API to build the catalog."""

    def __init__(self, s: config_mod.Settings) -> None:
        self.s = s
        self.token = ''

    def login(self) -> None:
        body = {'auth': {
            'identity': {'methods': ['password'], 'password': {'user': {
                'name': 'admin', 'domain': {'id': 'default'},
                'password': self.s.admin_password}}},
            'scope': {'project': {'name': 'admin',
                                  'domain': {'id': 'default'}}}}}
        status, hdrs, resp = http('POST', self.s.auth_url + '/auth/tokens',
                                  body)
        if status != 201:
            raise ServiceFailed('keystone login: HTTP %d %s' % (status,
                                                                 resp))
        self.token = hdrs['X-Subject-Token']

    def call(self, method: str, path: str, body: ty.Any = None,
             expect: tuple[int, ...] = (200, 201, 204)) -> ty.Any:
        status, _hdrs, resp = http(method, self.s.auth_url + path, body,
                                   self.token)
        if status not in expect:
            raise ServiceFailed('keystone %s %s: HTTP %d %s' % (
                method, path, status, resp))
        return resp

    def register(self) -> None:
        """Project ``service``, the services' users, the catalog."""
        self.login()
        project = self.call('POST', '/projects', {'project': {
            'name': 'service', 'domain_id': 'default'}})['project']['id']
        roles = {r['name']: r['id']
                 for r in self.call('GET', '/roles')['roles']}
        for name in config_mod.SERVICE_USERS:
            user = self.call('POST', '/users', {'user': {
                'name': name, 'domain_id': 'default',
                'password': self.s.service_password}})['user']['id']
            for role in ('admin', 'service'):
                if role in roles:
                    self.call('PUT', '/projects/%s/users/%s/roles/%s' % (
                        project, user, roles[role]))
        for service, (name, kind) in config_mod.CATALOG.items():
            if service == 'keystone':
                continue  # keystone-manage bootstrap made it
            sid = self.call('POST', '/services', {'service': {
                'name': name, 'type': kind}})['service']['id']
            for interface in ('public', 'internal'):
                self.call('POST', '/endpoints', {'endpoint': {
                    'service_id': sid, 'interface': interface,
                    'region_id': self.s.region,
                    'url': self.s.url(service)}})


class Services:
    """The OpenStack side of one cloud."""

    def __init__(self, s: config_mod.Settings, cloud: releases.Cloud,
                 built: install.Built, procs: processes.Processes,
                 say: ty.Callable[[str], None]) -> None:
        self.s = s
        self.cloud = cloud
        self.built = built
        self.procs = procs
        self.say = say

    # --- files ---------------------------------------------------------------

    def conf(self, service: str, name: str) -> str:
        return os.path.join(self.s.conf_dir(service), name)

    def _write(self, service: str, name: str, text: str) -> str:
        path = self.conf(service, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def write_configs(self) -> None:
        s, venv, tree = self.s, self.built.venv, self.built.tree
        ini = config_mod.render_ini
        for service in ('keystone', 'glance', 'placement', 'neutron',
                        'nova'):
            os.makedirs(s.state_dir(service), exist_ok=True)
        os.makedirs(s.log_dir, exist_ok=True)
        os.makedirs(s.instances_path, mode=0o755, exist_ok=True)
        self._write('keystone', 'keystone.conf',
                    ini(config_mod.keystone_conf(s)))
        self._write('glance', 'glance-api.conf',
                    ini(config_mod.glance_conf(s)))
        shutil.copy(install.data_file(venv, None, 'glance',
                                      'glance-api-paste.ini'),
                    self.conf('glance', 'glance-api-paste.ini'))
        self._write('placement', 'placement.conf',
                    ini(config_mod.placement_conf(s)))
        self._write('neutron', 'neutron.conf',
                    ini(config_mod.neutron_conf(s)))
        self._write('neutron', 'ml2_conf.ini', ini(config_mod.ml2_conf(s)))
        self._write('nova', 'nova.conf', ini(config_mod.nova_conf(s)))
        self._write('nova', 'nova-compute.conf',
                    ini(config_mod.nova_compute_conf(s)))
        shutil.copy(install.data_file(venv, tree, 'nova', 'api-paste.ini'),
                    self.conf('nova', 'api-paste.ini'))
        for service, app in self.cloud.apps.items():
            self._write(service, 'gunicorn.conf.py', config_mod.gunicorn_conf(
                app, config_mod.PORTS[service], s.host,
                workers=2 if service == 'keystone' else 1,
                name='cloud-%s' % service))
        with open(os.path.join(s.run_dir, 'openrc'), 'w') as f:
            f.write(config_mod.openrc(s))

    def env(self, venv: str | None = None) -> dict[str, str]:
        """What every service process gets: the config directories the
        WSGI applications read, the virtualenv first on the path.
        """
        env = dict(os.environ)
        env['PATH'] = os.pathsep.join((os.path.join(
            venv or self.built.venv, 'bin'), env.get('PATH', '')))
        env.pop('PYTHONPATH', None)
        # tox keeps bytecode out of the tree; these processes import from
        # the virtualenvs, where cached bytecode saves each start the
        # compiling of everything it imports.
        env.pop('PYTHONDONTWRITEBYTECODE', None)
        env.update({
            'OS_KEYSTONE_CONFIG_DIR': self.s.conf_dir('keystone'),
            'OS_GLANCE_CONFIG_DIR': self.s.conf_dir('glance'),
            'OS_PLACEMENT_CONFIG_DIR': self.s.conf_dir('placement'),
            'OS_NEUTRON_CONFIG_DIR': self.s.conf_dir('neutron'),
            'OS_NEUTRON_CONFIG_FILES': 'neutron.conf;ml2_conf.ini',
            'OS_NOVA_CONFIG_DIR': self.s.conf_dir('nova'),
        })
        return env

    def bin(self, name: str, venv: str | None = None) -> str:
        return os.path.join(venv or self.built.venv, 'bin', name)

    # --- databases -----------------------------------------------------------

    def _commands(self, name: str, commands: list[list[str]],
                  venv: str | None = None) -> None:
        log = os.path.join(self.s.log_dir, '%s-manage.log' % name)
        for argv in commands:
            start = time.monotonic()
            with open(log, 'a') as out:
                out.write('$ %s\n' % ' '.join(argv))
                out.flush()
                rc = subprocess.call(argv, env=self.env(venv),
                                     stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)
            if rc != 0:
                raise ServiceFailed('%s exited %d (log %s)' % (
                    _command_name(argv), rc, log))
            self.say('%s: %s (%.0f s)' % (
                name, _command_name(argv), time.monotonic() - start))

    def sync_databases(self) -> None:
        """Every service's tables, the keystone admin, nova's cells; the
        services side by side, each its commands in order.
        """
        s = self.s
        kconf = ['--config-file', self.conf('keystone', 'keystone.conf')]
        nconf = ['--config-file', self.conf('nova', 'nova.conf')]
        jobs = {
            'keystone': [
                [self.bin('keystone-manage'), *kconf, 'db_sync'],
                [self.bin('keystone-manage'), *kconf, 'fernet_setup',
                 '--keystone-user', 'root', '--keystone-group', 'root'],
                [self.bin('keystone-manage'), *kconf, 'credential_setup',
                 '--keystone-user', 'root', '--keystone-group', 'root'],
                [self.bin('keystone-manage'), *kconf, 'bootstrap',
                 '--bootstrap-password', s.admin_password,
                 '--bootstrap-admin-url', s.auth_url,
                 '--bootstrap-internal-url', s.auth_url,
                 '--bootstrap-public-url', s.auth_url,
                 '--bootstrap-region-id', s.region],
            ],
            'glance': [[self.bin('glance-manage'), '--config-file',
                        self.conf('glance', 'glance-api.conf'), 'db_sync']],
            'neutron': [[self.bin('neutron-db-manage'), '--config-file',
                         self.conf('neutron', 'neutron.conf'),
                         '--config-file', self.conf('neutron', 'ml2_conf.ini'),
                         'upgrade', 'heads']],
            'nova': [
                [self.bin('nova-manage'), *nconf, 'api_db', 'sync'],
                [self.bin('nova-manage'), *nconf, 'cell_v2', 'map_cell0',
                 '--database_connection', s.db_url('nova_cell0')],
                [self.bin('nova-manage'), *nconf, 'cell_v2', 'create_cell',
                 '--name', 'cell1'],
                [self.bin('nova-manage'), *nconf, 'db', 'sync'],
            ],
        }
        placement = [[self.bin('placement-manage', self.built.placement_venv),
                      '--config-file',
                      self.conf('placement', 'placement.conf'), 'db', 'sync']]
        with concurrent.futures.ThreadPoolExecutor(len(jobs) + 1) as pool:
            futures = [pool.submit(self._commands, name, cmds)
                       for name, cmds in jobs.items()]
            futures.append(pool.submit(self._commands, 'placement',
                                       placement, self.built.placement_venv))
            for future in futures:
                future.result()

    # --- processes -----------------------------------------------------------

    def start_api(self, service: str) -> None:
        venv = (self.built.placement_venv if service == 'placement'
                else self.built.venv)
        _check_port_free(self.s.host, config_mod.PORTS[service])
        self.procs.start(service, [self.bin('gunicorn', venv)],
                         log=os.path.join(self.s.log_dir, service + '.log'),
                         env=self.env(venv), cwd=self.s.conf_dir(service))

    def wait_api(self, service: str) -> None:
        url = self.s.url(service)
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            self._check_alive(service)
            try:
                http('GET', url, timeout=10)
                return
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise ServiceFailed('%s did not answer at %s in %d s' % (
                    service, url, READY_TIMEOUT))
            time.sleep(0.5)

    def _check_alive(self, name: str) -> None:
        entries = [e for e in self.procs.state.processes
                   if e['name'] == name]
        if entries and not processes.alive(entries[-1]['pid'],
                                           entries[-1].get('start_time')):
            raise ServiceFailed('%s exited; see %s' % (name,
                                                        entries[-1]['log']))

    def neutron_models(self) -> None:
        """A first query of neutron's database, before nova's.

        Neutron's models get their relationships at the first query
        (SQLAlchemy configures the mappers then); a port query before
        any, as nova's first call to neutron is, fails with HTTP 500
        ("type object 'Port' has no attribute 'port_forwardings'").
        neutron-server runs queries of its own at start; its API alone
        under WSGI does not.
        """
        ks = Keystone(self.s)
        ks.login()
        status, _h, body = http('GET', self.s.url('neutron') +
                                '/v2.0/networks', token=ks.token)
        if status != 200:
            raise ServiceFailed('neutron: GET /v2.0/networks: HTTP %d %s' %
                                (status, body))
        self.say('neutron lists networks (%d)' % len(body['networks']))

    def start_nova(self, name: str) -> None:
        conf = self.conf('nova', 'nova-compute.conf' if name == 'nova-compute'
                         else 'nova.conf')
        self.procs.start(name, [self.bin(name), '--config-file', conf],
                         log=os.path.join(self.s.log_dir, name + '.log'),
                         env=self.env())

    def start_all(self) -> None:
        self.start_api('keystone')
        self.wait_api('keystone')
        Keystone(self.s).register()
        self.say('keystone: service users and catalog registered')
        apis = [a for a in releases.API_SERVICES if a != 'keystone']
        for service in apis:
            self.start_api(service)
        for service in apis:
            self.wait_api(service)
            self.say('%s answers at %s' % (service, self.s.url(service)))
        self.neutron_models()
        for name in ('nova-conductor', 'nova-scheduler', 'nova-compute'):
            self.start_nova(name)

    def write_compute_config(self, compute: config_mod.Compute) -> str:
        """The configuration file and directories of another compute."""
        os.makedirs(self.s.state_dir(compute.name), exist_ok=True)
        os.makedirs(compute.instances_on_host, mode=0o755, exist_ok=True)
        return self._write('nova', compute.name + '.conf',
                           config_mod.render_ini(config_mod.nova_compute_conf(
                               self.s, compute)))

    def start_compute(self, compute: config_mod.Compute,
                      holder: int) -> None:
        """Start another nova-compute, from its own virtualenv, on the
        second host ``holder`` holds (:func:`system.host_start`): its
        host name, its libvirt daemons.

        The libvirt driver names its hypervisor (and so its resource
        provider) after the host name libvirt reports, which is the
        kernel's: on the same UTS namespace a second compute would
        report the first one's name, which placement refuses for a
        second provider.
        """
        conf = self.conf('nova', compute.name + '.conf')
        argv = system.in_host(holder, [
            self.bin('nova-compute', compute.venv), '--config-file', conf])
        self.procs.start(compute.name, argv,
                         log=os.path.join(self.s.log_dir,
                                          compute.name + '.log'),
                         env=self.env(compute.venv))

    def wait_compute(self, hostname: str, name: str = 'nova-compute') -> str:
        """The compute's resource provider, once it exists; then the
        compute is mapped into cell1.
        """
        ks = Keystone(self.s)
        ks.login()
        url = '%s/resource_providers?name=%s' % (self.s.url('placement'),
                                                 hostname)
        deadline = time.monotonic() + READY_TIMEOUT
        restarted = False
        while True:
            try:
                self._check_alive(name)
            except ServiceFailed:
                if (restarted or name != 'nova-compute' or
                        not self._refused_as_new_host()):
                    raise
                # Nova refuses to start a new compute service on a
                # hypervisor that has domains: on a libvirt daemon
                # shared with others, theirs count. The service record
                # exists now, and a second start does not check again.
                self.say('nova-compute refused to start: the libvirt daemon '
                         'had domains of others (%s); starting it again' % (
                             ', '.join(self._foreign_domains()) or
                             'gone now'))
                self.start_nova('nova-compute')
                restarted = True
            status, _h, body = http('GET', url, token=ks.token)
            if status == 200 and body['resource_providers']:
                uuid = body['resource_providers'][0]['uuid']
                break
            if time.monotonic() > deadline:
                raise ServiceFailed(
                    'nova-compute made no resource provider in %d s' %
                    READY_TIMEOUT)
            time.sleep(1)
        self._commands('nova', [[self.bin('nova-manage'), '--config-file',
                                 self.conf('nova', 'nova.conf'), 'cell_v2',
                                 'discover_hosts', '--verbose']])
        return uuid

    def _refused_as_new_host(self) -> bool:
        log = os.path.join(self.s.log_dir, 'nova-compute.log')
        with open(log, errors='replace') as f:
            return 'My hypervisor has existing instances' in f.read()

    def _foreign_domains(self) -> list[str]:
        proc = subprocess.run(['virsh', '-c', 'qemu:///system', 'list',
                               '--all', '--name'], text=True,
                              capture_output=True, stdin=subprocess.DEVNULL)
        return [n for n in proc.stdout.split()
                if not n.startswith('cloud-')]


def compute_version(log: str) -> str:
    """The version nova-compute says it starts, from its log."""
    with open(log, errors='replace') as f:
        for line in f:
            match = re.search(r'Starting compute node \(version ([^)]+)\)',
                              line)
            if match:
                return match.group(1)
    return '(version not logged)'


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        if sock.connect_ex((host, port)) == 0:
            raise ServiceFailed('%s:%d is already in use' % (host, port))


def _command_name(argv: list[str]) -> str:
    """``keystone-manage db_sync`` of a command line with its options."""
    words, skip = [os.path.basename(argv[0])], False
    for arg in argv[1:]:
        if skip:
            skip = False
        elif arg.startswith('--'):
            skip = '=' not in arg and arg != '--verbose'
        else:
            words.append(arg)
    return ' '.join(words)
