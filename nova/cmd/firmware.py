"""``nova-firmware``: stateless UEFI firmware on this host, from the shell.

Three commands, all running the code the services run (nothing here
re-implements a decision; it only wires the layers together and prints what
they say):

``check``
    What the libvirt driver finds on this host (``LibvirtDriver.init_host``)
    and the traits it would report to placement (``update_provider_tree``
    on a real ``ProviderTree``).
``xml``
    An image and a flavor validated as the compute API does
    (``nova.compute.api.API.create``), the placement query the scheduler
    would send (``ResourceRequest``) and the domain XML the driver would
    define (``LibvirtDriver._get_guest_xml``), without defining it.
``boot``
    The whole flow on real parts: placement, compute registration, API
    validation, scheduling and claim, spawn on libvirt/QEMU, the firmware's
    own output and the host-side evidence of how it was booted, and
    cleanup. See :mod:`nova.cmd.firmware_boot`.

Exit status: 0 success (``check``: supported), 1 the host cannot do what was
asked or the evidence contradicts the request, 2 an error (bad input,
libvirt or placement unreachable).
"""

import argparse
import logging as std_logging
import os
import sys
import typing as ty
import warnings

from oslo_log import log as logging

from nova.cmd import firmware_boot
from nova.cmd import firmware_common as common
from nova.cmd import firmware_report
from nova.compute import manager as compute_manager
from nova.compute import provider_tree
import nova.conf
from nova import exception
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

#: This tool boots throwaway guests, where TCG works everywhere: KVM cannot
#: run OVMF in nested setups. A config file or ``--virt-type`` overrides it.
DEFAULT_VIRT_TYPE = 'qemu'
VIRT_TYPES = libvirt_host.QEMU_VIRT_TYPES

#: libvirt's log priorities of warnings and errors.
LIBVIRT_LOG_PRIORITY_WARNING = 3
LIBVIRT_LOG_PRIORITY_ERROR = 4
#: The environment variables libvirt reads its logging setup from.
LIBVIRT_LOG_ENVIRONMENT = ('LIBVIRT_DEBUG', 'LIBVIRT_LOG_FILTERS',
                           'LIBVIRT_LOG_OUTPUTS')
LIBVIRT_LOG_FILE = 'libvirt.log'


# --- defaults ----------------------------------------------------------------

def default_state_dir() -> str:
    """Where the tool keeps its state unless ``--state-dir`` says.

    Root gets a system directory; anyone else a directory of their own, as
    the XDG base directory specification places state.
    """
    if os.geteuid() == 0:
        return '/var/lib/nova-firmware'
    base = os.environ.get('XDG_STATE_HOME') or os.path.join(
        os.path.expanduser('~'), '.local', 'state')
    return os.path.join(base, 'nova-firmware')


def embed_uri(state_dir: str) -> str:
    """The embedded libvirt QEMU driver rooted in the state directory."""
    return 'qemu:///embed?root=%s' % os.path.join(state_dir, 'libvirt')


# --- the parser --------------------------------------------------------------

# (flags, argparse keywords) of the options every command accepts.
_GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict]] = [
    (('--config-file',), dict(
        action='append', metavar='PATH',
        help='A nova configuration file to read, e.g. /etc/nova/nova.conf '
             'to see a compute host as nova-compute does; repeat for '
             'more. None is read by default.')),
    (('--connection',), dict(
        metavar='URI',
        help='The libvirt URI, e.g. qemu:///system on a compute host. '
             'Default: [libvirt] connection_uri of the configuration, else '
             'qemu:///embed?root=STATE_DIR/libvirt (libvirt inside this '
             'process, no daemon needed).')),
    (('--state-dir',), dict(
        metavar='DIR',
        help='Where the tool keeps everything it creates: the embedded '
             'libvirt root, instance files and serial console logs, and '
             "libvirt's own log (libvirt.log). Sets state_path and "
             'instances_path. Default: /var/lib/nova-firmware as root, '
             'else ~/.local/state/nova-firmware.')),
    (('--virt-type',), dict(
        choices=VIRT_TYPES,
        help='[libvirt] virt_type. Default: the configuration\'s, else '
             "'qemu' (TCG), which boots OVMF everywhere, also where KVM "
             'is nested and cannot.')),
    (('--json',), dict(
        action='store_true',
        help='Print one JSON document instead of text, and no progress '
             'lines.')),
    (('-v', '--verbose'), dict(
        action='store_true',
        help='Log at INFO level on standard error; by default nothing is '
             'logged, the report and an error line say it all.')),
    (('-d', '--debug'), dict(
        action='store_true',
        help='Log at DEBUG level on standard error, including Python '
             'warnings.')),
]

