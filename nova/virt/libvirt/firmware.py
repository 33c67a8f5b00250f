"""QEMU firmware descriptors and the choice of a guest's UEFI loader.

Firmware packages describe each build they ship with a JSON descriptor in
the format of QEMU's ``docs/interop/firmware.json``. Libvirt reads the same
files for firmware autoselection, so reading them here lets Nova pick the
very loader libvirt would accept, and tell whether a build can run without a
variable store (stateless) and still enforce secure boot.

Descriptors are read from ``[libvirt] firmware_descriptor_dirs`` with the
override rules of the interop specification, as libvirt applies them:

* a file in a later directory replaces the file of the same name in an
  earlier one, and an empty file hides it;
* the surviving files are ordered by file name, and a lower name has a
  higher priority (``40-secure.json`` before ``60-plain.json``).

A descriptor that cannot be read or does not follow the format is skipped
with a warning naming the file: one broken package must not take UEFI away
from a compute host.
"""

import collections.abc
import dataclasses
import fnmatch
import json
import os

from oslo_log import log as logging

import nova.conf
from nova import exception

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

INTERFACE_UEFI = 'uefi'

DEVICE_FLASH = 'flash'

MODE_SPLIT = 'split'
MODE_COMBINED = 'combined'
MODE_STATELESS = 'stateless'
FLASH_MODES = (MODE_SPLIT, MODE_COMBINED, MODE_STATELESS)

FEATURE_ENROLLED_KEYS = 'enrolled-keys'
FEATURE_REQUIRES_SMM = 'requires-smm'
FEATURE_SECURE_BOOT = 'secure-boot'

LOADER_TYPE_PFLASH = 'pflash'


class InvalidDescriptor(ValueError):
    """A descriptor file does not follow the interop format."""


@dataclasses.dataclass(frozen=True)
class FirmwareDescriptor:
    """One firmware build as its descriptor file describes it.

    Only flash-mapped firmware is modelled, the only kind a libvirt
    ``<loader type='pflash'>`` can point at.
    """

    path: str
    description: str
    interface_types: tuple[str, ...]
    mode: str
    executable: str
    executable_format: str
    nvram_template: str | None
    nvram_template_format: str | None
    #: ``(architecture, (machine glob, ...))`` pairs.
    targets: tuple[tuple[str, tuple[str, ...]], ...]
    features: frozenset[str]

    @property
    def name(self) -> str:
        """The file name, which decides both override and priority."""
        return os.path.basename(self.path)

    @property
    def is_uefi(self) -> bool:
        return INTERFACE_UEFI in self.interface_types

    @property
    def secure_boot(self) -> bool:
        """The build can do secure boot; whether it enforces it depends on
        the keys in the variable store (see ``enforces_secure_boot``).
        """
        return FEATURE_SECURE_BOOT in self.features

    @property
    def enrolled_keys(self) -> bool:
        return FEATURE_ENROLLED_KEYS in self.features

    @property
    def requires_smm(self) -> bool:
        return FEATURE_REQUIRES_SMM in self.features

    def enforces_secure_boot(self, stateless: bool) -> bool:
        """Whether a guest booted from this build verifies signatures.

        The keys live in the variable store. A stateful guest gets them
        from the NVRAM template of a descriptor with ``enrolled-keys``. A
        stateless guest has no variable store, so a split build used
        read-only boots in setup mode, where nothing is verified; only a
        build of mode ``stateless`` can carry enrolled keys in its
        executable.
        """
        if not (self.secure_boot and self.enrolled_keys):
            return False
        if stateless:
            return self.mode == MODE_STATELESS
        return True

    def supports(self, arch: str, *machine_types: str | None) -> bool:
        """Whether the build targets ``arch`` and any of the machine type
        names given, e.g. both an alias (``q35``) and the versioned type it
        stands for (``pc-q35-7.2``), since descriptors list glob patterns
        of versioned names (``pc-q35-*``).
        """
        names = [m for m in machine_types if m]
        for target_arch, globs in self.targets:
            if target_arch != arch:
                continue
            if any(fnmatch.fnmatchcase(name, glob)
                   for name in names for glob in globs):
                return True
        return False


@dataclasses.dataclass(frozen=True)
class UEFILoader:
    """The loader the driver writes into a guest's ``<os>``.

    ``nvram_template`` is None for a stateless guest: the executable is
    mapped read-only and the guest gets no variable store at all.
    ``secure_boot`` is True only when the guest will enforce secure boot,
    not merely when the build is capable of it.
    """

    path: str
    loader_type: str
    format: str
    requires_smm: bool
    nvram_template: str | None
    secure_boot: bool
    stateless: bool
    descriptor: FirmwareDescriptor

    @property
    def readonly(self) -> bool:
        # Both split and stateless executables are shared by all guests
        # and must never be written to.
        return True


