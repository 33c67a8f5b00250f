"""What a booted guest shows from the host, for the series' boot checks.

Standard library only, besides the libvirt binding ``connection_problem``
imports: the boot checks import this module inside the virtualenv of the
Nova release under test, where this repository's own ``nova`` package is
not importable. Each helper reads what libvirt and
QEMU left on the host (the live domain XML, the QEMU command line in the
domain's log, the NVRAM directory, the serial console file) and trusts
nothing Nova says about itself.
"""

import dataclasses
import json
import os
import re
import shlex
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ET

#: Text OVMF prints on the serial console once it has booted: the UEFI
#: shell it falls back to without a bootable disk, or its boot manager.
FIRMWARE_MARKERS = ('UEFI Interactive Shell', 'Shell>', 'BdsDxe:')

SYSTEM_QEMU_LOG_DIR = '/var/log/libvirt/qemu'
SYSTEM_NVRAM_DIR = '/var/lib/libvirt/qemu/nvram'

_PFLASH = re.compile(r'(?:^|,)pflash(\d)=([^,]+)')


def embed_root(uri: str) -> str | None:
    """The root of a ``qemu:///embed?root=DIR`` URI, else None."""
    parts = urllib.parse.urlsplit(uri)
    if parts.path != '/embed':
        return None
    return urllib.parse.parse_qs(parts.query).get('root', [''])[0]


def connection_problem(uri: str) -> str | None:
    """Why a libvirt daemon's URI cannot be opened, or None.

    Asked before any Nova code opens it: a release's ``Host`` reports a
    failed connection through the RPC notifier, which a boot check does
    not set up, so the libvirt error would be lost behind that one. An
    embedded URI needs no daemon and is not checked.
    """
    if embed_root(uri) is not None:
        return None
    # The libvirt binding is the boot check's own requirement, beside the
    # release's virtualenv; only this function needs it.
    import libvirt
    try:
        libvirt.open(uri).close()
    except libvirt.libvirtError as e:
        return ('cannot open %s: %s; start the libvirt daemon (systemctl '
                'start libvirtd, or virtlogd -d and libvirtd -d) or choose '
                'another --connection' % (uri, e.get_error_message()))
    return None


def daemon_guest_root(prefix: str) -> str:
    """A new directory for guest files that a libvirt daemon's QEMU reaches.

    The daemon runs QEMU as its own user, which must reach the guests'
    disks and consoles: not under the runner's work directory (tox makes
    .tox/ private to root).
    """
    root = tempfile.mkdtemp(prefix=prefix, dir='/var/tmp')
    os.chmod(root, 0o755)
    return root


def qemu_log_dir(uri: str) -> str:
    root = embed_root(uri)
    if root is None:
        return SYSTEM_QEMU_LOG_DIR
    return os.path.join(root, 'log', 'qemu')


def nvram_dir(uri: str) -> str:
    root = embed_root(uri)
    if root is None:
        return SYSTEM_NVRAM_DIR
    return os.path.join(root, 'lib', 'qemu', 'nvram')


def nvram_files(uri: str, domain_name: str) -> list[str]:
    """NVRAM files libvirt keeps for ``domain_name`` (``NAME_VARS.fd``)."""
    directory = nvram_dir(uri)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, n) for n in names
                  if n.startswith(domain_name + '_'))


def last_qemu_command_line(uri: str, domain_name: str) -> str:
    """The command line of the domain's last QEMU start, from its log.

    libvirt writes it with one argument per line, ending lines with a
    backslash; returned joined into one line.
    """
    path = os.path.join(qemu_log_dir(uri), domain_name + '.log')
    with open(path, encoding='utf-8', errors='replace') as f:
        lines = f.read().splitlines()
    start = None
    for i, line in enumerate(lines):
        if 'qemu-system-' in line and (line.endswith('\\') or
                                       ' -name ' in line):
            start = i
    if start is None:
        return ''
    parts = []
    for line in lines[start:]:
        parts.append(line.rstrip('\\').strip())
        if not line.endswith('\\'):
            break
    return ' '.join(parts)


