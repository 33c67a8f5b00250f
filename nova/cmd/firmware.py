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
``cleanup``
    Remove what earlier boots left: guests kept with ``--keep``, and what
    a run that was killed had created.

Exit status: 0 success (``check``: supported), 1 the host cannot do what was
asked or the evidence contradicts the request, 2 an error (bad input,
libvirt or placement unreachable).
"""

import argparse
import contextlib
import io
import logging as std_logging
import math
import os
import re
import sys
import typing as ty
import warnings

import os_traits
from oslo_config import cfg
from oslo_log import log as logging

from nova.cmd import firmware_boot
from nova.cmd import firmware_cleanup
from nova.cmd import firmware_common as common
from nova.cmd import firmware_placement
from nova.cmd import firmware_report
from nova.cmd import firmware_signals
from nova.cmd import firmware_state as state
from nova.compute import manager as compute_manager
from nova.compute import provider_tree
import nova.conf
from nova import exception
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt import driver as virt_driver
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

#: Commands that only look: like ``nova-status``, they read the compute
#: host's own configuration (``/etc/nova/nova.conf``, ...) when no
#: ``--config-file`` is given, so that they see what nova-compute sees.
#: ``boot`` and ``cleanup`` create and delete, in placement too: they read
#: a configuration only when told.
READ_ONLY_COMMANDS = ('check', 'xml')


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

class UsageError(Exception):
    """A command line argparse refused; the message says why."""

    def __init__(self, message: str, usage: str) -> None:
        super().__init__(message)
        self.usage = usage


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is raised rather than exiting.

    So that ``main`` reports it like any other bad input: one line, exit
    status 2, and a JSON document with ``--json``.
    """

    def error(self, message: str) -> ty.NoReturn:
        raise UsageError(message, self.format_usage())


def _non_empty(what: str) -> ty.Callable[[str], str]:
    def parse(value: str) -> str:
        if not value.strip():
            raise argparse.ArgumentTypeError(
                'must not be empty; leave %s out for the default' % what)
        return value
    parse.__name__ = what
    return parse


#: A number of seconds, in plain ASCII decimal: no ``nan``, ``inf``,
#: exponents, underscores or non-ASCII digits, all of which ``float()``
#: would take.
_SECONDS = re.compile(r'[0-9]+(\.[0-9]+)?', re.ASCII)


def _seconds(value: str) -> float:
    if not _SECONDS.fullmatch(value.strip()):
        raise argparse.ArgumentTypeError(
            'must be a positive number of seconds such as 120 or 0.5, not '
            '%r' % value)
    seconds = float(value)
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(
            'must be a positive number of seconds, not %r' % value)
    return seconds


