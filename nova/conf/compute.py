"""Options of the ``[compute]`` group used by this tree."""

from oslo_config import cfg

compute_group = cfg.OptGroup(
    'compute',
    title='Compute Manager Options',
    help="""
Options of the compute service: here, how it keeps its view of its resource
provider in placement.
""")

compute_opts = [
    cfg.IntOpt(
        'resource_provider_association_refresh',
        default=300,
        min=0,
        mutable=True,
        help="""
Interval for refreshing the compute service's cache of its resource
providers' inventories and traits, in seconds.

Each periodic update of the compute node's resource provider works from a
cache of what placement holds, and reads the provider, its inventory and its
traits from placement again only when the cache is older than this. Writes
carry the provider generation they were computed from, so a change someone
else made in between (an operator's ``CUSTOM_*`` trait) is never lost:
placement refuses the write with a conflict, and the provider is re-read at
once and the change applied on top. Until the next refresh, such changes
are not seen by the compute service itself; nothing else depends on that.

A value of zero disables the refresh: the provider is read once when the
service starts, and again only after a conflict or a failed update.

Possible values:

* Any positive integer in seconds, or zero to disable refresh.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(compute_group)
    conf.register_opts(compute_opts, group=compute_group)


def list_opts() -> dict:
    return {compute_group: compute_opts}
