"""The libvirt host: connection, versions, capabilities and firmware.

``Host`` owns the one libvirt connection of a compute service and every
question asked of the hypervisor about itself: which libvirt and QEMU run
here, what the host and its emulators can do (capabilities, domain
capabilities), which UEFI firmware is installed, and from these, whether
guests can boot with stateless firmware. Answers that cannot change while
the service runs are fetched once and cached, and every libvirt call made
through ``Host`` is counted in ``Host.api_calls`` so tests and benchmarks
can see what a code path costs.

``libvirt`` is imported lazily into the module global of that name, so the
test fixture can swap in fakelibvirt by patching
``nova.virt.libvirt.host.libvirt``.
"""

import collections
import dataclasses
import functools
import os
import pwd
import socket
import threading
import typing as ty
import urllib.parse

from oslo_log import log as logging
from oslo_utils import importutils
from oslo_utils import versionutils

import nova.conf
from nova import exception
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import firmware

if ty.TYPE_CHECKING:
    from nova import objects

libvirt: ty.Any = None

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

#: Nova's machine types of the architectures whose libvirt default is a
#: board no cloud image boots on (for aarch64, libvirt 9.0 picks
#: ``integratorcp``, which has no UEFI), where ``[libvirt]
#: hw_machine_type`` names none. x86_64 is left to the option
#: (``x86_64=q35`` by default) and else to libvirt.
ARCH_DEFAULT_MACHINE_TYPES = {
    'aarch64': 'virt',
    'armv7l': 'virt',
    's390x': 's390-ccw-virtio',
}

#: The first libvirt that knows ``<loader stateless='yes'>``. Older
#: versions do not reject the attribute: their parser ignores unknown
#: attributes, so the guest silently gets an NVRAM file, the very thing a
#: stateless guest must not have. Hosts below it never report stateless
#: firmware support.
MIN_LIBVIRT_STATELESS_FIRMWARE = (8, 6, 0)

#: The two XML forms of a stateless UEFI guest. ``explicit`` names a
#: read-only loader image and no ``<nvram>``; ``autoselect`` asks libvirt
#: to pick a firmware (``<os firmware='efi'>``), which only works when a
#: descriptor of mode ``stateless`` is installed.
XML_FORM_EXPLICIT = 'explicit'
XML_FORM_AUTOSELECT = 'autoselect'

#: Virt types served by libvirt's QEMU driver, the only ones with UEFI
#: firmware descriptors and domain capabilities worth asking for.
QEMU_VIRT_TYPES = ('kvm', 'qemu')

#: System users one of which libvirt's QEMU driver looks up when it starts,
#: even embedded and configured to run QEMU as root: ``libvirt-qemu`` on
#: Debian and Ubuntu, ``qemu`` on Fedora and derivatives.
QEMU_SYSTEM_USERS = ('libvirt-qemu', 'qemu')

_QEMU_SYSTEM_URI = 'qemu:///system'

# The default event loop is registered once per process and per libvirt
# module (fakelibvirt and the real one in the same test process).
_EVENT_LOOP_LOCK = threading.Lock()
_EVENT_LOOP_STARTED: set[int] = set()

# libvirt opens one embedded QEMU driver root per process, for the life of
# the process, even after its connections are closed.
_EMBED_ROOTS: dict[int, str] = {}

# Each open of a qemu:///embed URI uses up one of libvirt's fixed number of
# driver slots, closed or not: on libvirt 9.0 a process can open one about
# 16 times, then every open fails with "Too many drivers". An embedded
# connection is therefore opened once per process and shared by every Host
# on that URI, and opened again only once it broke.
_EMBED_CONNECTIONS: dict[tuple[int, str, bool], ty.Any] = {}
_EMBED_CONNECTIONS_LOCK = threading.Lock()


def default_uri() -> str:
    """The libvirt URI of this compute host.

    ``[libvirt] connection_uri`` when set, otherwise the system QEMU
    driver, which serves both virt types the driver offers (kvm, qemu).
    """
    if CONF.libvirt.connection_uri:
        return CONF.libvirt.connection_uri
    return _QEMU_SYSTEM_URI