# (flags, argparse keywords) of the options every command accepts.
_GLOBAL_OPTIONS: list[tuple[tuple[str, ...], dict]] = [
    (('--config-file',), dict(
        action='append', metavar='PATH',
        help='A nova configuration file to read; repeat for more. '
             'Without one, check and xml read the compute host\'s own '
             'configuration as nova-status does (/etc/nova/nova.conf, '
             'if it exists); boot and cleanup read none.')),
    (('--connection',), dict(
        metavar='URI', type=_non_empty('--connection'),
        help='The libvirt URI, e.g. qemu:///system on a compute host. '
             'Default: [libvirt] connection_uri of the configuration; '
             'where check and xml read a nova configuration that sets '
             'none, the daemon nova-compute would use (qemu:///system); '
             'else qemu:///embed?root=STATE_DIR/libvirt (libvirt inside '
             'this process, no daemon needed).')),
    (('--state-dir',), dict(
        metavar='DIR', type=_non_empty('--state-dir'),
        help='Where the tool keeps everything it creates: the embedded '
             'libvirt root, instance files and serial console logs, and '
             "libvirt's own log (libvirt.log). Sets state_path and "
             'instances_path. Default: /var/lib/nova-firmware as root, '
             'else ~/.local/state/nova-firmware.')),
    (('--virt-type',), dict(
        choices=VIRT_TYPES,
        help='[libvirt] virt_type. Default: the configuration\'s; '
             "where check and xml read a nova configuration that sets "
             "none, nova-compute's 'kvm'; else 'qemu' (TCG), which boots "
             'OVMF everywhere, also where KVM is nested and cannot.')),
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
        property_help += (
            ' Added to, or replacing, the defaults %s (%s for x86 guests '
            'only: an image of another hw_architecture gets its '
            "architecture's default machine type)." % (
                ' '.join('%s=%s' % kv for kv in defaults.items()),
                ', '.join(common.X86_ONLY_DEFAULTS)))
    group.add_argument('--property', action='append', default=[],
                       metavar='KEY=VALUE', help=property_help)
    group.add_argument(
        '--flavor', default=common.DEFAULT_FLAVOR, metavar='SPEC',
        help='The flavor: comma separated KEY=VALUE with the keys %s '
             '(ram and swap in MiB, disk and ephemeral in GiB, as Nova\'s '
             'flavors); keys not given keep their '
             'defaults.' % ', '.join(common.FLAVOR_KEYS))
    group.add_argument('--extra-spec', action='append', default=[],
                       metavar='KEY=VALUE',
                       help='A flavor extra spec, e.g. os:secure_boot='
                            'required; repeat for more.')


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``nova-firmware`` (the docs render it)."""
    parser = _Parser(
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
                                     title='commands', required=True,
                                     parser_class=_Parser)

    check = commands.add_parser(
        'check', help='Say whether this host can boot stateless UEFI '
                      'firmware, and why.',
        description='Print the libvirt and QEMU versions, virt type, URI, '
                    'host architecture and default machine type; whether '
                    'stateless firmware is supported and every reason '
                    'behind the answer; the loader a stateless guest would '
                    'get and the form of its XML; and the traits the '
                    'compute service would report to placement. The '
                    'decision is made by this tree\'s code, not by the '
                    'Nova installed on the host; for a host running a '
                    'patched Nova release, the output names that '
                    'release\'s boot check. Exits 0 when supported, 1 '
                    'when not.')
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
                            'it. The cleanup command, or the next boot with '
                            'the same state directory, removes it.')
    group.add_argument('--timeout', type=_seconds, default=120.0,
                       metavar='SECONDS',
                       help='How long to wait for the firmware to show on '
                            'the serial console.')
    _add_placement_url(group)
    _add_global_options(boot, after_command=True)

    cleanup = commands.add_parser(
        'cleanup', help='Remove what earlier boots left: kept guests and '
                        'what killed runs created.',
        description='Every boot writes down what it is about to create '
                    '(domain, instance directory, allocation) in the state '
                    'directory, and removes the record once it has cleaned '
                    'up. Remove what the records of earlier runs name: '
                    'guests kept with --keep, and what a run killed before '
                    'its cleanup left. A boot does the same when it starts. '
                    'Runs still going are left alone. Give the '
                    '--connection, --config-file and --placement-url of '
                    'the boot.')
    _add_placement_url(cleanup.add_argument_group('cleanup options'))
    _add_global_options(cleanup, after_command=True)
    return parser


def _add_placement_url(group: ty.Any) -> None:
    group.add_argument('--placement-url', metavar='URL',
                       help='Use the placement service at URL over HTTP '
                            'instead of an embedded one. Authentication '
                            'comes from the [placement] section of the '
                            'configuration (keystoneauth options); '
                            "without one, auth_type 'none'. For a "
                            'placement running with auth_strategy = '
                            'noauth2 set auth_type = admin_token and token '
                            '= admin there. Requests time out after [%s] '
                            'timeout seconds, %d unless configured.' % (
                                'placement',
                                firmware_placement.DEFAULT_PLACEMENT_TIMEOUT))


# --- configuration and logging -----------------------------------------------

def _register_logging_options() -> None:
    # oslo.config refuses to register command line options once a command
    # line was parsed, which is the case when main() runs inside a process
    # (a test) that already set logging up.
    if 'debug' not in CONF:
        logging.register_options(CONF)


def config_files(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """The configuration files and directories a command reads.

    ``--config-file`` when given; otherwise, for the commands that only
    look, the compute host's own, found where ``nova-status`` finds them:
    ``nova.conf`` (and ``nova-firmware.conf``) in ``~/.nova/``, ``~/``,
    ``/etc/nova/`` or ``/etc/``, and the ``nova.conf.d`` directories.
    """
    if args.config_file or args.command not in READ_ONLY_COMMANDS:
        return list(args.config_file or []), []
    return (cfg.find_config_files(project='nova', prog=common.PROG),
            cfg.find_config_dirs(project='nova', prog=common.PROG))


def reads_as_compute(args: argparse.Namespace, files: list[str],
                     dirs: list[str]) -> bool:
    """Whether a command reads a compute host's configuration as
    nova-compute does, with nova-compute's defaults.

    ``check`` and ``xml`` with a nova configuration must see what the
    compute service sees: a nova.conf that sets no ``connection_uri``
    means the libvirt daemon its virt type names (``qemu:///system``),
    and no ``virt_type`` means nova's ``kvm``. Without a configuration,
    and for ``boot`` and ``cleanup``, the tool's own defaults apply
    (libvirt embedded in the process, TCG).
    """
    return args.command in READ_ONLY_COMMANDS and bool(files or dirs)


def _load_config(files: list[str], dirs: list[str]) -> None:
    """Read the configuration, and check every value in it now.

    oslo.config checks most values only when they are first read, deep in
    some service code, and a bad value of an option it also accepts on the
    command line (``debug = maybe``) makes it print a line and exit 1.
    Both become one error naming the option and the file.
    """
    where = ', '.join(files + dirs) or 'the defaults'
    printed = io.StringIO()
    try:
        with contextlib.redirect_stderr(printed):
            CONF(args=[], project='nova', default_config_files=files,
                 default_config_dirs=dirs)
    except SystemExit:
        # oslo.config printed "argument --NAME: Invalid TYPE value: VALUE".
        name, _sep, reason = printed.getvalue().strip().partition(': ')
        raise common.CommandError(
            'configuration %s: option [DEFAULT] %s is not valid: %s' % (
                where, name.replace('argument --', ''), reason))
    except cfg.Error as exc:
        raise common.CommandError('configuration %s: %s' % (where, exc))
    for group, name in _all_options():
        try:
            getattr(CONF[group], name) if group else CONF[name]
        except cfg.ConfigFileValueError as exc:
            reason = str(exc).rpartition(' is not valid: ')[2]
            raise common.CommandError(
                'configuration %s: option [%s] %s is not valid: %s' % (
                    where, group or 'DEFAULT', name, reason))


def _all_options() -> ty.Iterator[tuple[str | None, str]]:
    for name in list(CONF):
        value = CONF[name]
        if isinstance(value, cfg.ConfigOpts.GroupAttr):
            for opt in list(value):
                yield name, opt
        else:
            yield None, name


def configure(args: argparse.Namespace) -> str:
    """Load the configuration and apply the global options.

    The tool's own defaults (embedded libvirt and placement, TCG) are set
    as defaults, so a configuration file's values win over them and options
    over both.

    :returns: the state directory, created or checked.
    """
    _register_logging_options()
    files, dirs = config_files(args)
    _load_config(files, dirs)
    state_dir = state.prepare_state_dir(os.path.abspath(os.path.expanduser(
        args.state_dir or default_state_dir())))
    # Everything the tool creates stays under its state directory, apart
    # from a compute host's real instances.
    CONF.set_override('state_path', state_dir)
    CONF.set_override('instances_path',
                      os.path.join(state_dir, state.INSTANCES_DIR))
    if not reads_as_compute(args, files, dirs):
        CONF.set_default('connection_uri', embed_uri(state_dir),
                         group='libvirt')
        CONF.set_default('virt_type', DEFAULT_VIRT_TYPE, group='libvirt')
    if args.connection:
        CONF.set_override('connection_uri', args.connection, group='libvirt')
    # Only the tool embeds placement: a service's configuration must not.
    CONF.set_default('embedded', True, group='placement')
    if args.virt_type:
        CONF.set_override('virt_type', args.virt_type, group='libvirt')
    # Standard output carries the report.
    CONF.set_override('use_stderr', True)
    if args.debug:
        CONF.set_override('debug', True)
    return state_dir


def _source(args: argparse.Namespace, option: str, flag: str,
            tool_default: str) -> str:
    """Where the value of ``[libvirt] option`` came from, in words."""
    if getattr(args, flag.lstrip('-').replace('-', '_')):
        return 'the %s option' % flag
    location = CONF.get_location(option, 'libvirt')
    if location.location == cfg.Locations.user:
        return '[libvirt] %s in %s' % (option, location.detail)
    if location.location == cfg.Locations.set_default:
        files = CONF.config_file + CONF.config_dir
        if not files:
            return '%s; no nova configuration file was read' % tool_default
        return '%s; %s does not set it' % (tool_default, ', '.join(files))
    files = CONF.config_file + CONF.config_dir
    return "nova's default (%s); %s does not set it" % (
        CONF.libvirt[option] or 'empty',
        ', '.join(files) or 'no configuration file')


def connection_sources(args: argparse.Namespace) -> dict[str, str]:
    """Why this virt type and this libvirt URI were checked."""
    if CONF.libvirt.connection_uri:
        uri_from = _source(args, 'connection_uri', '--connection',
                           "%s's default: libvirt embedded in the process"
                           % common.PROG)
    else:
        uri_from = ('derived from the virt type as nova-compute derives '
                    'it; [libvirt] connection_uri: %s' % _source(
                        args, 'connection_uri', '--connection', ''))
    return {
        'virt_type_from': _source(
            args, 'virt_type', '--virt-type',
            "%s's default: qemu (TCG)" % common.PROG),
        'uri_from': uri_from,
    }


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


#: The Nova releases this tree's patch series carry the feature to: a host
#: running one of them decides with that release's patched code, which
#: ``check`` does not run (``series/RELEASE/boot_check.py`` does).
SERIES_RELEASES = ('2024.1', '2026.1', '2026.2')


def decision_fields() -> dict:
    """Whose decision ``check`` shows, and how to ask a patched release."""
    config = (CONF.config_file or ['/etc/nova/nova.conf'])[0]
    return {
        'decision_logic': (
            "this tree's (nova-firmware), not that of the Nova installed "
            "on this host"),
        'patched_release': (
            'on a host running a patched Nova %s, ask its own code: '
            'python3 series/RELEASE/boot_check.py --config-file %s' % (
                ', '.join(SERIES_RELEASES), config)),
    }


def check_report(driver: libvirt_driver.LibvirtDriver,
                 sources: ty.Mapping[str, str]) -> dict:
    """What ``check`` prints, from an initialized driver.

    :param sources: why this virt type and URI (``connection_sources``).
    """
    host = driver.host
    arch = host.get_host_arch()
    machine_type = host.get_default_machine_type(arch)
    versioned = host.get_domain_capabilities_for(
        arch, machine_type).machine_type
    support = host.stateless_firmware_support()
    loader = support.loader
    provider = reported_provider(driver, common.hostname())
    report = {
        'config_files': CONF.config_file + CONF.config_dir,
        'libvirt': common.version_str(support.libvirt_version),
        'qemu': common.version_str(support.qemu_version),
        'virt_type': CONF.libvirt.virt_type,
        'virt_type_from': sources['virt_type_from'],
        'uri': host.uri,
        'uri_from': sources['uri_from'],
        'host_arch': arch,
        'machine_type': firmware_report.Inline(
            {'configured': machine_type, 'versioned': versioned},
            text=('%s (%s)' % (machine_type, versioned) if machine_type
                  else versioned)),
        'stateless_firmware': support.supported,
        'reasons': list(support.reasons),
        'loader': loader.path if loader is not None else None,
        'descriptor': (firmware_report.Inline(
            {'path': loader.descriptor.path, 'mode': loader.descriptor.mode},
            text='%s (mode %s)' % (loader.descriptor.path,
                                   loader.descriptor.mode))
            if loader is not None else None),
        'xml_form': support.xml_form,
    }
    report.update(decision_fields())
    if support.supported:
        report['os_element'] = _stateless_os_element(driver)
    report['traits'] = sorted(provider.traits)
    report['inventory'] = firmware_report.Inline({
        rc: inventory['total']
        for rc, inventory in sorted(provider.inventory.items())})
    return report


def run_check(args: argparse.Namespace,
              out: firmware_report.Output, state_dir: str) -> int:
    report = check_report(common.start_driver(), connection_sources(args))
    code = (common.EXIT_OK if report['stateless_firmware']
            else common.EXIT_FAILED)
    if out.as_json:
        out.json(dict(report, command='check', exit_code=code,
                      warnings=out.warnings))
    else:
        out.lines(firmware_report.render_fields(report))
    return code


# --- xml ---------------------------------------------------------------------

#: What a missing capability trait means on this host, for the one line
#: that names it; ``check`` gives the host's reasons in full.
_TRAIT_MEANINGS = {
    os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE: (
        ' (this host cannot boot stateless UEFI firmware; '
        "'nova-firmware check' says why)"),
    virt_driver.STATELESS_SECURE_BOOT_TRAIT: (
        ' (secure boot without a variable store needs a firmware '
        "descriptor of mode 'stateless' with the features 'secure-boot' "
        "and 'enrolled-keys'; none is installed here)"),
}


def host_shortfall(query: scheduler_utils.ResourceRequest,
                   provider: provider_tree.ProviderData) -> list[str]:
    """What a placement query asks that this host's provider lacks.

    The rules placement applies to a single provider: every required trait
    present, no forbidden one, and each resource within its inventory's
    ``max_unit`` and capacity (``(total - reserved) * allocation_ratio``).
    """
    missing = ['trait %s%s' % (trait, _TRAIT_MEANINGS.get(trait, ''))
               for trait in sorted(query.required_traits - provider.traits)]
    missing += ['forbidden trait %s is reported' % trait
                for trait in sorted(query.forbidden_traits &
                                    provider.traits)]
    for rc, amount in sorted(query.resources.items()):
        inventory = provider.inventory.get(rc)
        if inventory is None:
            missing.append('resource %s (%d needed, none reported)' %
                           (rc, amount))
            continue
        capacity = int((inventory['total'] - inventory['reserved']) *
                       inventory['allocation_ratio'])
        most = min(capacity, inventory['max_unit'])
        if amount > most:
            missing.append('resource %s (%d needed, at most %d here)' %
                           (rc, amount, most))
    return missing


def run_xml(args: argparse.Namespace, out: firmware_report.Output,
            state_dir: str) -> int:
    properties, flavor = common.request_from_args(args, None, out)
    instance, request_spec = common.create_instance(flavor, properties)
    for warning in common.request_warnings(request_spec.image):
        out.warning(warning)
    query = scheduler_utils.ResourceRequest.from_request_spec(request_spec)
    report = {
        'image_properties': properties,
        'flavor': common.flavor_summary(flavor),
        'extra_specs': dict(flavor.extra_specs),
        'query': 'GET /allocation_candidates?%s' % query.to_querystring(),
    }
    driver = common.start_driver()
    # As the scheduler would: a host that does not report what the
    # request needs never gets to build its XML.
    shortfall = host_shortfall(
        query, reported_provider(driver, common.hostname()))
    code = common.EXIT_OK
    try:
        if shortfall:
            raise common.CommandError(
                'this host cannot honour the request: it does not report '
                '%s' % ', '.join(shortfall), exit_code=common.EXIT_FAILED)
        common.check_machine_type(driver, request_spec.image)
        xml = driver._get_guest_xml(instance, instance.image_meta)
    except common.HOST_CANNOT_HONOUR as exc:
        report.update(xml=None, error='this host cannot honour the '
                                      'request: %s' % (
                                          common.describe_error(exc)))
        code = common.EXIT_FAILED
    except common.CommandError as exc:
        if exc.exit_code != common.EXIT_FAILED:
            raise
        report.update(xml=None, error=str(exc))
        code = common.EXIT_FAILED
    else:
        report.update(xml=xml, error=None)
    if out.as_json:
        out.json(dict(report, command='xml', exit_code=code,
                      warnings=out.warnings))
    else:
        text = {k: v for k, v in report.items() if k not in ('xml', 'error')}
        out.lines(firmware_report.render_fields(text))
        if report['xml']:
            out.lines(report['xml'].rstrip().splitlines())
    if report['error']:
        out.error(report['error'])
    return code


# --- main --------------------------------------------------------------------

COMMANDS: dict[str, ty.Callable[[argparse.Namespace, firmware_report.Output,
                                 str], int]] = {
    'check': run_check,
    'xml': run_xml,
    'boot': firmware_boot.run,
    'cleanup': firmware_cleanup.run,
}


def _usage_failure(argv: ty.Sequence[str], error: UsageError) -> int:
    """Report a command line argparse refused, as text or JSON."""
    command = next((arg for arg in argv if arg in COMMANDS), None)
    out = firmware_report.Output(common.PROG, command, '--json' in argv)
    if not out.as_json:
        out.stderr.write(error.usage)
    out.failure(str(error), common.EXIT_ERROR)
    return common.EXIT_ERROR


def _parse_args(argv: ty.Sequence[str] | None
                ) -> argparse.Namespace | int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except UsageError as exc:
        return _usage_failure(argv, exc)
    except SystemExit as e:
        # --help, which argparse has printed.
        return e.code if isinstance(e.code, int) else common.EXIT_ERROR
    _merge_global_options(args)
    return args


def _run(args: argparse.Namespace, out: firmware_report.Output) -> int:
    try:
        state_dir = configure(args)
        setup_logging(args)
        quiet_libvirt(state_dir)
        if libvirt_host.embed_root(libvirt_host.default_uri()) is not None:
            # libvirt writes its state, caches and logs there.
            state.check_free_space(state_dir)
        objects.register_all()
        # boot holds signals off around its cleanup itself; the others
        # create nothing and only need to end with their report.
        signals = (contextlib.nullcontext() if args.command == 'boot' else
                   firmware_signals.SignalGuard('%s %s' % (common.PROG,
                                                        args.command)))
        with signals:
            return COMMANDS[args.command](args, out, state_dir)
    except (exception.NovaException, common.CommandError) as exc:
        out.failure(common.describe_error(exc), common.exit_code_for(exc))
        return common.exit_code_for(exc)
    except (KeyboardInterrupt, firmware_signals.Interrupted) as exc:
        out.failure(str(exc) or 'interrupted', common.EXIT_ERROR)
        return common.EXIT_ERROR
    except Exception as exc:
        LOG.debug('%s %s failed', common.PROG, args.command, exc_info=True)
        out.failure(common.describe_error(exc), common.EXIT_ERROR)
        return common.EXIT_ERROR


def main(argv: ty.Sequence[str] | None = None) -> int:
    """Run ``nova-firmware`` with ``argv`` (default: the command line).

    :returns: the exit status.
    """
    args = _parse_args(argv)
    if isinstance(args, int):
        return args
    out = firmware_report.Output(common.PROG, args.command, args.json)
    # Everything created from here on is private to the user (see
    # nova.cmd.firmware_state); put back for a caller that goes on.
    umask = os.umask(state.UMASK)
    try:
        with warnings.catch_warnings():
            if not args.debug:
                # Deprecation warnings of libraries speak to developers,
                # not to the operator reading the report.
                warnings.simplefilter('ignore')
            return _run(args, out)
    finally:
        os.umask(umask)


if __name__ == '__main__':
    sys.exit(main())
