"""Which OpenStack services make a cloud of each patched Nova release.

Nova itself comes from ``series/RELEASE/`` (its sdist and patches, read
by :mod:`tools.series.release`); the other services are the releases of
the same OpenStack cycle, installed with the same pins
(``series/RELEASE/upper-constraints.txt``). Each API service runs under
gunicorn (among the pins of both releases) with the WSGI application its
release ships: a factory in 2024.1, a module-level ``application`` since
the services dropped their ``*-wsgi`` scripts.
"""

import dataclasses

#: Services in the order they start; ``nova-api`` after the ones it
#: calls.
API_SERVICES = ('keystone', 'glance', 'placement', 'neutron', 'nova-api')


@dataclasses.dataclass(frozen=True)
class Cloud:
    release: str
    #: pip requirements of the services besides Nova (pinned versions).
    services: tuple[str, ...]
    #: the WSGI application of each API service, as gunicorn loads it.
    apps: dict[str, str]
    #: placement in a virtualenv of its own with this os-traits, when the
    #: release's pins hold one that lacks the stateless firmware trait.
    placement_os_traits: str | None = None
    #: why placement gets that virtualenv, printed with it.
    placement_note: str = ''
    #: requirements a service imports but does not declare.
    undeclared: tuple[str, ...] = ()
    #: whether the release as published, on this host's libvirt,
    #: reports COMPUTE_SECURITY_STATELESS_FIRMWARE.
    unpatched_reports_trait: bool = False
    #: whether its UEFI guests start on this host's libvirt.
    unpatched_boots_uefi: bool = True
    #: what an operator sees of the unpatched compute, printed with it.
    unpatched_note: str = ''
    #: whether a live migration the destination's libvirt refuses as it
    #: starts leaves the server in ERROR, though Nova rolled it back and
    #: it runs on at the source: in 33.0.2 and 34.0.0 the libvirt driver
    #: raises the migration's error again once its monitor has rolled back
    #: (``future.result()`` in ``LibvirtDriver._live_migration``), and the
    #: compute manager takes it for a failure too late to roll back.
    refused_live_migration_errors: bool = False

    @property
    def placement_requirement(self) -> str:
        (req,) = [s for s in self.services
                  if s.startswith('openstack-placement==')]
        return req


#: Clients and drivers every release needs beside its services, at the
#: versions its pins give.
COMMON_REQUIREMENTS = (
    'python-openstackclient', 'osc-placement', 'PyMySQL',
    'python-memcached', 'libvirt-python', 'gunicorn',
)

#: The WSGI applications of releases whose services ship a module-level
#: ``application`` (2026.1 and 2026.2 here).
MODULE_APPS = {
    'keystone': 'keystone.wsgi.api:application',
    'glance': 'glance.wsgi.api:application',
    'placement': 'placement.wsgi.api:application',
    'neutron': 'neutron.wsgi.api:application',
    'nova-api': 'nova.wsgi.osapi_compute:application',
}

CLOUDS = {
    '2024.1': Cloud(
        release='2024.1',
        services=('keystone==25.0.0', 'glance==28.2.0',
                  'openstack-placement==11.0.0', 'neutron==24.2.2'),
        apps={
            'keystone': 'keystone.server.wsgi:initialize_public_application()',
            'glance': 'glance.common.wsgi_app:init_app()',
            'placement': 'placement.wsgi:init_application()',
            'neutron': 'neutron.cmd.eventlet.server:main_api_eventlet()',
            'nova-api': 'nova.api.openstack.compute.wsgi:init_application()',
        },
        placement_os_traits='3.1.0',
        placement_note=(
            'the 2024.1 pins hold os-traits 3.0.0, which lacks '
            'COMPUTE_SECURITY_STATELESS_FIRMWARE: placement runs with '
            'os-traits 3.1.0 in its own virtualenv, the upgrade the '
            '2024.1 release note tells operators to make'),
        unpatched_note=(
            'nova 29.4.0 as published knows nothing of stateless firmware: '
            'its compute does not report the trait, so the scheduler never '
            'sends it a stateless server'),
    ),
    '2026.1': Cloud(
        release='2026.1',
        services=('keystone==29.1.0', 'glance==32.0.0',
                  'openstack-placement==15.0.0', 'neutron==28.0.2'),
        apps=MODULE_APPS,
        # As neutron 29.0.0: imported, not declared, pinned (0.8.1).
        undeclared=('pyroute2',),
        unpatched_reports_trait=True,
        unpatched_boots_uefi=False,
        unpatched_note=(
            'nova 33.0.2 as published reports the trait from the libvirt '
            'version alone (>= 8.6.0), and its UEFI guests fail to define '
            'on libvirt 9.0.0: stateless servers may be sent to it and '
            'fail there; series/2026.1 fixes both'),
        refused_live_migration_errors=True,
    ),
    '2026.2': Cloud(
        release='2026.2',
        services=('keystone==30.0.0', 'glance==33.0.0',
                  'openstack-placement==16.0.0', 'neutron==29.0.0'),
        apps=MODULE_APPS,
        # neutron 29.0.0 imports pyroute2 (neutron-db-manage does, through
        # its agent scheduler models) but its requirements no longer
        # name it; the pins still hold it (0.8.1).
        undeclared=('pyroute2',),
        unpatched_reports_trait=True,
        unpatched_boots_uefi=False,
        unpatched_note=(
            'nova 34.0.0 as published reports the trait from the libvirt '
            'version alone (>= 8.6.0), and its UEFI guests fail to define '
            'on libvirt 9.0.0: stateless servers may be sent to it and '
            'fail there; series/2026.2 fixes both'),
        refused_live_migration_errors=True,
    ),
}


def get(name: str) -> Cloud:
    if name.startswith('cloud-'):
        name = name[len('cloud-'):]
    try:
        return CLOUDS[name]
    except KeyError:
        raise KeyError('no cloud for release %r (known: %s)' % (
            name, ', '.join(sorted(CLOUDS)))) from None
