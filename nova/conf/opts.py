"""Entry point for ``oslo-config-generator`` (``oslo.config.opts``)."""

import collections

from nova.conf import base
from nova.conf import compute
from nova.conf import libvirt
from nova.conf import placement


def list_opts() -> list:
    opts = collections.defaultdict(list)
    for module in (base, compute, libvirt, placement):
        for group, group_opts in module.list_opts().items():
            opts[group].extend(group_opts)
    return sorted(opts.items(), key=lambda item: str(item[0]))