def embed_root(uri: str) -> str | None:
    """The root directory of a ``qemu:///embed?root=DIR`` URI, else None."""
    parts = urllib.parse.urlsplit(uri)
    if not parts.scheme.startswith('qemu') or parts.path != '/embed':
        return None
    roots = urllib.parse.parse_qs(parts.query).get('root')
    return roots[0] if roots else ''


def _qemu_conf_for_embed() -> str:
    # There is no virtlogd next to an embedded driver, so QEMU's output
    # must go to plain files. As root, QEMU runs as root: the embed root
    # is private to this process and need not be readable by another user.
    lines = ['# Written by nova for its embedded libvirt QEMU driver.',
             'stdio_handler = "file"']
    if os.geteuid() == 0:
        lines += ['user = "root"', 'group = "root"']
    return '\n'.join(lines) + '\n'


def _check_qemu_system_user(uri: str) -> None:
    for name in QEMU_SYSTEM_USERS:
        try:
            pwd.getpwnam(name)
            return
        except KeyError:
            continue
    raise exception.LibvirtEmbedUnavailable(
        uri=uri,
        reason="none of the system users %s exists; libvirt's QEMU driver "
               "needs the one it was built for (the libvirt daemon "
               "package creates it)" % ', '.join(QEMU_SYSTEM_USERS))


def prepare_embed_root(uri: str, root: str) -> None:
    """Make ``root`` usable by an embedded QEMU driver.

    Writes ``root/etc/qemu.conf`` unless the operator already did, so a
    hand-written one is never overwritten.
    """
    if not root or not os.path.isabs(root):
        raise exception.LibvirtEmbedUnavailable(
            uri=uri, reason="the 'root' parameter must be an absolute "
                            "path, not '%s'" % root)
    _check_qemu_system_user(uri)
    etc = os.path.join(root, 'etc')
    os.makedirs(etc, mode=0o700, exist_ok=True)
    qemu_conf = os.path.join(etc, 'qemu.conf')
    if not os.path.exists(qemu_conf):
        with open(qemu_conf, 'w', encoding='utf-8') as f:
            f.write(_qemu_conf_for_embed())
        LOG.debug('Wrote %s for the embedded QEMU driver', qemu_conf)


def _check_embed_root(uri: str, root: str) -> None:
    opened = opened_embed_root()
    if opened is not None and opened != os.path.realpath(root):
        raise exception.LibvirtEmbedUnavailable(
            uri=uri, reason="libvirt embeds one root per process and this "
                            "process already opened %s" % opened)


def _record_embed_root(root: str) -> None:
    _EMBED_ROOTS.setdefault(id(libvirt), os.path.realpath(root))


def opened_embed_root() -> str | None:
    """The embedded root this process opened, if any."""
    return _EMBED_ROOTS.get(id(libvirt))


def _is_alive(conn: ty.Any) -> bool:
    try:
        return bool(conn.isAlive())
    except libvirt.libvirtError:
        # A connection closed in this process is no longer a valid
        # pointer for libvirt.
        return False


def _run_event_loop(module: ty.Any) -> None:
    while True:
        if module.virEventRunDefaultImpl() < 0:
            LOG.error('The libvirt event loop failed an iteration')


def _ignore_libvirt_error(context: ty.Any, err: ty.Any) -> None:
    # Every error also reaches the caller as a libvirtError, which Nova
    # handles or logs; libvirt's default handler would print it to stderr
    # as well, even for expected ones such as a lookup of a missing domain.
    pass


def start_event_loop() -> None:
    """Register libvirt's default event loop and run it in a thread.

    Needed before opening an embedded QEMU driver, which runs its own
    monitor I/O on it, and for connection and domain events over any
    connection. libvirt allows one registration per process.
    """
    with _EVENT_LOOP_LOCK:
        if id(libvirt) in _EVENT_LOOP_STARTED:
            return
        libvirt.registerErrorHandler(_ignore_libvirt_error, None)
        libvirt.virEventRegisterDefaultImpl()
        thread = threading.Thread(target=_run_event_loop, args=(libvirt,),
                                  name='libvirt-event-loop', daemon=True)
        thread.start()
        _EVENT_LOOP_STARTED.add(id(libvirt))


