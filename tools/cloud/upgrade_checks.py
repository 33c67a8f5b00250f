"""What an upgrade of the patched 2024.1 cloud checks, as pure functions.

:mod:`tools.cloud.upgrade` drives the cloud; here is what it compares and
prints, tested without a cloud: the releases it upgrades to, the firmware
of a server before and after each step, the service log lines that tell
of an RPC or object version problem, ``nova-status upgrade check``'s
verdict and the table of servers by steps.
"""

import dataclasses
import hashlib
import os
import re
import struct
import textwrap
import typing as ty
import xml.etree.ElementTree as ET

from tools.cloud import evidence
from tools.cloud.evidence import StepError

HERE = os.path.dirname(os.path.abspath(__file__))


@dataclasses.dataclass(frozen=True)
class Target:
    """A release the cloud upgrades to, installed from PyPI."""
    release: str
    nova: str
    placement: str

    @property
    def pins(self) -> str:
        return os.path.join(HERE, 'constraints', '%s.txt' % self.release)

    @property
    def requirements(self) -> tuple[str, ...]:
        return ('nova==%s' % self.nova,
                'openstack-placement==%s' % self.placement,
                'PyMySQL', 'python-memcached', 'libvirt-python', 'gunicorn')


TARGETS = {
    '2024.2': Target('2024.2', nova='30.3.0', placement='12.0.0'),
    '2025.1': Target('2025.1', nova='31.3.1', placement='13.0.0'),
}


@dataclasses.dataclass(frozen=True)
class Path:
    """One way from the patched 2024.1 cloud to a newer release."""
    name: str
    target: str
    #: True: the control plane first, the old compute kept for a while
    #: (``[upgrade_levels] compute = auto``); False: all of nova at once.
    rolling: bool
    description: str


PATHS = {
    'rolling': Path('rolling', '2024.2', True,
                    '2024.1 (patched) -> 2024.2: control plane first, '
                    'then the compute'),
    'skip-level': Path('skip-level', '2025.1', False,
                       '2024.1 (patched) -> 2025.1 (SLURP): control plane '
                       'and compute together'),
}

#: The servers the cloud has before the upgrade: name -> (firmware kind,
#: state before the upgrade). The kind is what each must keep.
SERVERS = {
    'fw-stateless': ('stateless', 'ACTIVE'),
    'fw-stateless-off': ('stateless', 'SHUTOFF'),
    'fw-stateless-shelved': ('stateless', 'SHELVED_OFFLOADED'),
    'fw-stateful': ('stateful', 'ACTIVE'),
    'fw-bios': ('bios', 'ACTIVE'),
}

#: Service log lines that tell of an RPC or versioned object that one
#: side could not read: a backport asked of the conductor, a version a
#: service does not know, a pin it cannot honour.
#: Not the names of the RPC calls themselves: a call to the conductor
#: that timed out while it was stopped for the upgrade shows
#: ``object_class_action_versions`` in its traceback.
VERSION_PROBLEMS = re.compile(
    r'IncompatibleObjectVersion|Version [0-9.]+ of \w+ is not supported'
    r'|ObjectActionError|UnsupportedObjectError|Unsupported object type'
    r'|UnsupportedVersion|RPC version cap'
    r'|Endpoint does not support RPC version'
    r'|requested version .* is newer than', re.IGNORECASE)
#: Other lines worth showing when a step fails.
ERROR_LINE = re.compile(r'\b(ERROR|CRITICAL)\b|Traceback')


#: An OVMF variable store's monotonic boot counter: the UEFI variable
#: "MTC" (UTF-16), which the firmware increments at every boot. A store
#: kept across a boot counts on; one made anew from the template starts
#: again at 1.
_MTC_NAME = 'MTC\0'.encode('utf-16-le')
#: The header of an authenticated variable (StartId, State, Reserved,
#: Attributes, MonotonicCount, TimeStamp, PubKeyIndex, NameSize,
#: DataSize, VendorGuid), followed by the name and the data.
_AUTH_HEADER = 60
_START_ID = 0x55aa
_VAR_ADDED = 0x3f


def boot_counter(store: bytes) -> int | None:
    """The firmware's boot counter in an OVMF variable store, or None
    when the store has none (never booted).
    """
    found = None
    pos = store.find(_MTC_NAME)
    while pos != -1:
        head = pos - _AUTH_HEADER
        if head >= 0:
            start, state = struct.unpack_from('<HB', store, head)
            name_size, data_size = struct.unpack_from('<II', store,
                                                      head + 36)
            if (start == _START_ID and state == _VAR_ADDED and
                    name_size == len(_MTC_NAME) and data_size == 4):
                (found,) = struct.unpack_from('<I', store, pos + name_size)
        pos = store.find(_MTC_NAME, pos + 1)
    return found


