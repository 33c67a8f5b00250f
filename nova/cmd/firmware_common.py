"""What the ``nova-firmware`` commands share.

Reading a request from the command line (image properties, flavor), turning
it into an instance and request spec through the compute API, starting the
libvirt driver as the compute service does, and saying in one line what
went wrong and with which exit status.
"""

import argparse
import re
import socket
import typing as ty

from lxml import etree
from oslo_utils import uuidutils

from nova.cmd import firmware_report
from nova.compute import api as compute_api
import nova.conf
from nova import exception
from nova import objects
from nova.objects import fields
from nova.objects import image_meta as image_meta_obj
from nova.virt import hardware
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

CONF = nova.conf.CONF

PROG = 'nova-firmware'

EXIT_OK = 0
#: ``check``: stateless firmware unsupported; ``xml`` and ``boot``: this
#: host cannot honour the request, or the boot contradicts it.
EXIT_FAILED = 1
#: Bad input, or libvirt or placement unreachable.
EXIT_ERROR = 2

#: The largest flavor size Nova's API accepts (its database's integer),
#: which is also the largest amount placement stores.
MAX_FLAVOR_SIZE = 0x7FFFFFFF
#: Digits of a size: ASCII only, so that Python's ``int()`` does not read
#: ``2_56`` or full-width digits as numbers a user did not mean.
_DIGITS = re.compile(r'[0-9]+', re.ASCII)

#: The smallest guest that reaches the UEFI shell quickly.
DEFAULT_FLAVOR = 'vcpus=1,ram=256,disk=1'
#: ``--flavor`` keys -> (Flavor field, smallest value accepted).
FLAVOR_KEYS = {
    'vcpus': ('vcpus', 1),
    'ram': ('memory_mb', 1),
    'disk': ('root_gb', 0),
    'ephemeral': ('ephemeral_gb', 0),
    'swap': ('swap', 0),
}
FLAVOR_NAME = PROG
IMAGE_NAME = PROG

#: The image properties of a stateless UEFI guest: what ``boot`` asks for
#: by default and what ``check`` shows the XML of.
STATELESS_PROPERTIES = {
    'hw_firmware_type': 'uefi',
    'hw_firmware_stateless': 'true',
    'hw_machine_type': 'q35',
}

#: Defaults that only an x86 guest can take: ``q35`` is a PC machine type,
#: so an image naming another ``hw_architecture`` goes without it and
#: gets its architecture's default machine type (``virt`` for aarch64).
X86_ONLY_DEFAULTS = ('hw_machine_type',)
X86_ARCHITECTURES = (fields.Architecture.X86_64, fields.Architecture.I686)

#: Flavor extra specs the code of this tree reads, by key and by prefix;
#: any other key has no effect here (a typo such as ``os:secure_bot``).
KNOWN_EXTRA_SPECS = ('os:secure_boot', 'hw:mem_encryption',
                     'hw:mem_encryption_model')
KNOWN_EXTRA_SPEC_PREFIXES = ('resources:', 'trait:')


