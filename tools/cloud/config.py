"""The configuration files of an all-in-one cloud, rendered from one
:class:`Settings`.

Everything here is pure: it returns text or dicts, and the tests read
them without a cloud. Every service listens on 127.0.0.1 only and keeps
its state under the run's directory, except the guests' disks, which
the libvirt daemon's QEMU user must be able to reach (see
``Settings.instances_path``).
"""

import dataclasses
import os
import typing as ty

#: Where each API listens (the ports devstack gives them).
PORTS = {
    'keystone': 5000,
    'glance': 9292,
    'placement': 8778,
    'neutron': 9696,
    'nova-api': 8774,
}

#: The path of each API's endpoint under its URL, as the catalog has it.
ENDPOINT_PATHS = {
    'keystone': '/v3',
    'glance': '',
    'placement': '',
    'neutron': '',
    'nova-api': '/v2.1',
}

#: (catalog name, type) of each API in the keystone catalog.
CATALOG = {
    'keystone': ('keystone', 'identity'),
    'glance': ('glance', 'image'),
    'placement': ('placement', 'placement'),
    'neutron': ('neutron', 'network'),
    'nova-api': ('nova', 'compute'),
}

#: The keystone users of the services, in project ``service``.
SERVICE_USERS = ('glance', 'placement', 'neutron', 'nova')

#: Databases by what uses them; the names get ``Settings.db_prefix``.
DATABASES = ('keystone', 'glance', 'placement', 'neutron', 'nova_api',
             'nova', 'nova_cell0')

#: The libvirt domain names of this cloud's guests: the compute never
#: names or touches a domain outside this prefix.
INSTANCE_NAME_TEMPLATE = 'cloud-%08x'

#: Where a libvirt daemon keeps the guests' NVRAM files.
NVRAM_DIR = '/var/lib/libvirt/qemu/nvram'

#: The domain names of the second, unpatched compute's guests.
UNPATCHED_NAME_TEMPLATE = 'cloud2-%08x'

#: The compute and placement microversions the scenario talks with:
#: 2.37 for ``--nic none``, 1.17 for required traits.
COMPUTE_API_VERSION = '2.74'
PLACEMENT_API_VERSION = '1.17'

Value = ty.Union[str, int, bool, None, ty.Sequence[str]]


@dataclasses.dataclass(frozen=True)
class Settings:
    """One cloud's paths, ports and secrets."""
    run_dir: str
    venv: str
    placement_venv: str
    db_password: str
    rabbit_password: str
    service_password: str
    admin_password: str
    instances_path: str
    db_user: str = 'cloud'
    db_prefix: str = 'cloud_'
    rabbit_user: str = 'cloud'
    host: str = '127.0.0.1'
    region: str = 'RegionOne'
    #: The unpatched release's virtualenv, for the second compute.
    unpatched_venv: str = ''

    def db_name(self, name: str) -> str:
        return self.db_prefix + name

    def db_url(self, name: str) -> str:
        return 'mysql+pymysql://%s:%s@%s/%s?charset=utf8' % (
            self.db_user, self.db_password, self.host, self.db_name(name))

    @property
    def transport_url(self) -> str:
        return 'rabbit://%s:%s@%s:5672/' % (
            self.rabbit_user, self.rabbit_password, self.host)

    def url(self, service: str) -> str:
        return 'http://%s:%d%s' % (self.host, PORTS[service],
                                   ENDPOINT_PATHS[service])

    @property
    def auth_url(self) -> str:
        return self.url('keystone')

    def conf_dir(self, service: str) -> str:
        return os.path.join(self.run_dir, 'etc', service)

    def state_dir(self, service: str) -> str:
        return os.path.join(self.run_dir, 'state', service)

    @property
    def log_dir(self) -> str:
        return os.path.join(self.run_dir, 'logs')


def render_ini(sections: dict[str, dict[str, Value]]) -> str:
    """An oslo.config file: booleans as true/false, lists joined by
    commas, ``None`` left out.
    """
    out = []
    for name, options in sections.items():
        out.append('[%s]' % name)
        for key, value in options.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = 'true' if value else 'false'
            elif isinstance(value, (list, tuple)):
                value = ','.join(value)
            out.append('%s = %s' % (key, value))
        out.append('')
    return '\n'.join(out)


def _password_auth(s: Settings, user: str) -> dict[str, Value]:
    return {
        'auth_type': 'password',
        'auth_url': s.auth_url,
        'username': user,
        'password': s.service_password,
        'user_domain_name': 'Default',
        'project_name': 'service',
        'project_domain_name': 'Default',
    }


