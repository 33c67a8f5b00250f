"""Options of the ``[libvirt]`` group."""

from oslo_config import cfg

libvirt_group = cfg.OptGroup(
    'libvirt',
    title='Libvirt Options',
    help="""
Libvirt options allow the cloud administrator to configure the libvirt
hypervisor driver used to boot guests, including guests with stateless UEFI
firmware.
""")

libvirt_general_opts = [
    cfg.StrOpt(
        'virt_type',
        default='kvm',
        # Only the types of libvirt's QEMU driver, the one this driver
        # supports: guests of the others (lxc, parallels) have no UEFI
        # firmware to choose, and failed with a raw libvirt error.
        choices=[
            ('kvm', 'Hardware-assisted virtualization with KVM.'),
            ('qemu', 'Software emulation (TCG): slower, and works on any '
                     'host, including nested ones where KVM cannot run '
                     'OVMF.'),
        ],
        help="""
Describes the virtualization type (or so called domain type) libvirt should
use.

The choice of this type must match the underlying virtualization strategy
you have chosen for this host. Both types are served by libvirt's QEMU
driver.

Related options:

* ``connection_uri``: depends on this
"""),
    cfg.StrOpt(
        'connection_uri',
        default='',
        help="""
Overrides the default libvirt URI of the chosen virtualization type.

If set, Nova will use this URI to connect to libvirt. Besides the usual
``qemu:///system``, ``qemu:///embed?root=DIR`` runs libvirt's QEMU driver
inside the nova process with all of its state under ``DIR``, with no daemon.

Possible values:

* A URI such as ``qemu:///system`` or
  ``qemu:///embed?root=/var/lib/nova/embed``.
* An empty string (default): the URI is derived from ``virt_type``
  (``qemu:///system`` for ``kvm`` and ``qemu``).

Related options:

* ``virt_type``: Influences what is used as default value here.
"""),
    cfg.ListOpt(
        'hw_machine_type',
        default=['x86_64=q35'],
        help="""
For qemu or KVM guests, set this option to specify a default machine type per
host architecture.

Possible values:

* A list of ``ARCH=MACHINE_TYPE`` pairs, e.g. ``x86_64=q35,aarch64=virt``.
  The machine type may be an alias (``q35``) or a versioned name
  (``pc-q35-7.2``). The image property ``hw_machine_type`` overrides it.
"""),
    cfg.IntOpt(
        'wait_soft_reboot_seconds',
        default=120,
        min=0,
        help="""
Number of seconds to wait for an instance to shut down after a soft reboot
request was made. Past it the reboot falls back to a hard reboot.
"""),
    cfg.MultiStrOpt(
        'firmware_descriptor_dirs',
        default=['/usr/share/qemu/firmware', '/etc/qemu/firmware'],
        help="""
Directories holding QEMU firmware descriptors (``firmware.json`` interop
format), lowest precedence first.

A descriptor in a later directory overrides one with the same file name in an
earlier directory, as QEMU's interop specification prescribes for
``/usr/share/qemu/firmware``, ``/etc/qemu/firmware`` and
``$XDG_CONFIG_HOME/qemu/firmware``. Nova uses the descriptors to choose the
UEFI loader of a guest and to decide whether this host can boot guests with
stateless firmware.
"""),
]

libvirt_migration_opts = [
    cfg.StrOpt(
        'live_migration_uri',
        default='',
        help="""
Live migration target URI used by the source of live migration traffic.

The libvirt URI this host's libvirt connects to, peer to peer, to live
migrate a guest to another host. Any ``%s`` in it is replaced with the
destination's ``live_migration_inbound_addr`` when the destination sets one,
otherwise with the destination's host name.

Possible values:

* An empty string (default): ``qemu+tcp://%s/system``.
* Another libvirt URI, such as ``qemu+tls://%s/system``, or
  ``qemu+unix:///system?socket=PATH`` for a destination daemon whose socket
  this host reaches at ``PATH``.

Related options:

* ``live_migration_inbound_addr``: replaces ``%s`` when set on the
  destination.
"""),
    cfg.HostDomainOpt(
        'live_migration_inbound_addr',
        help="""
IP address or host name of this host for incoming live migration traffic.

When this host is the destination of a live migration, the source sends the
guest's memory to this address (QEMU's ``tcp://ADDRESS``), and QEMU here
listens on this address only, rather than on every address of the host. It
is also the destination in the source's ``live_migration_uri``.

If unset (the default), libvirt sends the traffic to the destination's host
name and QEMU listens on all of the destination's addresses.

Related options:

* ``live_migration_uri``
"""),
]

ALL_OPTS = libvirt_general_opts + libvirt_migration_opts


def register_opts(conf: cfg.ConfigOpts) -> None:
    conf.register_group(libvirt_group)
    conf.register_opts(ALL_OPTS, group=libvirt_group)


def list_opts() -> dict:
    return {libvirt_group: ALL_OPTS}