def _version_tuple(version: int) -> tuple[int, int, int]:
    return (version // 1000000, version // 1000 % 1000, version % 1000)


def _version_str(version: tuple[int, ...]) -> str:
    return '.'.join(str(v) for v in version)


@dataclasses.dataclass(frozen=True)
class StatelessFirmwareSupport:
    """Whether this host can boot UEFI guests without a variable store.

    ``reasons`` explains the answer, one observation per entry, in the
    order they were made; ``xml_form`` is the form the driver must write
    (``explicit`` with ``loader``, or ``autoselect``) and None when
    unsupported. ``probe_failed`` says the answer is no only because
    libvirt failed to answer: it is not kept, and the next question asks
    libvirt again.
    """

    supported: bool
    reasons: list[str]
    loader: firmware.UEFILoader | None
    xml_form: str | None
    libvirt_version: tuple[int, int, int]
    qemu_version: tuple[int, int, int]
    probe_failed: bool = False


class Host:
    """The libvirt connection of this compute host and what it knows."""

    def __init__(self, uri: str, read_only: bool = False) -> None:
        global libvirt
        if libvirt is None:
            libvirt = importutils.import_module('libvirt')
        self._uri = uri
        self._read_only = read_only
        self._initialized = False
        self._conn: ty.Any = None
        self._conn_lock = threading.Lock()
        self._caps: vconfig.LibvirtConfigCaps | None = None
        self._domain_caps: dict[tuple, vconfig.LibvirtConfigDomainCaps] = {}
        self._domain_caps_lock = threading.Lock()
        self._stateless_support: StatelessFirmwareSupport | None = None
        self._stateless_lock = threading.Lock()
        self._hostname_cache: str | None = None
        #: libvirt API name -> number of calls made through this Host.
        self.api_calls: collections.Counter = collections.Counter()

    @staticmethod
    def default_uri() -> str:
        return default_uri()

    @property
    def uri(self) -> str:
        return self._uri

    # --- connection ---------------------------------------------------------

    def initialize(self) -> None:
        """Prepare everything the connection needs before it is opened.

        Idempotent; ``get_connection`` calls it, so calling it explicitly
        only moves the failures of a misconfigured host to start-up.
        """
        if self._initialized:
            return
        root = embed_root(self._uri)
        if root is not None:
            prepare_embed_root(self._uri, root)
        start_event_loop()
        self._initialized = True

    def get_connection(self) -> ty.Any:
        """The libvirt connection, opened on first use and after a loss.

        :raises HypervisorUnavailable: when libvirt cannot be reached.
        """
        self.initialize()
        with self._conn_lock:
            if self._conn is None:
                self._conn = self._connect()
            return self._conn

    def _hostname(self) -> str:
        return CONF.host or socket.gethostname()

    def _connect(self) -> ty.Any:
        root = embed_root(self._uri)
        if root is None:
            return self._open()
        _check_embed_root(self._uri, root)
        key = (id(libvirt), self._uri, self._read_only)
        with _EMBED_CONNECTIONS_LOCK:
            conn = _EMBED_CONNECTIONS.get(key)
            if conn is None or not _is_alive(conn):
                conn = self._open()
                _record_embed_root(root)
                _EMBED_CONNECTIONS[key] = conn
            return conn

    def _open(self) -> ty.Any:
        LOG.debug('Connecting to libvirt: %s', self._uri)
        self.api_calls['open'] += 1
        try:
            if self._read_only:
                conn = libvirt.openReadOnly(self._uri)
            else:
                conn = libvirt.open(self._uri)
        except libvirt.libvirtError as ex:
            LOG.error('Connection to libvirt %(uri)s failed: %(err)s',
                      {'uri': self._uri, 'err': ex})
            raise exception.HypervisorUnavailable(
                host=self._hostname()) from ex
        try:
            conn.registerCloseCallback(self._connection_closed, None)
        except libvirt.libvirtError as ex:
            # Not fatal: a lost connection is then noticed by the next
            # call that fails.
            LOG.debug('Cannot register a close callback on %(uri)s: '
                      '%(err)s', {'uri': self._uri, 'err': ex})
        return conn

    def _connection_closed(self, conn: ty.Any, reason: int,
                           opaque: ty.Any) -> None:
        LOG.warning('Connection to libvirt %(uri)s lost (reason %(reason)s);'
                    ' it will be reopened on next use',
                    {'uri': self._uri, 'reason': reason})
        self._forget_connection(conn)

    def _forget_connection(self, conn: ty.Any) -> None:
        with self._conn_lock:
            if self._conn is conn:
                self._conn = None

    @staticmethod
    def is_connection_error(ex: Exception) -> bool:
        code = ex.get_error_code()
        if code in (libvirt.VIR_ERR_NO_CONNECT,
                    libvirt.VIR_ERR_INVALID_CONN):
            return True
        return (code in (libvirt.VIR_ERR_SYSTEM_ERROR,
                         libvirt.VIR_ERR_INTERNAL_ERROR) and
                ex.get_error_domain() in (libvirt.VIR_FROM_REMOTE,
                                          libvirt.VIR_FROM_RPC))

    def _call(self, name: str, *args) -> ty.Any:
        """Call the connection's API ``name``, counting it.

        A broken connection is forgotten, so the next call reconnects, and
        reported as ``HypervisorUnavailable``; other libvirt errors are
        raised unchanged for the caller to interpret.
        """
        conn = self.get_connection()
        self.api_calls[name] += 1
        try:
            return getattr(conn, name)(*args)
        except libvirt.libvirtError as ex:
            self.raise_if_connection_lost(ex, name, conn)
            raise

    def raise_if_connection_lost(self, ex: Exception, api: str,
                                 conn: ty.Any = None) -> None:
        """Turn a libvirt error that means a lost connection into
        ``HypervisorUnavailable``, forgetting the connection so the next
        call reconnects; return for any other error.

        For errors of calls made on a domain rather than the connection.
        """
        if not self.is_connection_error(ex):
            return
        LOG.warning('libvirt connection %(uri)s broke during %(api)s: '
                    '%(err)s', {'uri': self._uri, 'api': api, 'err': ex})
        self._forget_connection(conn if conn is not None else self._conn)
        raise exception.HypervisorUnavailable(host=self._hostname()) from ex

    # --- versions -----------------------------------------------------------

    def get_libvirt_version(self) -> tuple[int, int, int]:
        return _version_tuple(self._call('getLibVersion'))

    def get_hypervisor_version(self) -> tuple[int, int, int]:
        return _version_tuple(self._call('getVersion'))

    def _version_check(self, lv_ver: tuple | None, hv_ver: tuple | None,
                       hv_type: str | None,
                       op: ty.Callable[[int, int], bool]) -> bool:
        try:
            if lv_ver is not None and op(
                    self._call('getLibVersion'),
                    versionutils.convert_version_to_int(lv_ver)):
                return False
            if hv_ver is not None and op(
                    self._call('getVersion'),
                    versionutils.convert_version_to_int(hv_ver)):
                return False
            if hv_type is not None and self._call('getType') != hv_type:
                return False
        except libvirt.libvirtError as ex:
            LOG.warning('Cannot check libvirt versions: %s', ex)
            return False
        return True

    def has_min_version(self, lv_ver: tuple | None = None,
                        hv_ver: tuple | None = None,
                        hv_type: str | None = None) -> bool:
        """True when libvirt >= ``lv_ver``, the hypervisor >= ``hv_ver``
        and its type is ``hv_type``, for each one given.
        """
        return self._version_check(lv_ver, hv_ver, hv_type,
                                   op=lambda have, want: have < want)

    def has_version(self, lv_ver: tuple | None = None,
                    hv_ver: tuple | None = None,
                    hv_type: str | None = None) -> bool:
        """Like ``has_min_version`` but for exact versions."""
        return self._version_check(lv_ver, hv_ver, hv_type,
                                   op=lambda have, want: have != want)

    # --- host facts ---------------------------------------------------------

    def get_info(self) -> list:
        """``virNodeGetInfo``: [CPU model, memory MiB, CPUs, MHz, NUMA
        nodes, sockets per node, cores per socket, threads per core].
        """
        return self._call('getInfo')

    def get_hostname(self) -> str:
        """The hostname libvirt reports, fetched once."""
        if self._hostname_cache is None:
            self._hostname_cache = self._call('getHostname')
        return self._hostname_cache

    # --- capabilities -------------------------------------------------------

    def get_capabilities(self) -> vconfig.LibvirtConfigCaps:
        """The host capabilities, fetched once."""
        if self._caps is None:
            caps = vconfig.LibvirtConfigCaps()
            caps.parse_str(self._call('getCapabilities'))
            self._caps = caps
        return self._caps

    def get_host_arch(self) -> str:
        return self.get_capabilities().host.cpu.arch

    def _guest_domain(self, arch: str, virt_type: str
                      ) -> vconfig.LibvirtConfigCapsGuestDomain | None:
        for guest in self.get_capabilities().guests:
            if guest.arch == arch and virt_type in guest.domains:
                return guest.domains[virt_type]
        return None

    def get_machine_aliases(self, arch: str) -> dict[str, str]:
        """Machine type aliases of ``arch`` (``q35``) -> versioned type."""
        domain = self._guest_domain(arch, CONF.libvirt.virt_type)
        if domain is None:
            return {}
        return {name: canonical
                for name, canonical in domain.machines.items()
                if canonical}

    @staticmethod
    def configured_machine_types() -> dict[str, str]:
        """``[libvirt] hw_machine_type`` as arch -> machine type."""
        result = {}
        for entry in CONF.libvirt.hw_machine_type or []:
            arch, sep, machine_type = entry.partition('=')
            if not sep or not arch.strip() or not machine_type.strip():
                LOG.warning("Ignoring [libvirt] hw_machine_type entry "
                            "'%s': expected ARCH=MACHINE_TYPE", entry)
                continue
            result[arch.strip()] = machine_type.strip()
        return result

    def get_default_machine_type(self, arch: str) -> str | None:
        """The configured machine type of ``arch``, else Nova's default
        for it; None leaves the choice to libvirt.
        """
        return self.configured_machine_types().get(
            arch, ARCH_DEFAULT_MACHINE_TYPES.get(arch))

    def get_domain_capabilities_for(
            self, arch: str, machine_type: str | None = None,
            virt_type: str | None = None
    ) -> vconfig.LibvirtConfigDomainCaps:
        """Domain capabilities of one arch, machine type and virt type.

        Fetched once per process for each combination: the first call on
        a host makes libvirt probe QEMU, which takes seconds. The result is
        also cached under the versioned machine type libvirt reports, so
        asking for ``q35`` and then ``pc-q35-7.2`` costs one call.
        """
        virt_type = virt_type or CONF.libvirt.virt_type
        key = (arch, machine_type, virt_type)
        with self._domain_caps_lock:
            if key in self._domain_caps:
                return self._domain_caps[key]
            domain = self._guest_domain(arch, virt_type)
            emulator = domain.emulator if domain is not None else None
            xml = self._call('getDomainCapabilities', emulator, arch,
                             machine_type, virt_type, 0)
            caps = vconfig.LibvirtConfigDomainCaps()
            caps.parse_str(xml)
            if machine_type and machine_type != caps.machine_type:
                caps.machine_type_alias = machine_type
            self._domain_caps[key] = caps
            self._domain_caps.setdefault(
                (arch, caps.machine_type, virt_type), caps)
            return caps

    def _domain_caps_archs(self) -> list[str]:
        # The host arch, and any other arch an operator configured a
        # machine type for; probing every arch QEMU can emulate would
        # start a QEMU for each of them.
        archs = [self.get_host_arch()]
        for arch in self.configured_machine_types():
            if arch not in archs and self._guest_domain(
                    arch, CONF.libvirt.virt_type) is not None:
                archs.append(arch)
        return archs

    def get_domain_capabilities(
            self) -> dict[str, dict[str, vconfig.LibvirtConfigDomainCaps]]:
        """arch -> {machine type -> domain capabilities}.

        Holds the host arch and the arches of ``[libvirt]
        hw_machine_type``, for their configured machine type, keyed both
        by the configured name (alias) and the versioned one.
        """
        if CONF.libvirt.virt_type not in QEMU_VIRT_TYPES:
            return {}
        result: dict[str, dict[str, vconfig.LibvirtConfigDomainCaps]] = {}
        for arch in self._domain_caps_archs():
            machine_type = self.get_default_machine_type(arch)
            caps = self.get_domain_capabilities_for(arch, machine_type)
            by_machine = result.setdefault(arch, {})
            for name in (machine_type, caps.machine_type):
                if name:
                    by_machine[name] = caps
        return result

    # --- firmware -----------------------------------------------------------

    @functools.cached_property
    def firmware_descriptors(self) -> list[firmware.FirmwareDescriptor]:
        """The firmware descriptors in effect, highest priority first.

        Read once: packages installing firmware restart the services that
        depend on it.
        """
        descriptors = firmware.load_descriptors(
            CONF.libvirt.firmware_descriptor_dirs)
        LOG.debug('Firmware descriptors: %s',
                  ', '.join(d.path for d in descriptors) or 'none')
        return descriptors

    @property
    def supports_uefi(self) -> bool:
        return any(caps.os is not None and caps.os.uefi_supported
                   for by_machine in self.get_domain_capabilities().values()
                   for caps in by_machine.values())

    @property
    def supports_secure_boot(self) -> bool:
        """Whether a stateful guest of the host arch can enforce secure
        boot: libvirt offers secure loaders and a firmware with enrolled
        keys is installed.
        """
        arch = self.get_host_arch()
        machine_type = self.get_default_machine_type(arch)
        caps = self.get_domain_capabilities_for(arch, machine_type)
        if caps.os is None or 'yes' not in caps.os.loader_secure:
            return False
        try:
            self.get_loader(arch, machine_type, secure_boot=True)
        except exception.UEFILoaderNotFound:
            return False
        return True

    def supports_stateless_secure_boot(
            self, arch: str | None = None,
            machine_type: str | None = None) -> bool:
        """Whether a stateless guest can enforce secure boot here.

        It needs a firmware of mode ``stateless`` with the features
        ``secure-boot`` and ``enrolled-keys``: with no variable store,
        the keys must be in the executable. In the explicit XML form its
        image must be among the secure loaders libvirt offers; with
        firmware autoselection libvirt finds it by its descriptor.

        :param arch: the guest architecture; the host's by default.
        :param machine_type: the guest machine type; the configured
            default of ``arch`` by default.
        """
        support = self.stateless_firmware_support()
        if not support.supported:
            return False
        arch = arch or self.get_host_arch()
        if machine_type is None:
            machine_type = self.get_default_machine_type(arch)
        caps = self.get_domain_capabilities_for(arch, machine_type)
        try:
            if support.xml_form == XML_FORM_AUTOSELECT:
                name = machine_type or caps.machine_type
                firmware.choose_loader(
                    self.firmware_descriptors, arch, name,
                    secure_boot=True, stateless=True,
                    machine_aliases={name: caps.machine_type})
                return True
            if caps.os is None or 'yes' not in caps.os.loader_secure:
                return False
            self.get_loader(arch, machine_type, secure_boot=True,
                            stateless=True)
        except exception.UEFILoaderNotFound:
            return False
        return True

    def get_loader(self, arch: str, machine_type: str | None = None,
                   secure_boot: bool = False,
                   stateless: bool = False) -> firmware.UEFILoader:
        """The UEFI loader for a guest, among those libvirt accepts.

        :param machine_type: alias or versioned name; None for the
            configured default of ``arch``.
        :raises UEFILoaderNotFound: when no installed firmware fits.
        """
        if machine_type is None:
            machine_type = self.get_default_machine_type(arch)
        caps = self.get_domain_capabilities_for(arch, machine_type)
        loader_paths = caps.os.loader_paths if caps.os is not None else []
        aliases = self.get_machine_aliases(arch)
        if machine_type and caps.machine_type:
            aliases.setdefault(machine_type, caps.machine_type)
        return firmware.choose_loader(
            self.firmware_descriptors, arch,
            machine_type or caps.machine_type,
            secure_boot=secure_boot, stateless=stateless,
            machine_aliases=aliases, loader_paths=loader_paths)

    # --- stateless firmware -------------------------------------------------

    def _explicit_stateless_loader(
            self, arch: str, machine_type: str | None,
            caps: vconfig.LibvirtConfigDomainCaps
    ) -> tuple[firmware.UEFILoader | None, str]:
        where = '%s/%s' % (arch, caps.machine_type)
        os_caps = caps.os
        if os_caps is None or not os_caps.supported or not (
                os_caps.loader_supported):
            return None, ('explicit loader: the domain capabilities of %s '
                          'report no <loader> support' % where)
        if firmware.LOADER_TYPE_PFLASH not in os_caps.loader_types:
            return None, ("explicit loader: the domain capabilities of %s "
                          "do not offer loader type 'pflash'" % where)
        if 'yes' not in os_caps.loader_readonly:
            return None, ('explicit loader: the domain capabilities of %s '
                          'do not offer read-only loaders' % where)
        try:
            loader = self.get_loader(arch, machine_type, secure_boot=False,
                                     stateless=True)
        except exception.UEFILoaderNotFound:
            smm_only = sorted(
                d.executable for d in self.firmware_descriptors
                if d.is_uefi and d.mode == firmware.MODE_SPLIT and
                d.requires_smm and d.supports(arch, machine_type,
                                              caps.machine_type))
            why = (
                "explicit loader: no UEFI firmware descriptor that boots "
                "without a variable store (mode 'stateless', or 'split' "
                "without 'requires-smm') for %s has its executable among "
                "the loader images libvirt offers (%s)" %
                (where, ', '.join(os_caps.loader_paths) or 'none'))
            if smm_only:
                why += ("; the split builds requiring SMM (%s) stop in the "
                        "firmware without their variable store" %
                        ', '.join(dict.fromkeys(smm_only)))
            return None, why
        return loader, (
            "explicit loader: %s, read-only pflash without NVRAM "
            "(descriptor %s, mode '%s')" %
            (loader.path, loader.descriptor.path, loader.descriptor.mode))

    def _autoselect_stateless(
            self, arch: str, machine_type: str | None,
            caps: vconfig.LibvirtConfigDomainCaps) -> tuple[bool, str]:
        where = '%s/%s' % (arch, caps.machine_type)
        if caps.os is None or 'efi' not in caps.os.firmware:
            return False, ("firmware autoselection: the domain capabilities "
                           "of %s do not offer firmware 'efi'" % where)
        stateless = [
            d for d in self.firmware_descriptors
            if d.is_uefi and d.mode == firmware.MODE_STATELESS and
            d.supports(arch, machine_type, caps.machine_type)]
        if not stateless:
            return False, (
                "firmware autoselection: no firmware descriptor of mode "
                "'stateless' for %s, so libvirt cannot satisfy <os "
                "firmware='efi'> with <loader stateless='yes'/>" % where)
        return True, ("firmware autoselection: descriptor %s has mode "
                      "'stateless'" % stateless[0].path)

    def _check_stateless_firmware(self) -> StatelessFirmwareSupport:
        lv_ver = self.get_libvirt_version()
        hv_ver = self.get_hypervisor_version()

        def result(reasons, loader=None, xml_form=None, probe_failed=False):
            return StatelessFirmwareSupport(
                supported=xml_form is not None, reasons=reasons,
                loader=loader, xml_form=xml_form, libvirt_version=lv_ver,
                qemu_version=hv_ver, probe_failed=probe_failed)

        if lv_ver < MIN_LIBVIRT_STATELESS_FIRMWARE:
            return result([
                "libvirt %s is older than %s: it ignores <loader "
                "stateless='yes'> and would give the guest an NVRAM" %
                (_version_str(lv_ver),
                 _version_str(MIN_LIBVIRT_STATELESS_FIRMWARE))])
        reasons = ['libvirt %s >= %s' % (
            _version_str(lv_ver),
            _version_str(MIN_LIBVIRT_STATELESS_FIRMWARE))]
        if CONF.libvirt.virt_type not in QEMU_VIRT_TYPES:
            reasons.append("virt type '%s' has no UEFI firmware" %
                           CONF.libvirt.virt_type)
            return result(reasons)
        arch = self.get_host_arch()
        machine_type = self.get_default_machine_type(arch)
        try:
            caps = self.get_domain_capabilities_for(arch, machine_type)
        except libvirt.libvirtError as ex:
            reasons.append('no domain capabilities for %s/%s: %s' %
                           (arch, machine_type, ex))
            return result(reasons, probe_failed=True)
        loader, why = self._explicit_stateless_loader(
            arch, machine_type, caps)
        reasons.append(why)
        autoselect, why = self._autoselect_stateless(
            arch, machine_type, caps)
        reasons.append(why)
        # The explicit form is preferred when both work: the guest then
        # boots the very image Nova chose and reported.
        if loader is not None:
            return result(reasons, loader, XML_FORM_EXPLICIT)
        if autoselect:
            return result(reasons, None, XML_FORM_AUTOSELECT)
        return result(reasons)

    def stateless_firmware_support(self) -> StatelessFirmwareSupport:
        """Decide whether guests can boot stateless UEFI here.

        Decided once; an answer that failed only because libvirt did not
        answer (a QEMU probe failing at service start, say) is not kept,
        so the next call, e.g. the next periodic update, asks again.

        True only with libvirt >= ``MIN_LIBVIRT_STATELESS_FIRMWARE`` and a
        way to boot the default machine type of the host arch without a
        variable store: an explicit read-only loader libvirt accepts, or
        firmware autoselection with a descriptor of mode ``stateless``.
        A version number alone does not tell: libvirt 9.0 accepts the
        attribute but cannot autoselect stateless firmware without such a
        descriptor.
        """
        with self._stateless_lock:
            if self._stateless_support is not None:
                return self._stateless_support
            support = self._decide_stateless_firmware()
            if not support.probe_failed:
                self._stateless_support = support
            return support

    def _decide_stateless_firmware(self) -> StatelessFirmwareSupport:
        support = self._check_stateless_firmware()
        values = {'supported': support.supported,
                  'lv': _version_str(support.libvirt_version),
                  'hv': _version_str(support.qemu_version),
                  'form': support.xml_form,
                  'reasons': '; '.join(support.reasons)}
        if support.probe_failed:
            LOG.warning('Stateless firmware support unknown, libvirt failed '
                        'to answer (libvirt %(lv)s, QEMU %(hv)s): '
                        '%(reasons)s; asking again at the next update',
                        values)
        else:
            LOG.info('Stateless firmware support: %(supported)s '
                     '(libvirt %(lv)s, QEMU %(hv)s, XML form %(form)s): '
                     '%(reasons)s', values)
        return support

    @property
    def supports_stateless_firmware(self) -> bool:
        return self.stateless_firmware_support().supported

    # --- domains ------------------------------------------------------------

    def write_instance_config(self, xml: str) -> ty.Any:
        """Define (create or replace) a persistent domain from ``xml``."""
        return self._call('defineXML', xml)

    def get_domain(self, instance_name: str) -> ty.Any:
        """The libvirt domain named ``instance_name``.

        :raises InstanceNotFound: when libvirt has no such domain.
        :raises InternalError: on any other libvirt error.
        """
        return self._lookup_domain('lookupByName', instance_name)

    def get_instance_domain(self, instance: 'objects.Instance') -> ty.Any:
        """The libvirt domain of ``instance``, found by its UUID as Nova
        finds it: a domain of the same name that another process defined
        on a shared libvirt is not the instance's.

        :raises InstanceNotFound: when libvirt has no such domain.
        :raises InternalError: on any other libvirt error.
        """
        return self._lookup_domain('lookupByUUIDString', instance.uuid)

    def _lookup_domain(self, api: str, key: str) -> ty.Any:
        try:
            return self._call(api, key)
        except libvirt.libvirtError as ex:
            if ex.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise exception.InstanceNotFound(instance_id=key) from ex
            raise exception.InternalError(
                err='Error from libvirt while looking up %s: [Error Code '
                    '%s] %s' % (key, ex.get_error_code(), ex)
            ) from ex

    def list_instance_names(self) -> list[str]:
        """Names of all domains, running or not."""
        return [dom.name() for dom in self._call('listAllDomains', 0)]