def authtoken(s: Settings, user: str) -> dict[str, Value]:
    return dict(_password_auth(s, user), www_authenticate_uri=s.auth_url,
                region_name=s.region)


def keystone_conf(s: Settings) -> dict:
    state = s.state_dir('keystone')
    return {
        'DEFAULT': {'use_stderr': True},
        'database': {'connection': s.db_url('keystone')},
        'token': {'provider': 'fernet'},
        'fernet_tokens': {'key_repository': os.path.join(state, 'fernet')},
        'fernet_receipts': {
            'key_repository': os.path.join(state, 'fernet')},
        'credential': {
            'key_repository': os.path.join(state, 'credential')},
        'cache': {'enabled': False},
    }


def glance_conf(s: Settings) -> dict:
    state = s.state_dir('glance')
    return {
        'DEFAULT': {
            'use_stderr': True,
            'enabled_backends': 'local:file',
            'image_cache_dir': os.path.join(state, 'cache'),
        },
        'database': {'connection': s.db_url('glance')},
        'keystone_authtoken': authtoken(s, 'glance'),
        'paste_deploy': {'flavor': 'keystone'},
        'glance_store': {'default_backend': 'local'},
        'local': {'filesystem_store_datadir': os.path.join(state, 'images')},
        'os_glance_staging_store': {
            'filesystem_store_datadir': os.path.join(state, 'staging')},
        'os_glance_tasks_store': {
            'filesystem_store_datadir': os.path.join(state, 'tasks')},
        'oslo_concurrency': {'lock_path': os.path.join(state, 'lock')},
    }


def placement_conf(s: Settings) -> dict:
    return {
        'DEFAULT': {'use_stderr': True},
        'api': {'auth_strategy': 'keystone'},
        'placement_database': {'connection': s.db_url('placement')},
        'keystone_authtoken': authtoken(s, 'placement'),
    }


def neutron_conf(s: Settings) -> dict:
    state = s.state_dir('neutron')
    return {
        'DEFAULT': {
            'use_stderr': True,
            'core_plugin': 'ml2',
            # The router plugin imports the port forwarding model, whose
            # relationship to ports every port query loads.
            'service_plugins': 'router',
            'auth_strategy': 'keystone',
            'transport_url': s.transport_url,
            'state_path': state,
            'api_paste_config': os.path.join(
                s.venv, 'etc', 'neutron', 'api-paste.ini'),
            # No agents and no ports to report on: nova hears nothing.
            'notify_nova_on_port_status_changes': False,
            'notify_nova_on_port_data_changes': False,
        },
        'database': {'connection': s.db_url('neutron')},
        'keystone_authtoken': authtoken(s, 'neutron'),
        'oslo_concurrency': {'lock_path': os.path.join(state, 'lock')},
    }


def ml2_conf(s: Settings) -> dict:
    # ML2 with no mechanism driver and no tenant networks: enough to
    # answer nova's look-ups of ports and networks, all empty.
    return {
        'ml2': {
            'type_drivers': 'flat',
            'tenant_network_types': '',
            'mechanism_drivers': '',
            'extension_drivers': 'port_security',
        },
    }


@dataclasses.dataclass(frozen=True)
class Compute:
    """What makes a nova-compute service of its own on this host."""
    #: its process name, configuration file and state directory name.
    name: str
    #: its service host and hypervisor (resource provider) name.
    host: str
    venv: str
    instances_path: str
    connection_uri: str = 'qemu:///system'
    instance_name_template: str = INSTANCE_NAME_TEMPLATE
    #: where the libvirt daemons of its own keep their directories
    #: (:data:`HOST_DIRS`), if it has them.
    libvirt_root: str = ''
    #: its address on a network of its own shared with this host only
    #: (:data:`PEER_LINK`), where its libvirt receives live migrations;
    #: '' when it has none and shares this host's network.
    address: str = ''
    #: whether its ``instances_path`` is a directory of its own there too
    #: (the first compute's path, another directory): its guests' disks
    #: are on storage it shares with no other compute.
    own_instances: bool = False

    def host_path(self, path: str) -> str:
        """Where ``path`` of the compute's own libvirt is on the host."""
        if not self.libvirt_root:
            return path
        return os.path.join(self.libvirt_root, path.lstrip('/'))

    @property
    def instances_on_host(self) -> str:
        """Where its guests' disks are, as the host sees them."""
        return (self.host_path(self.instances_path) if self.own_instances
                else self.instances_path)

    @property
    def own_dirs(self) -> tuple[str, ...]:
        """The paths its host has directories of its own at."""
        return HOST_DIRS + ((self.instances_path,) if self.own_instances
                            else ())


