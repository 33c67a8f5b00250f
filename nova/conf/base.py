"""Options of the ``[DEFAULT]`` group used by this tree."""

import os

from oslo_config import cfg

base_options = [
    cfg.StrOpt(
        'state_path',
        default=os.path.join('/var', 'lib', 'nova'),
        help="""
Top-level directory for maintaining state.

``nova-firmware`` keeps its embedded libvirt root (``qemu:///embed``), the
embedded placement database and the serial console logs of the guests it
boots under this directory.
"""),
    cfg.StrOpt(
        'instances_path',
        default='$state_path/instances',
        help="""
Where instances are stored on disk.

Each instance has a directory named after its UUID holding its disks and the
file its serial console is written to. The NVRAM (UEFI variable store) of a
stateful guest is not kept here but where libvirt keeps it
(``/var/lib/libvirt/qemu/nvram`` on a system daemon); stateless guests have
none.
"""),
    cfg.StrOpt(
        'host',
        sample_default='<current_hostname>',
        default=None,
        help="""
Hostname, FQDN or IP address of this host.

Used as the name of the compute node resource provider in placement. Defaults
to the system hostname.
"""),
]


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_opts(base_options)


def list_opts() -> dict:
    return {'DEFAULT': base_options}