class CommandError(Exception):
    """A problem of the command's own input or environment.

    The message is the whole error line: it names the option or file and
    what was expected.
    """

    def __init__(self, message: str, exit_code: int = EXIT_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


#: Errors that mean this host cannot do what was asked, as opposed to a
#: failure: like an unsupported host in ``check``, they exit 1.
HOST_CANNOT_HONOUR = (
    exception.NoValidHost,
    exception.StatelessFirmwareNotSupported,
    exception.StatelessSecureBootNotSupported,
    exception.SecureBootNotSupported,
    exception.UEFINotSupported,
    exception.UEFILoaderNotFound,
)


# --- the request -------------------------------------------------------------

def parse_key_value(text: str, option: str) -> tuple[str, str]:
    """Split ``KEY=VALUE``.

    :raises nova.exception.InvalidInput: without ``=`` or without a key.
    """
    key, sep, value = text.partition('=')
    key = key.strip()
    if not sep or not key:
        raise exception.InvalidInput(
            reason="%s '%s' is not of the form KEY=VALUE" % (option, text))
    return key, value.strip()


def parse_key_values(items: ty.Iterable[str], option: str,
                     defaults: ty.Mapping[str, str] | None = None
                     ) -> dict[str, str]:
    """``KEY=VALUE`` items on top of ``defaults``; a later key wins."""
    result = dict(defaults or {})
    for item in items:
        key, value = parse_key_value(item, option)
        result[key] = value
    return result


def _flavor_size(spec: str, key: str, value: str) -> tuple[str, int]:
    if key not in FLAVOR_KEYS:
        raise exception.InvalidInput(
            reason="--flavor '%s': unknown key '%s'; accepted keys are %s" %
                   (spec, key, ', '.join(FLAVOR_KEYS)))
    field, minimum = FLAVOR_KEYS[key]
    number = int(value) if _DIGITS.fullmatch(value) else None
    if number is None or not minimum <= number <= MAX_FLAVOR_SIZE:
        raise exception.InvalidInput(
            reason="--flavor '%s': %s must be an integer from %d to %d, "
                   "not '%s'" % (spec, key, minimum, MAX_FLAVOR_SIZE, value))
    return field, number


def parse_flavor(spec: str,
                 extra_specs: ty.Mapping[str, str] | None = None
                 ) -> 'objects.Flavor':
    """Build a flavor from ``vcpus=1,ram=256,disk=1``.

    Keys not given keep their values of ``DEFAULT_FLAVOR``.

    :raises nova.exception.InvalidInput: naming the bad item and what is
        accepted.
    """
    sizes = {}
    for text in (DEFAULT_FLAVOR, spec):
        for item in filter(None, (i.strip() for i in text.split(','))):
            key, value = parse_key_value(item, '--flavor')
            field, number = _flavor_size(spec, key, value)
            sizes[field] = number
    return objects.Flavor(
        id=1, flavorid=FLAVOR_NAME, name=FLAVOR_NAME,
        extra_specs=dict(extra_specs or {}), **sizes)


def flavor_summary(flavor: 'objects.Flavor') -> firmware_report.Inline:
    """The flavor's sizes, keyed as ``--flavor`` takes them."""
    return firmware_report.Inline({
        key: getattr(flavor, field)
        for key, (field, _minimum) in FLAVOR_KEYS.items()})


def unknown_properties(properties: ty.Iterable[str]) -> list[str]:
    """Properties no code here reads: most likely typos.

    Glance images carry many properties Nova ignores, so the API accepts
    them; a user of this tool typing ``hw_firmware_stateles`` wants to
    know it had no effect.
    """
    known = (set(objects.ImageMetaProps.fields) |
             set(image_meta_obj.LEGACY_PROPERTY_NAMES))
    return sorted(set(properties) - known)


def unknown_extra_specs(extra_specs: ty.Iterable[str]) -> list[str]:
    """Flavor extra specs no code here reads (see ``KNOWN_EXTRA_SPECS``)."""
    return sorted(key for key in extra_specs
                  if key not in KNOWN_EXTRA_SPECS and
                  not key.startswith(KNOWN_EXTRA_SPEC_PREFIXES))


def image_dict(properties: ty.Mapping[str, str]) -> dict:
    """A Glance image as the compute API receives it."""
    return {'id': uuidutils.generate_uuid(), 'name': IMAGE_NAME,
            'status': 'active', 'disk_format': 'qcow2',
            'container_format': 'bare', 'properties': dict(properties)}


def create_instance(flavor: 'objects.Flavor',
                    properties: ty.Mapping[str, str],
                    instance_id: int = 1,
                    ) -> tuple['objects.Instance', 'objects.RequestSpec']:
    """Validate a server create as the compute API does.

    :raises nova.exception.Invalid: for a bad property or extra spec,
        naming it and the accepted values.
    """
    return compute_api.API().create(flavor, image_dict(properties),
                                    display_name=PROG,
                                    instance_id=instance_id)


def request_from_args(args: argparse.Namespace,
                      defaults: ty.Mapping[str, str] | None,
                      out: firmware_report.Output,
                      ) -> tuple[dict[str, str], 'objects.Flavor']:
    """The image properties and flavor of ``--property``, ``--flavor`` and
    ``--extra-spec``, warning about properties nothing reads.

    :raises nova.exception.InvalidInput: for a malformed item.
    """
    given = parse_key_values(args.property, '--property')
    properties = parse_key_values(args.property, '--property', defaults)
    if given.get('hw_architecture', X86_ARCHITECTURES[0]) not in (
            X86_ARCHITECTURES):
        for key in X86_ONLY_DEFAULTS:
            if key not in given:
                properties.pop(key, None)
    extra_specs = parse_key_values(args.extra_spec, '--extra-spec')
    flavor = parse_flavor(args.flavor, extra_specs)
    for name in unknown_properties(properties):
        out.warning("image property '%s' is not one Nova reads; it has no "
                    "effect" % name)
    for key in unknown_extra_specs(extra_specs):
        out.warning("flavor extra spec '%s' is not one Nova reads here; it "
                    "has no effect" % key)
    return properties, flavor


def request_warnings(image_meta: 'objects.ImageMeta') -> list[str]:
    """What a valid request asks for that will have no effect.

    The API accepts it, as Nova does, and logs it; the user of this tool
    reads the report, not the log.
    """
    props = image_meta.properties
    if (props.get('hw_firmware_stateless') and
            hardware.get_firmware_type(image_meta) !=
            fields.FirmwareType.UEFI):
        return ["image property 'hw_firmware_stateless' is ignored: the "
                "image boots BIOS, which keeps no NVRAM; set "
                "'hw_firmware_type=uefi' to boot stateless UEFI firmware"]
    return []


# --- the host ----------------------------------------------------------------

def hostname() -> str:
    """The compute node name, as the compute service takes it."""
    return CONF.host or socket.gethostname()


def start_driver() -> libvirt_driver.LibvirtDriver:
    """The libvirt driver, initialized as the compute service does it.

    :raises nova.exception.HypervisorUnavailable: libvirt unreachable.
    """
    driver = libvirt_driver.LibvirtDriver()
    driver.init_host(hostname())
    return driver


def check_machine_type(driver: libvirt_driver.LibvirtDriver,
                       image_meta: 'objects.ImageMeta') -> None:
    """Refuse a machine type QEMU on this host does not offer.

    libvirt would refuse it too, naming neither the image property nor
    what this host offers.

    :raises CommandError: exit status 1, naming ``hw_machine_type`` and
        the machine types offered for the guest's architecture.
    """
    machine_type = image_meta.properties.get('hw_machine_type')
    if not machine_type:
        return
    host = driver.host
    arch = image_meta.properties.get('hw_architecture') or (
        host.get_host_arch())
    virt_type = CONF.libvirt.virt_type
    offered: set[str] = set()
    for guest in host.get_capabilities().guests:
        if guest.arch == arch and virt_type in guest.domains:
            offered.update(guest.domains[virt_type].machines)
    if machine_type not in offered:
        raise CommandError(
            "this host cannot honour the request: image property "
            "'hw_machine_type' is '%s', which QEMU here does not offer for "
            "%s guests of virt type %s; it offers %s" % (
                machine_type, arch, virt_type,
                summarize_machine_types(offered) or 'none'),
            exit_code=EXIT_FAILED)


_VERSIONED_MACHINE = re.compile(r'(.+)-([0-9]+(?:\.[0-9]+)*)', re.ASCII)


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split('.'))


