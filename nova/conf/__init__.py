"""Configuration options for the stateless firmware work.

Every module reads options through ``nova.conf.CONF``; the groups are
registered here once, on import.
"""

from oslo_config import cfg

from nova.conf import base
from nova.conf import compute
from nova.conf import libvirt
from nova.conf import placement

CONF = cfg.CONF

base.register_opts(CONF)
compute.register_opts(CONF)
libvirt.register_opts(CONF)
placement.register_opts(CONF)