def _require(data: dict, key: str, kind: type):
    if key not in data:
        raise InvalidDescriptor("missing key '%s'" % key)
    value = data[key]
    if not isinstance(value, kind):
        raise InvalidDescriptor("key '%s' must be a %s, not %s" % (
            key, kind.__name__, type(value).__name__))
    return value


def _parse_strings(data: dict, key: str) -> tuple[str, ...]:
    values = _require(data, key, list)
    if not all(isinstance(v, str) for v in values):
        raise InvalidDescriptor("key '%s' must list strings" % key)
    return tuple(values)


def _parse_file(mapping: dict, key: str) -> tuple[str, str]:
    entry = _require(mapping, key, dict)
    filename = _require(entry, 'filename', str)
    fmt = _require(entry, 'format', str)
    if not os.path.isabs(filename):
        raise InvalidDescriptor(
            "'%s' filename must be an absolute path, not '%s'" %
            (key, filename))
    return filename, fmt


def _parse_targets(data: dict) -> tuple[tuple[str, tuple[str, ...]], ...]:
    targets = []
    for target in _require(data, 'targets', list):
        if not isinstance(target, dict):
            raise InvalidDescriptor("each target must be an object")
        arch = _require(target, 'architecture', str)
        targets.append((arch, _parse_strings(target, 'machines')))
    return tuple(targets)


def descriptor_from_dict(path: str, data) -> FirmwareDescriptor:
    """Build a descriptor from the decoded JSON of the file at ``path``.

    :raises InvalidDescriptor: when the document does not describe a
        flash-mapped firmware in the interop format.
    """
    if not isinstance(data, dict):
        raise InvalidDescriptor("the document must be a JSON object")
    mapping = _require(data, 'mapping', dict)
    device = _require(mapping, 'device', str)
    if device != DEVICE_FLASH:
        raise InvalidDescriptor(
            "mapping device '%s' cannot be used as a pflash loader" %
            device)
    # The specification makes 'split' the default, for descriptors
    # written before the mode existed.
    mode = mapping.get('mode', MODE_SPLIT)
    if mode not in FLASH_MODES:
        raise InvalidDescriptor(
            "flash mode '%s' is not one of %s" % (mode, ', '.join(
                FLASH_MODES)))
    executable, executable_format = _parse_file(mapping, 'executable')
    nvram_template = nvram_template_format = None
    if mode == MODE_SPLIT and 'nvram-template' in mapping:
        nvram_template, nvram_template_format = _parse_file(
            mapping, 'nvram-template')
    description = data.get('description', '')
    if not isinstance(description, str):
        raise InvalidDescriptor("key 'description' must be a str")
    return FirmwareDescriptor(
        path=path,
        description=description,
        interface_types=_parse_strings(data, 'interface-types'),
        mode=mode,
        executable=executable,
        executable_format=executable_format,
        nvram_template=nvram_template,
        nvram_template_format=nvram_template_format,
        targets=_parse_targets(data),
        features=frozenset(_parse_strings(data, 'features')),
    )


def parse_descriptor(path: str) -> FirmwareDescriptor | None:
    """Read one descriptor file; None, with a warning, if it is unusable."""
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
        return descriptor_from_dict(path, data)
    except (OSError, UnicodeDecodeError) as ex:
        reason = str(ex)
    except json.JSONDecodeError as ex:
        reason = 'invalid JSON: %s' % ex
    except InvalidDescriptor as ex:
        reason = str(ex)
    LOG.warning('Ignoring firmware descriptor %(path)s: %(reason)s',
                {'path': path, 'reason': reason})
    return None


def find_descriptor_files(
        dirs: collections.abc.Iterable[str]) -> list[str]:
    """The descriptor files in effect, highest priority first.

    ``dirs`` are ordered lowest precedence first. Hidden files are skipped
    and empty files mask their namesakes, as libvirt does, so that Nova
    and libvirt agree on which firmware a host has.
    """
    by_name: dict[str, str] = {}
    for directory in dirs:
        try:
            names = os.listdir(directory)
        except FileNotFoundError:
            continue
        except OSError as ex:
            LOG.warning('Cannot list firmware descriptor directory '
                        '%(dir)s: %(err)s', {'dir': directory, 'err': ex})
            continue
        for name in names:
            path = os.path.join(directory, name)
            if name.startswith('.') or not os.path.isfile(path):
                continue
            by_name[name] = path
    files = []
    for name in sorted(by_name):
        path = by_name[name]
        try:
            if os.path.getsize(path) == 0:
                LOG.debug('Firmware descriptor %s is empty: it masks '
                          'any other file named %s', path, name)
                continue
        except OSError:
            # parse_descriptor reports unreadable files.
            pass
        files.append(path)
    return files