def summarize_machine_types(names: ty.Iterable[str]) -> str:
    """``pc, q35, pc-q35-2.4 to pc-q35-7.2``: QEMU's machine types, with
    each family of versioned ones as its oldest and newest.
    """
    plain = []
    families: dict[str, list[str]] = {}
    for name in names:
        match = _VERSIONED_MACHINE.fullmatch(name)
        if match:
            families.setdefault(match.group(1), []).append(match.group(2))
        else:
            plain.append(name)
    parts = sorted(plain)
    for family, versions in sorted(families.items()):
        versions.sort(key=_version_key)
        if len(versions) == 1:
            parts.append('%s-%s' % (family, versions[0]))
        else:
            parts.append('%s-%s to %s-%s' % (family, versions[0], family,
                                              versions[-1]))
    return ', '.join(parts)


def version_str(version: ty.Sequence[int]) -> str:
    """``(9, 0, 0)`` as ``9.0.0``."""
    return '.'.join(str(part) for part in version)


def os_element(domain_xml: str) -> str:
    """The ``<os>`` element of a domain XML, as indented text."""
    node = etree.fromstring(domain_xml).find('os')
    if node is None:
        return ''
    # Indent it afresh: in the document it carries its depth's whitespace.
    etree.indent(node, space='  ')
    return etree.tostring(node, encoding='unicode', with_tail=False)


# --- errors ------------------------------------------------------------------

def _one_line(text: str) -> str:
    return '; '.join(line.strip() for line in str(text).splitlines()
                     if line.strip())


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong, for standard error and reports."""
    if not isinstance(exc, Exception):
        # KeyboardInterrupt, or a signal the tool turned into an exception.
        return _one_line(str(exc) or 'interrupted')
    if isinstance(exc, CommandError):
        return _one_line(str(exc))
    if isinstance(exc, exception.LibvirtEmbedUnavailable):
        return _one_line(exc.format_message())
    if isinstance(exc, exception.HypervisorUnavailable):
        # The message names the host; the libvirt error it comes from says
        # what the operator can act on (a missing socket, a denied access).
        cause = exc.__cause__
        return _one_line('cannot connect to libvirt at %s: %s' % (
            libvirt_host.default_uri(),
            cause if cause is not None else exc.format_message()))
    if isinstance(exc, exception.NovaException):
        return _one_line(exc.format_message())
    return _one_line('%s: %s' % (type(exc).__name__, exc))


def exit_code_for(exc: BaseException) -> int:
    if isinstance(exc, CommandError):
        return exc.exit_code
    if isinstance(exc, HOST_CANNOT_HONOUR):
        return EXIT_FAILED
    return EXIT_ERROR
