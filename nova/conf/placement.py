"""Options of the ``[placement]`` group: how to reach placement."""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

DEFAULT_SERVICE_TYPE = 'placement'

placement_group = cfg.OptGroup(
    'placement',
    title='Placement Service Options',
    help="""
Configuration options for connecting to the placement API service.

Services reach a placement deployment over HTTP through keystoneauth: set
``auth_type`` and its credentials (``auth_type = password`` with
``auth_url``, ``username``, ...), and ``endpoint_override`` if placement is
not in the service catalog. Placement refuses requests that carry no token,
so ``auth_type = none`` does not work, not even with placement's
``auth_strategy = noauth2``; that one takes the token as the user name:
``auth_type = admin_token`` with ``token = admin``. ``nova-firmware`` runs
placement in its own process instead (``embedded``), needing no
deployment.
""")

placement_opts = [
    cfg.BoolOpt(
        'embedded',
        default=False,
        help="""
Run placement in this process instead of reaching a deployment over HTTP.

When true, an openstack-placement application is loaded in the process,
storing its data in ``embedded_connection``, and the keystoneauth options
of this group are ignored. This is for ``nova-firmware``, which turns it on
by default so that it needs no deployment; a service such as
``nova-compute`` must report to the placement the rest of the cloud uses,
so leave it false in a service's configuration.

Related options:

* ``embedded_connection``
"""),
    cfg.StrOpt(
        'embedded_connection',
        default='sqlite://',
        secret=True,
        help="""
SQLAlchemy URL of the database of the embedded placement.

The default is an in-memory SQLite database, which lives as long as the
process. A file URL such as ``sqlite:////var/lib/nova/placement.sqlite``
keeps providers between runs.

Related options:

* ``embedded``: only used when true.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(placement_group)
    conf.register_opts(placement_opts, group=placement_group)
    ks_loading.register_session_conf_options(conf, placement_group.name)
    ks_loading.register_auth_conf_options(conf, placement_group.name)
    conf.register_opts(_adapter_opts(), group=placement_group)


def _adapter_opts() -> list:
    """keystoneauth's adapter options, with placement's defaults.

    The defaults are set on the options themselves rather than with
    ``conf.set_default``: ``ConfigOpts.reset()`` (run by oslo.config's test
    fixture after every test) drops defaults set that way, which left
    ``service_type`` empty for every test but the first of a process.
    """
    opts = ks_loading.get_adapter_conf_options(include_deprecated=False)
    for opt in opts:
        if opt.dest == 'service_type':
            opt.default = DEFAULT_SERVICE_TYPE
        elif opt.dest == 'valid_interfaces':
            opt.default = ['internal', 'public']
    return opts


def _ks_opts() -> list:
    return (ks_loading.get_session_conf_options() +
            ks_loading.get_auth_common_conf_options() +
            ks_loading.get_auth_plugin_conf_options('password') +
            _adapter_opts())


def list_opts() -> dict:
    return {placement_group: placement_opts + _ks_opts()}