@dataclasses.dataclass(frozen=True)
class PflashDrive:
    """One ``pflashN`` device QEMU was given."""

    unit: int
    filename: str | None
    read_only: bool

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def pflash_drives(command_line: str) -> list[PflashDrive]:
    """The flash drives of a QEMU command line.

    libvirt gives them as ``-blockdev`` JSON objects, a format node
    (``read-only``) over a file node (``filename``), and attaches the
    format nodes with ``-machine ...,pflashN=NODE``. The older
    ``-drive if=pflash,unit=N,readonly=on,file=...`` form is read too.
    """
    args = shlex.split(command_line)
    nodes = {}
    machine = ''
    drives = []
    for opt, value in zip(args, args[1:]):
        if opt == '-blockdev' and value.startswith('{'):
            node = json.loads(value)
            nodes[node.get('node-name')] = node
        elif opt == '-machine':
            machine = value
        elif opt == '-drive' and 'if=pflash' in value:
            props = dict(p.partition('=')[::2] for p in value.split(','))
            drives.append(PflashDrive(
                unit=int(props.get('unit', len(drives))),
                filename=props.get('file'),
                read_only=props.get('readonly') in ('on', 'yes', 'true')))
    for unit, name in _PFLASH.findall(machine):
        node = nodes.get(name, {})
        read_only = bool(node.get('read-only'))
        filename = node.get('filename')
        child = node.get('file')
        while filename is None and isinstance(child, str) and (
                child in nodes):
            read_only = read_only or bool(nodes[child].get('read-only'))
            filename = nodes[child].get('filename')
            child = nodes[child].get('file')
        drives.append(PflashDrive(int(unit), filename, read_only))
    return sorted(drives, key=lambda d: d.unit)


def os_loader(domain_xml: str) -> dict:
    """The ``<os>`` firmware of a domain XML: loader attributes and path,
    and the ``<nvram>`` element if any.
    """
    root = ET.fromstring(domain_xml)
    os_el = root.find('os')
    result = {'firmware': None, 'loader': None, 'nvram': None}
    if os_el is None:
        return result
    result['firmware'] = os_el.get('firmware')
    loader = os_el.find('loader')
    if loader is not None:
        result['loader'] = dict(loader.attrib, path=(loader.text or '').strip()
                                or None)
    nvram = os_el.find('nvram')
    if nvram is not None:
        result['nvram'] = dict(nvram.attrib,
                               path=(nvram.text or '').strip() or None)
    return result


def os_element(domain_xml: str) -> str:
    """The ``<os>`` element of a domain XML, as text."""
    os_el = ET.fromstring(domain_xml).find('os')
    if os_el is None:
        return ''
    return ET.tostring(os_el, encoding='unicode').strip()


def wait_for_firmware(console_path: str, timeout: float,
                      markers: tuple[str, ...] = FIRMWARE_MARKERS
                      ) -> str | None:
    """The first marker seen in the console file within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(console_path, encoding='utf-8', errors='replace') as f:
                text = f.read()
        except FileNotFoundError:
            text = ''
        for marker in markers:
            if marker in text:
                return marker
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.5)


def stateless_problems(evidence: dict) -> list[str]:
    """What in ``evidence`` (see ``collect``) contradicts a stateless boot;
    empty when it shows one.
    """
    problems = []
    loader = evidence['live_os'].get('loader') or {}
    if loader.get('stateless') != 'yes':
        problems.append("the live <loader> has no stateless='yes'")
    if evidence['live_os'].get('nvram'):
        problems.append('the live <os> has an <nvram>')
    drives = evidence['pflash']
    if len(drives) != 1:
        problems.append('QEMU got %d pflash drives, not one' % len(drives))
    elif not drives[0]['read_only']:
        problems.append('the pflash drive is writable')
    if evidence['nvram_files']:
        problems.append('NVRAM files exist: %s' %
                        ', '.join(evidence['nvram_files']))
    if not evidence['firmware_marker']:
        problems.append('the firmware printed nothing known on the serial '
                        'console')
    return problems


def collect(uri: str, domain_name: str, live_xml: str,
            marker: str | None) -> dict:
    """Everything the host shows about a booted guest, as a dict."""
    command_line = last_qemu_command_line(uri, domain_name)
    return {
        'domain': domain_name,
        'uri': uri,
        'live_os': os_loader(live_xml),
        'live_os_xml': os_element(live_xml),
        'pflash': [d.as_dict() for d in pflash_drives(command_line)],
        'pflash_arguments': [a for a in shlex.split(command_line)
                             if 'pflash' in a],
        'nvram_files': nvram_files(uri, domain_name),
        'firmware_marker': marker,
    }