#: The network between this host and the peer compute's libvirt: a veth
#: pair, this host's end, the peer's end (in a network namespace of its
#: own) and their prefix length. A benchmarking range (RFC 2544), which
#: no real network here uses.
PEER_LINK = ('cloud-peer0', '198.18.0.1', 'eth0', '198.18.0.2', 30)

#: The directories a libvirt daemon of the QEMU driver keeps its
#: sockets, PID files, configuration and guests' state in; a second
#: host gets its own of each (:func:`host_script`).
HOST_DIRS = ('/run/libvirt', '/var/lib/libvirt', '/var/cache/libvirt',
             '/etc/libvirt', '/var/log/libvirt')


def host_script(dirs: ty.Sequence[str] = HOST_DIRS) -> str:
    """The shell commands that make a second host of a mount and UTS
    namespace: its host name (``$0``), its own copy of each of ``dirs``
    from under ``$1``; then it waits, holding the namespace for the
    daemons started in it (``nsenter``).
    """
    lines = ['set -e', 'hostname "$0"']
    for path in dirs:
        lines.append('mount --bind "$1%s" %s' % (path, path))
    lines.append('exec sleep infinity')
    return '\n'.join(lines) + '\n'


def qemu_conf(current: str, migration_address: str) -> str:
    """A second host's ``qemu.conf``: ``current`` (the host's), with
    guests migrating in received on ``migration_address`` only (libvirt
    listens on every address otherwise, and refuses a loopback one).
    """
    lines = [line for line in current.splitlines()
             if line.split('=', 1)[0].strip() != 'migration_address']
    lines.append('migration_address = "%s"' % migration_address)
    return '\n'.join(lines) + '\n'


def unpatched_compute(s: Settings, hostname: str) -> Compute:
    """The second compute: the release as published, its own host name,
    its own libvirt daemons, its own guests' names.
    """
    top = os.path.dirname(s.instances_path)
    return Compute(
        name='nova-compute-unpatched', host='%s-unpatched' % hostname,
        venv=s.unpatched_venv,
        instances_path=os.path.join(top, 'instances-unpatched'),
        instance_name_template=UNPATCHED_NAME_TEMPLATE,
        libvirt_root=os.path.join(top, 'host-unpatched'))


def peer_compute(s: Settings, hostname: str) -> Compute:
    """A second patched compute, for live migration: the first one's
    virtualenv, guests' names (a guest keeps its domain name when it
    moves) and instance path, as compute hosts of a cloud have; its own
    host name, libvirt daemons, and guests' disks at that path, so that
    Nova copies them as it live-migrates (block migration): the two
    hosts share no instance storage. Its libvirt has a network of its
    own, where QEMU receives the guests that migrate in; nova-compute
    stays on this host's, to reach the cloud's services on loopback.
    """
    return Compute(
        name='nova-compute-peer', host='%s-peer' % hostname, venv=s.venv,
        instances_path=s.instances_path, own_instances=True,
        address=PEER_LINK[3],
        libvirt_root=os.path.join(os.path.dirname(s.instances_path),
                                  'host-peer'))


def live_migration_uri(s: Settings) -> str:
    """How the first compute's libvirt reaches the peer's
    (:func:`peer_compute`) to live-migrate to it: by its UNIX socket,
    which needs no listener on any network.

    Nova puts the destination's address into this URI (``%s``); here it
    goes where libvirt passes it on unread, a query parameter.
    """
    socket = peer_compute(s, '').host_path('/run/libvirt/libvirt-sock')
    return 'qemu+unix:///system?socket=%s&destination=%%s' % socket


def _nova_common(s: Settings, conf_file: str) -> dict:
    state = s.state_dir('nova')
    return {
        'DEFAULT': {
            'use_stderr': True,
            'transport_url': s.transport_url,
            'my_ip': s.host,
            'state_path': state,
            'instances_path': s.instances_path,
            'instance_name_template': INSTANCE_NAME_TEMPLATE,
            'compute_driver': 'libvirt.LibvirtDriver',
            'allow_resize_to_same_host': True,
            # The guests run firmware and no OS: nothing answers the
            # ACPI power button, and a stop, shelve, resize or rescue
            # would wait the default 60 s for a clean shutdown.
            'shutdown_timeout': 3,
        },
        'api': {'auth_strategy': 'keystone'},
        'keystone_authtoken': authtoken(s, 'nova'),
        'service_user': dict(_password_auth(s, 'nova'),
                             send_service_user_token=True),
        'placement': dict(_password_auth(s, 'placement'),
                          region_name=s.region),
        'neutron': dict(_password_auth(s, 'neutron'), region_name=s.region),
        'glance': {'region_name': s.region},
        'libvirt': {
            'virt_type': 'qemu',
            'connection_uri': 'qemu:///system',
            'cpu_mode': 'none',
        },
        'vnc': {'enabled': False},
        'oslo_concurrency': {'lock_path': os.path.join(state, 'lock')},
        # No sudo here: privsep's helper runs directly, as root.
        'nova_sys_admin': {
            'helper_command': '%s --config-file %s' % (
                os.path.join(s.venv, 'bin', 'privsep-helper'), conf_file)},
    }