@dataclasses.dataclass(frozen=True)
class Store:
    """One NVRAM file."""
    sha256: str
    boots: int | None


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A server's firmware as the host shows it."""
    domain: str
    os_xml: str
    firmware: evidence.Firmware
    #: NVRAM files of the domain by path.
    nvram: dict[str, Store]

    def describe(self) -> str:
        files = ', '.join('%s sha256 %s boot counter %s' % (
            os.path.basename(p), st.sha256[:12], st.boots)
            for p, st in sorted(self.nvram.items()))
        return '%s; NVRAM %s' % (self.firmware.describe(), files or 'none')


def os_element(xml: str) -> str:
    """The ``<os>`` element of a domain's XML, on one line."""
    root = ET.fromstring(xml)
    os_el = root.find('os')
    if os_el is None:
        raise StepError('the domain XML has no <os> element')
    return ' '.join(ET.tostring(os_el, encoding='unicode').split())


def snapshot(domain: str, xml: str, nvram: dict[str, Store]) -> Snapshot:
    return Snapshot(domain, os_element(xml), evidence.firmware_of(xml),
                    dict(nvram))


def store_of(data: bytes) -> Store:
    return Store(hashlib.sha256(data).hexdigest(), boot_counter(data))


#: The verdicts of a server at a step, as the table shows them.
OK = 'ok'
RESET = 'reset'
FAILED = 'FAIL'


def check_kept(kind: str, before: Snapshot | None, now: Snapshot,
               keeps_store: bool = True,
               booted: bool = True) -> tuple[str, str]:
    """(verdict, what ``now`` shows) if the server kept the firmware of
    ``kind``; else :class:`StepError` saying what changed.

    A stateful server must keep its NVRAM file: byte for byte when it
    did not boot since ``before`` (``booted`` False), its boot counter
    grown when it did. The same bytes after a boot are a store made anew
    and booted as often as the old one had been.
    Where the compute recreates the store at a hard reboot or a start
    (``keeps_store`` False: nova before 2025.1 undefines the domain with
    its NVRAM there), a store that starts counting again is the verdict
    :data:`RESET`, not a failure; where it keeps it, it is a failure.
    """
    fw = now.firmware
    if kind == 'stateless':
        if not fw.stateless:
            raise StepError('not stateless any more: %s' % now.describe())
        loader = fw.loaders[0]
        if (loader.get('readonly'), loader.get('type')) != ('yes',
                                                            'pflash'):
            raise StepError('loader not a read-only pflash: %s' %
                            now.describe())
        if now.nvram:
            raise StepError('NVRAM files appeared: %s' % now.describe())
        return OK, 'stateless: one read-only pflash, no <nvram>, no file'
    if kind == 'stateful':
        if any(lo.get('stateless') == 'yes' for lo in fw.loaders):
            raise StepError("stateless='yes' on a stateful server: %s" %
                            now.describe())
        if not fw.nvram:
            raise StepError('no <nvram>: %s' % now.describe())
        if fw.nvram not in now.nvram:
            raise StepError('<nvram> %s has no file: %s' % (
                fw.nvram, now.describe()))
        store = now.nvram[fw.nvram]
        name = os.path.basename(fw.nvram)
        if before is None:
            return OK, 'stateful: %s sha256 %s, boot counter %s' % (
                name, store.sha256[:12], store.boots)
        if before.firmware.nvram != fw.nvram:
            raise StepError('NVRAM file moved: %s -> %s' % (
                before.firmware.nvram, fw.nvram))
        old = before.nvram.get(fw.nvram)
        if old is None:
            raise StepError('%s had no file before' % fw.nvram)
        if not booted:
            if old.sha256 != store.sha256:
                raise StepError('stateful: %s changed without a boot: '
                                'sha256 %s -> %s' % (name, old.sha256[:12],
                                                     store.sha256[:12]))
            return OK, 'stateful: %s unchanged (sha256 %s)' % (
                name, store.sha256[:12])
        if (old.boots is not None and store.boots is not None and
                store.boots > old.boots):
            return OK, ('stateful: %s kept, the firmware counted on '
                        '(boot counter %d -> %d)' % (name, old.boots,
                                                     store.boots))
        seen = ('%s recreated from the template: boot counter %s -> %s, '
                'sha256 %s -> %s' % (name, old.boots, store.boots,
                                     old.sha256[:12], store.sha256[:12]))
        if keeps_store:
            raise StepError('stateful: ' + seen)
        return RESET, 'stateful: ' + seen
    if kind == 'bios':
        if fw.loaders or fw.nvram is not None or fw.firmware_attr:
            raise StepError('BIOS server has UEFI firmware: %s' %
                            now.describe())
        if now.nvram:
            raise StepError('NVRAM files for a BIOS server: %s' %
                            now.describe())
        return OK, 'BIOS: no loader, no NVRAM (%s)' % fw.machine
    raise ValueError('unknown firmware kind %r' % kind)