#: Suffix of the destinations of global options given after the command.
_LATE = '_after_command'


def _dest(flags: tuple[str, ...]) -> str:
    long_flag = next(flag for flag in flags if flag.startswith('--'))
    return long_flag[2:].replace('-', '_')


def _add_global_options(parser: argparse.ArgumentParser,
                        after_command: bool) -> None:
    """Add the global options, before or after the command.

    After the command they go to destinations of their own, defaulting to
    nothing, so that an option given before the command is not reset by
    the command's parser and ``--config-file`` can be given on both sides.
    """
    group = parser
    if after_command:
        group = parser.add_argument_group(
            'global options', 'Also accepted before the command.')
    for flags, kwargs in _GLOBAL_OPTIONS:
        kwargs = dict(kwargs)
        if after_command:
            kwargs['dest'] = _dest(flags) + _LATE
            kwargs['default'] = argparse.SUPPRESS
        group.add_argument(*flags, **kwargs)


def _merge_global_options(args: argparse.Namespace) -> None:
    for flags, kwargs in _GLOBAL_OPTIONS:
        dest = _dest(flags)
        late = getattr(args, dest + _LATE, None)
        if late is None:
            continue
        delattr(args, dest + _LATE)
        if kwargs.get('action') == 'append':
            late = (getattr(args, dest) or []) + late
        elif kwargs.get('action') == 'store_true':
            late = late or getattr(args, dest)
        setattr(args, dest, late)