def nova_conf(s: Settings) -> dict:
    """nova-api, nova-conductor, nova-scheduler and nova-manage."""
    conf = _nova_common(s, os.path.join(s.conf_dir('nova'), 'nova.conf'))
    conf['database'] = {'connection': s.db_url('nova')}
    conf['api_database'] = {'connection': s.db_url('nova_api')}
    conf['wsgi'] = {'api_paste_config': os.path.join(
        s.conf_dir('nova'), 'api-paste.ini')}
    return conf


def nova_compute_conf(s: Settings, compute: Compute | None = None
                      ) -> dict:
    """nova-compute: no database, as on a compute host.

    With ``compute``, that compute's: its own host name, virtualenv (for
    privsep's helper), state, guests' disks and names, and libvirt.
    """
    if compute is None:
        conf = _nova_common(s, os.path.join(s.conf_dir('nova'),
                                            'nova-compute.conf'))
        conf['libvirt']['live_migration_uri'] = live_migration_uri(s)
        return conf
    conf_file = os.path.join(s.conf_dir('nova'), compute.name + '.conf')
    conf = _nova_common(dataclasses.replace(s, venv=compute.venv),
                        conf_file)
    state = s.state_dir(compute.name)
    conf['DEFAULT'].update({
        'host': compute.host,
        'state_path': state,
        'instances_path': compute.instances_path,
        'instance_name_template': compute.instance_name_template,
    })
    conf['libvirt']['connection_uri'] = compute.connection_uri
    if compute.address:
        # Where a live migration sends the guest's memory and disks.
        conf['libvirt']['live_migration_inbound_addr'] = compute.address
    conf['oslo_concurrency']['lock_path'] = os.path.join(state, 'lock')
    return conf


def gunicorn_conf(app: str, port: int, host: str = '127.0.0.1',
                  workers: int = 1, name: str = '') -> str:
    """A gunicorn.conf.py, read from the working directory.

    The application is named here rather than on the command line: the
    services parse ``sys.argv`` with oslo.config, which must see no
    arguments of gunicorn's.
    """
    lines = [
        '# Read by gunicorn from its working directory.',
        'wsgi_app = %r' % app,
        'bind = [%r]' % ('%s:%d' % (host, port)),
        'workers = %d' % workers,
        'timeout = 180',
        'graceful_timeout = 10',
        "errorlog = '-'",
        "accesslog = '-'",
    ]
    if name:
        lines.append('proc_name = %r' % name)
    return '\n'.join(lines) + '\n'


def admin_env(s: Settings) -> dict[str, str]:
    """The admin's credentials and the microversions the scenario uses."""
    return {
        'OS_AUTH_URL': s.auth_url,
        'OS_IDENTITY_API_VERSION': '3',
        'OS_USERNAME': 'admin',
        'OS_PASSWORD': s.admin_password,
        'OS_PROJECT_NAME': 'admin',
        'OS_USER_DOMAIN_NAME': 'Default',
        'OS_PROJECT_DOMAIN_NAME': 'Default',
        'OS_REGION_NAME': s.region,
        'OS_COMPUTE_API_VERSION': COMPUTE_API_VERSION,
        'OS_PLACEMENT_API_VERSION': PLACEMENT_API_VERSION,
    }


def openrc(s: Settings) -> str:
    """:func:`admin_env` as a shell reads it, the clients on the path."""
    lines = ['# The admin of the cloud in %s' % s.run_dir]
    lines += ['export %s=%s' % (k, shell_quote(v))
              for k, v in admin_env(s).items()]
    lines.append('export PATH=%s:"$PATH"' % shell_quote(
        os.path.join(s.venv, 'bin')))
    return '\n'.join(lines) + '\n'


def shell_quote(value: str) -> str:
    return "'%s'" % value.replace("'", "'\\''")