def load_descriptors(
        dirs: collections.abc.Iterable[str] | None = None
) -> list[FirmwareDescriptor]:
    """Parse the descriptors in effect, highest priority first.

    :param dirs: directories, lowest precedence first; defaults to
        ``[libvirt] firmware_descriptor_dirs``.
    """
    if dirs is None:
        dirs = CONF.libvirt.firmware_descriptor_dirs
    descriptors = []
    for path in find_descriptor_files(dirs):
        descriptor = parse_descriptor(path)
        if descriptor is not None:
            descriptors.append(descriptor)
    return descriptors


def _usable_modes(stateless: bool) -> tuple[str, ...]:
    # A combined image holds code and variables in one writable file that
    # every guest would share, so it is never used. A split executable
    # mapped read-only without its template can be a stateless loader (see
    # ``boots_stateless``).
    if stateless:
        return (MODE_STATELESS, MODE_SPLIT)
    return (MODE_SPLIT,)


def boots_stateless(descriptor: FirmwareDescriptor) -> bool:
    """Whether the build boots with no variable store at all.

    A build of mode ``stateless`` is made for it. A split build used
    without its variable store boots only when its variable driver can
    fall back to variables kept in guest RAM: OVMF's builds without SMM
    do, but a build that ``requires-smm`` keeps its variables behind SMM
    in the flash device and has no such fallback. Booted read-only alone,
    Debian 12's ``OVMF_CODE_4M.secboot.fd`` (and the ``.ms.fd`` link to it)
    stops in the firmware with ``X64 Exception Type - 06(#UD - Invalid
    Opcode)``, with or without SMM emulated, while ``OVMF_CODE_4M.fd``
    reaches the UEFI shell.
    """
    if descriptor.mode == MODE_STATELESS:
        return True
    return descriptor.mode == MODE_SPLIT and not descriptor.requires_smm


def _is_candidate(descriptor: FirmwareDescriptor, arch: str,
                  machine_names: tuple[str | None, ...], stateless: bool,
                  loader_paths: collections.abc.Container[str] | None
                  ) -> bool:
    if not descriptor.is_uefi:
        return False
    if descriptor.mode not in _usable_modes(stateless):
        return False
    if stateless and not boots_stateless(descriptor):
        return False
    if not stateless and descriptor.nvram_template is None:
        return False
    if loader_paths is not None and descriptor.executable not in (
            loader_paths):
        return False
    return descriptor.supports(arch, *machine_names)


def _preference(descriptor: FirmwareDescriptor, index: int,
                secure_boot: bool) -> tuple:
    # Without secure boot, the plain build is preferred over one that can
    # do secure boot (which may need SMM) but will not enforce it. A build
    # made for stateless use is preferred over a split executable used
    # without its variables. Ties keep the descriptor priority.
    capable_but_unused = descriptor.secure_boot and not secure_boot
    return (capable_but_unused, descriptor.mode != MODE_STATELESS, index)


def choose_loader(
    descriptors: collections.abc.Sequence[FirmwareDescriptor],
    arch: str,
    machine_type: str,
    *,
    secure_boot: bool,
    stateless: bool,
    machine_aliases: collections.abc.Mapping[str, str | None] | None = None,
    loader_paths: collections.abc.Container[str] | None = None,
) -> UEFILoader:
    """Choose the UEFI loader for a guest.

    :param descriptors: firmware descriptors, highest priority first.
    :param arch: the guest architecture, e.g. ``x86_64``.
    :param machine_type: the guest machine type, alias or versioned.
    :param secure_boot: the guest must enforce secure boot; when False,
        a loader that would enforce it is never chosen.
    :param stateless: the guest gets a read-only executable and no
        variable store.
    :param machine_aliases: alias -> versioned machine type, from the
        host capabilities, so ``q35`` matches ``pc-q35-*``.
    :param loader_paths: loader images libvirt accepts (domain
        capabilities); None to accept any.
    :raises UEFILoaderNotFound: when no descriptor fits.
    """
    machine_names = (machine_type,
                     (machine_aliases or {}).get(machine_type))
    candidates = [
        (_preference(d, index, secure_boot), d)
        for index, d in enumerate(descriptors)
        if _is_candidate(d, arch, machine_names, stateless, loader_paths)
        and d.enforces_secure_boot(stateless) == secure_boot
    ]
    if not candidates:
        raise exception.UEFILoaderNotFound(
            arch=arch, machine_type=machine_type, secure=secure_boot,
            stateless=stateless)
    descriptor = min(candidates, key=lambda c: c[0])[1]
    return UEFILoader(
        path=descriptor.executable,
        loader_type=LOADER_TYPE_PFLASH,
        format=descriptor.executable_format,
        requires_smm=descriptor.requires_smm,
        nvram_template=None if stateless else descriptor.nvram_template,
        secure_boot=secure_boot,
        stateless=stateless,
        descriptor=descriptor,
    )