def _add_request_options(parser: argparse.ArgumentParser,
                         defaults: ty.Mapping[str, str] | None) -> None:
    group = parser.add_argument_group('request options')
    property_help = ('An image property, as set in Glance, e.g. '
                     'hw_firmware_stateless=true; repeat for more.')
    if defaults:
        property_help += (' Added to, or replacing, the defaults %s.' %
                          ' '.join('%s=%s' % kv for kv in defaults.items()))
    group.add_argument('--property', action='append', default=[],
                       metavar='KEY=VALUE', help=property_help)
    group.add_argument(
        '--flavor', default=common.DEFAULT_FLAVOR, metavar='SPEC',
        help='The flavor: comma separated KEY=VALUE with the keys %s '
             '(RAM in MiB, disks in GiB); keys not given keep their '
             'defaults.' % ', '.join(common.FLAVOR_KEYS))
    group.add_argument('--extra-spec', action='append', default=[],
                       metavar='KEY=VALUE',
                       help='A flavor extra spec, e.g. os:secure_boot='
                            'required; repeat for more.')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nova-firmware`` (the docs render it)."""
    parser = argparse.ArgumentParser(
        prog=common.PROG,
        description='Check a compute host for stateless UEFI firmware '
                    'support, show the domain XML the libvirt driver would '
                    'write for an image, and boot a stateless guest through '
                    'the whole flow. It runs the code of the compute API, '
                    'the scheduler and nova-compute.',
        epilog='Exit status: 0 success; 1 the host does not support '
               'stateless firmware, cannot honour the request, or the boot '
               'contradicts it; 2 an error (bad input, libvirt or placement '
               'unreachable).')
    _add_global_options(parser, after_command=False)
    commands = parser.add_subparsers(dest='command', metavar='COMMAND',
                                     title='commands', required=True)

    check = commands.add_parser(
        'check', help='Say whether this host can boot stateless UEFI '
                      'firmware, and why.',
        description='Print the libvirt and QEMU versions, virt type, URI, '
                    'host architecture and default machine type; whether '
                    'stateless firmware is supported and every reason '
                    'behind the answer; the loader a stateless guest would '
                    'get and the form of its XML; and the traits the '
                    'compute service would report to placement. Exits 0 '
                    'when supported, 1 when not.')
    _add_global_options(check, after_command=True)

    xml = commands.add_parser(
        'xml', help='Show the placement query and the domain XML of a '
                    'request, without defining anything.',
        description='Validate the image properties and the flavor as the '
                    'compute API does, then print the allocation candidates '
                    'query the scheduler would send to placement and the '
                    'domain XML the libvirt driver would define on this '
                    'host. Bad input exits 2 naming the property and the '
                    'accepted values; a request this host cannot honour '
                    'exits 1 with the reason.')
    _add_request_options(xml, defaults=None)
    _add_global_options(xml, after_command=True)

    boot = commands.add_parser(
        'boot', help='Boot a stateless UEFI guest through the whole flow '
                     'and print the evidence.',
        description='Register this host in placement (embedded in the '
                    'process unless --placement-url is given), validate '
                    'the request as the API does, schedule it through '
                    'placement with the trait, spawn the guest on libvirt, '
                    'wait for the firmware on its serial console, print '
                    'the evidence (live <os> element, the pflash drives '
                    'QEMU was given, NVRAM files) and delete the guest and '
                    'its allocation. Exits 0 when the evidence shows the '
                    'firmware asked for (stateless: one read-only pflash '
                    'and no NVRAM), 1 when it does not or the firmware '
                    'never ran.')
    _add_request_options(boot, defaults=common.STATELESS_PROPERTIES)
    group = boot.add_argument_group('boot options')
    group.add_argument('--keep', action='store_true',
                       help='Leave the guest running (and defined) once '
                            'spawned, for inspection, instead of deleting '
                            'it.')
    group.add_argument('--timeout', type=float, default=120.0,
                       metavar='SECONDS',
                       help='How long to wait for the firmware to show on '
                            'the serial console.')
    group.add_argument('--placement-url', metavar='URL',
                       help='Use the placement service at URL over HTTP '
                            'instead of an embedded one. Authentication '
                            'comes from the [placement] section of the '
                            'configuration (keystoneauth options); '
                            "without one, auth_type 'none'. For a "
                            'placement running with auth_strategy = '
                            'noauth2 set auth_type = admin_token and token '
                            '= admin there.')
    _add_global_options(boot, after_command=True)
    return parser


# --- configuration and logging -----------------------------------------------

def _register_logging_options() -> None:
    # oslo.config refuses to register command line options once a command
    # line was parsed, which is the case when main() runs inside a process
    # (a test) that already set logging up.
    if 'debug' not in CONF:
        logging.register_options(CONF)


def configure(args: argparse.Namespace) -> str:
    """Load the configuration and apply the global options.

    The tool's own defaults (embedded libvirt and placement, TCG) are set
    as defaults, so a configuration file's values win over them and options
    over both.

    :returns: the state directory.
    """
    _register_logging_options()
    CONF(args=[], project='nova',
         default_config_files=list(args.config_file or []))
    state_dir = os.path.abspath(os.path.expanduser(
        args.state_dir or default_state_dir()))
    # Everything the tool creates stays under its state directory, apart
    # from a compute host's real instances.
    CONF.set_override('state_path', state_dir)
    CONF.set_override('instances_path', os.path.join(state_dir, 'instances'))
    CONF.set_default('connection_uri', embed_uri(state_dir), group='libvirt')
    if args.connection:
        CONF.set_override('connection_uri', args.connection, group='libvirt')
    CONF.set_default('virt_type', DEFAULT_VIRT_TYPE, group='libvirt')
    # Only the tool embeds placement: a service's configuration must not.
    CONF.set_default('embedded', True, group='placement')
    if args.virt_type:
        CONF.set_override('virt_type', args.virt_type, group='libvirt')
    # Standard output carries the report.
    CONF.set_override('use_stderr', True)
    if args.debug:
        CONF.set_override('debug', True)
    return state_dir


def setup_logging(args: argparse.Namespace) -> None:
    """Log to stderr as oslo.log does, and by default not at all.

    What the commands have to say is in their report and, on failure, in
    one error line; the services' own log messages (the error that libvirt
    is unreachable, logged before the tool reports it) would say it twice.
    ``--verbose`` and ``--debug`` show them.
    """
    logging.setup(CONF, 'nova')
    if CONF.debug or args.verbose:
        return
    # On the handlers: libraries' loggers with levels of their own
    # (oslo.log's default_log_levels) do not inherit the root's.
    for handler in std_logging.getLogger().handlers:
        handler.setLevel(std_logging.CRITICAL)


def quiet_libvirt(state_dir: str) -> None:
    """Send libvirt's own log messages to a file instead of stderr.

    libvirt writes warnings (a guest "tainted" by running QEMU as root,
    say) straight to stderr, where they would break into the report. It
    reads its logging setup from the environment when it initializes, that
    is when the ``libvirt`` module is first imported, so this must run
    before. Processes libvirt forks (to label files for QEMU) drop the log
    outputs and filters and keep only the default priority: that is set to
    errors, and a filter keeps warnings of this process in the file.
    An operator's own libvirt logging setup is left alone.
    """
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    if any(name in os.environ for name in LIBVIRT_LOG_ENVIRONMENT):
        return
    os.environ.update({
        'LIBVIRT_DEBUG': str(LIBVIRT_LOG_PRIORITY_ERROR),
        'LIBVIRT_LOG_FILTERS': '%d:*' % LIBVIRT_LOG_PRIORITY_WARNING,
        'LIBVIRT_LOG_OUTPUTS': '%d:file:%s' % (
            LIBVIRT_LOG_PRIORITY_WARNING,
            os.path.join(state_dir, LIBVIRT_LOG_FILE)),
    })
    if 'libvirt' in sys.modules:
        LOG.debug('libvirt was imported before nova-firmware started; its '
                  'log messages go where it was told then')


# --- check -------------------------------------------------------------------

def reported_provider(driver: libvirt_driver.LibvirtDriver,
                      nodename: str) -> provider_tree.ProviderData:
    """The compute node provider as the driver fills it in for placement.

    The very call the compute service makes, on a tree of its own, so
    nothing is written anywhere.
    """
    tree = provider_tree.ProviderTree()
    tree.new_root(nodename, compute_manager.compute_node_uuid(nodename))
    driver.update_provider_tree(tree, nodename)
    return tree.data(nodename)


def _stateless_os_element(driver: libvirt_driver.LibvirtDriver) -> str:
    """The ``<os>`` the driver writes for a stateless guest here."""
    instance, _spec = common.create_instance(
        common.parse_flavor(''), common.STATELESS_PROPERTIES)
    return common.os_element(
        driver._get_guest_xml(instance, instance.image_meta))


def check_report(driver: libvirt_driver.LibvirtDriver) -> dict:
    """What ``check`` prints, from an initialized driver."""
    host = driver.host
    arch = host.get_host_arch()
    machine_type = host.get_default_machine_type(arch)
    versioned = host.get_domain_capabilities_for(
        arch, machine_type).machine_type
    support = host.stateless_firmware_support()
    loader = support.loader
    provider = reported_provider(driver, common.hostname())
    report = {
        'libvirt': common.version_str(support.libvirt_version),
        'qemu': common.version_str(support.qemu_version),
        'virt_type': CONF.libvirt.virt_type,
        'uri': host.uri,
        'host_arch': arch,
        'machine_type': ('%s (%s)' % (machine_type, versioned)
                         if machine_type else versioned),
        'stateless_firmware': support.supported,
        'reasons': list(support.reasons),
        'loader': loader.path if loader is not None else None,
        'descriptor': ('%s (mode %s)' % (loader.descriptor.path,
                                         loader.descriptor.mode)
                       if loader is not None else None),
        'xml_form': support.xml_form,
    }
    if support.supported:
        report['os_element'] = _stateless_os_element(driver)
    report['traits'] = sorted(provider.traits)
    report['inventory'] = ', '.join(
        '%s=%s' % (rc, inventory['total'])
        for rc, inventory in sorted(provider.inventory.items()))
    return report


def run_check(args: argparse.Namespace,
              out: firmware_report.Output) -> int:
    report = check_report(common.start_driver())
    code = (common.EXIT_OK if report['stateless_firmware']
            else common.EXIT_FAILED)
    if out.as_json:
        out.json(dict(report, command='check', exit_code=code))
    else:
        out.lines(firmware_report.render_fields(report))
    return code


# --- xml ---------------------------------------------------------------------

def run_xml(args: argparse.Namespace, out: firmware_report.Output) -> int:
    properties, flavor = common.request_from_args(args, None, out)
    instance, request_spec = common.create_instance(flavor, properties)
    query = scheduler_utils.ResourceRequest.from_request_spec(request_spec)
    report = {
        'image_properties': properties,
        'flavor': common.flavor_summary(flavor),
        'extra_specs': dict(flavor.extra_specs),
        'query': 'GET /allocation_candidates?%s' % query.to_querystring(),
    }
    driver = common.start_driver()
    try:
        xml = driver._get_guest_xml(instance, instance.image_meta)
    except common.HOST_CANNOT_HONOUR as exc:
        message = 'this host cannot honour the request: %s' % (
            common.describe_error(exc))
        report.update(xml=None, error=message)
        code = common.EXIT_FAILED
    else:
        report.update(xml=xml, error=None)
        code = common.EXIT_OK
    if out.as_json:
        out.json(dict(report, command='xml', exit_code=code))
    else:
        text = {k: v for k, v in report.items() if k not in ('xml', 'error')}
        out.lines(firmware_report.render_fields(text))
        if report['xml']:
            out.lines(report['xml'].rstrip().splitlines())
    if report['error']:
        out.error(report['error'])
    return code


# --- main --------------------------------------------------------------------

COMMANDS: dict[str, ty.Callable[[argparse.Namespace, firmware_report.Output],
                                int]] = {
    'check': run_check,
    'xml': run_xml,
    'boot': firmware_boot.run,
}


def _parse_args(argv: ty.Sequence[str] | None
                ) -> argparse.Namespace | int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:
        # --help, or a usage error argparse has printed.
        return e.code if isinstance(e.code, int) else common.EXIT_ERROR
    _merge_global_options(args)
    return args


def _run(args: argparse.Namespace, out: firmware_report.Output) -> int:
    try:
        state_dir = configure(args)
        setup_logging(args)
        quiet_libvirt(state_dir)
        objects.register_all()
        return COMMANDS[args.command](args, out)
    except exception.NovaException as exc:
        out.error(common.describe_error(exc))
        return common.exit_code_for(exc)
    except KeyboardInterrupt:
        out.error('interrupted')
        return common.EXIT_ERROR
    except Exception as exc:
        LOG.debug('%s %s failed', common.PROG, args.command, exc_info=True)
        out.error(common.describe_error(exc))
        return common.EXIT_ERROR


def main(argv: ty.Sequence[str] | None = None) -> int:
    """Run ``nova-firmware`` with ``argv`` (default: the command line).

    :returns: the exit status.
    """
    args = _parse_args(argv)
    if isinstance(args, int):
        return args
    out = firmware_report.Output(common.PROG, args.command, args.json)
    with warnings.catch_warnings():
        if not args.debug:
            # Deprecation warnings of libraries speak to developers, not
            # to the operator reading the report.
            warnings.simplefilter('ignore')
        return _run(args, out)


if __name__ == '__main__':
    sys.exit(main())