def keeps_store(nova_version: str) -> bool:
    """Whether a nova-compute of this version keeps a guest's NVRAM file
    at a hard reboot and at a start (2025.1, nova 31, and later).
    """
    return int(nova_version.split('.')[0]) >= 31


def boot_counted(before: Snapshot, now: Snapshot,
                 keeps_store: bool) -> bool:
    """Whether the firmware of a stateful server has counted a boot in
    its store since ``before``.

    A server that is ACTIVE again has not necessarily run its firmware
    yet: on a busy host the store can still hold the count of the last
    boot (kept by the compute) or the template's (made anew, no count).
    Checked before the firmware counts, a kept store would read as one
    made anew.
    """
    path = now.firmware.nvram
    store = now.nvram.get(path) if path else None
    if store is None or store.boots is None:
        return False
    old = before.nvram.get(path)
    if keeps_store and old is not None and old.boots is not None:
        return store.boots > old.boots
    return True


def is_cloud_runner(argv: ty.Sequence[str]) -> bool:
    """Whether a command line is a run of ``python3 -m tools.cloud``
    (a cloud) or ``-m tools.cloud.upgrade``.
    """
    for i, word in enumerate(argv[:-1]):
        if word == '-m' and argv[i + 1] in ('tools.cloud',
                                            'tools.cloud.upgrade'):
            return True
    return False


def version_problems(lines: ty.Iterable[str]) -> list[str]:
    """The lines of a service log that tell of a version mismatch."""
    return [line.rstrip('\n') for line in lines
            if VERSION_PROBLEMS.search(line)]


def error_lines(lines: ty.Iterable[str], limit: int = 8) -> list[str]:
    """The last ``limit`` ERROR/CRITICAL/Traceback lines of a log."""
    found = [line.rstrip('\n') for line in lines if ERROR_LINE.search(line)]
    return found[-limit:]


def status_verdict(rc: int, output: str) -> tuple[bool, str]:
    """``nova-status upgrade check``: (passed, what it said). Exit 0 is
    success, 1 a warning, 2 a failure; each check's result is shown.
    """
    checks = []
    name = None
    for line in output.splitlines():
        line = line.strip('| ').strip()
        match = re.match(r'Check: (.+)', line)
        if match:
            name = match.group(1).strip()
            continue
        match = re.match(r'Result: (\w+)', line)
        if match and name:
            checks.append('%s %s' % (name, match.group(1)))
            name = None
    seen = '%d checks: %s' % (len(checks), '; '.join(checks) or
                              evidence.one_line(output, 200))
    return rc == 0, 'exit %d; %s' % (rc, seen)


class Matrix:
    """Servers by steps: what each server showed at each step."""

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.rows: dict[str, dict[str, str]] = {}

    def mark(self, server: str, step: str, verdict: str) -> None:
        if step not in self.columns:
            self.columns.append(step)
        cells = self.rows.setdefault(server, {})
        # A step that failed once for a server stays failed.
        if cells.get(step) != FAILED:
            cells[step] = verdict

    def having(self, verdict: str) -> list[tuple[str, str]]:
        return [(server, step) for server, cells in self.rows.items()
                for step, cell in cells.items() if cell == verdict]

    def render(self) -> str:
        names = list(self.rows)
        name_w = max([len('server')] + [len(n) for n in names])
        heads = ['%d' % (i + 1) for i in range(len(self.columns))]
        widths = [max(len(h), 5) for h in heads]
        lines = ['  '.join(['server'.ljust(name_w)] +
                           [h.ljust(w) for h, w in zip(heads, widths)])]
        lines.append('  '.join(['-' * name_w] + ['-' * w for w in widths]))
        for name in names:
            cells = [self.rows[name].get(step, '-')
                     for step in self.columns]
            lines.append('  '.join([name.ljust(name_w)] + [
                c.ljust(w) for c, w in zip(cells, widths)]).rstrip())
        legend = ['%s: %s' % (h, step)
                  for h, step in zip(heads, self.columns)]
        lines.append('')
        lines.extend(textwrap.wrap('steps: ' + '; '.join(legend), 100))
        return '\n'.join(lines)
