"""Options of the ``[placement]`` group: how to reach placement."""

from keystoneauth1 import loading as ks_loading
from oslo_config import cfg

DEFAULT_SERVICE_TYPE = 'placement'

placement_group = cfg.OptGroup(
    'placement',
    title='Placement Service Options',
    help="""
Configuration options for connecting to the placement API service.

By default placement runs embedded in the process (openstack-placement's
direct mode on an SQLite database), which needs no deployment at all. Set
``embedded = False`` and the usual keystoneauth options (``auth_type``,
``auth_url``, ... or ``endpoint_override`` with ``auth_type = none``) to use a
real placement deployment over HTTP.
""")

placement_opts = [
    cfg.BoolOpt(
        'embedded',
        default=True,
        help="""
Run placement in-process instead of talking to a deployment over HTTP.

When true, the keystoneauth options of this group are ignored and an
openstack-placement application is loaded in the process, storing its data
in ``embedded_connection``. When false, placement is reached through a
keystoneauth adapter configured by the options of this group.

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
