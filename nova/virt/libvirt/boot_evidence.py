"""What a booted guest shows of its firmware, read from the host.

Three observations prove a stateless boot without trusting the XML Nova
wrote: the serial console shows the firmware ran, QEMU's command line (in
the domain log libvirt writes) shows which flash drives it was given and
whether they are read-only, and the NVRAM directory shows whether a variable
store exists for the guest. The functional tests and ``nova-firmware boot``
both read them through this module.
"""

import dataclasses
import json
import os
import re
import shlex
import time
import typing as ty

from nova.virt.libvirt import host as libvirt_host

#: Text OVMF writes to the serial console once it runs: its boot manager
#: and, with nothing bootable, the UEFI shell.
FIRMWARE_MARKERS = (
    'BdsDxe:',
    'UEFI Interactive Shell',
    'Shell>',
)

_SYSTEM_QEMU_LOG_DIR = '/var/log/libvirt/qemu'
_SYSTEM_NVRAM_DIR = '/var/lib/libvirt/qemu/nvram'

_BLOCKDEV_ARG = re.compile(r"-blockdev '(\{[^']*\})'")
_PFLASH_PROPERTY = re.compile(r'pflash(\d)=([\w-]+)')


@dataclasses.dataclass(frozen=True)
class PflashDrive:
    """One flash drive QEMU was given."""

    unit: int
    filename: str
    read_only: bool


def qemu_log_dir(uri: str) -> str:
    """Where libvirt writes the QEMU log (command line) of each domain."""
    root = libvirt_host.embed_root(uri)
    if root is not None:
        return os.path.join(root, 'log', 'qemu')
    return _SYSTEM_QEMU_LOG_DIR


def nvram_dir(uri: str) -> str:
    """Where libvirt keeps the UEFI variable stores of its guests."""
    root = libvirt_host.embed_root(uri)
    if root is not None:
        return os.path.join(root, 'lib', 'qemu', 'nvram')
    return _SYSTEM_NVRAM_DIR


def nvram_files(uri: str, domain_name: str) -> list[str]:
    """The variable store files libvirt keeps for a domain, if any."""
    directory = nvram_dir(uri)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(os.path.join(directory, name) for name in names
                  if name.startswith(domain_name + '_'))


def wait_for_firmware(
    console_path: str, timeout: float, interval: float = 0.25,
    running: ty.Optional[ty.Callable[[], bool]] = None,
) -> ty.Optional[str]:
    """Wait until the serial console shows the firmware running.

    :param running: asked at every look at the console; once it says the
        guest no longer runs, there is nothing more to wait for.
    :returns: the first marker seen, or None if none appeared in time or
        the guest stopped first.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(console_path, 'rb') as f:
                text = f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            text = ''
        for marker in FIRMWARE_MARKERS:
            if marker in text:
                return marker
        if time.monotonic() >= deadline:
            return None
        if running is not None and not running():
            return None
        time.sleep(interval)


def last_qemu_command_line(uri: str, domain_name: str) -> str:
    """The QEMU command line of the domain's most recent start."""
    path = os.path.join(qemu_log_dir(uri), domain_name + '.log')
    with open(path, encoding='utf-8', errors='replace') as f:
        # libvirt writes one argument a line, continued with " \\".
        text = f.read().replace(' \\\n', ' ')
    for line in reversed(text.splitlines()):
        if '-machine ' in line and ('qemu-system' in line or
                                    'qemu-kvm' in line):
            return line
    return ''


def pflash_drives(command_line: str) -> list[PflashDrive]:
    """The flash drives of a QEMU command line, in unit order.

    libvirt passes each as a ``file`` blockdev, a format blockdev on top of
    it (which carries ``read-only``) and ``-machine ...,pflashN=<format>``.
    """
    nodes = {}
    for match in _BLOCKDEV_ARG.finditer(command_line):
        node = json.loads(match.group(1))
        nodes[node.get('node-name')] = node
    drives = []
    for unit, format_name in _PFLASH_PROPERTY.findall(command_line):
        node = nodes.get(format_name, {})
        read_only = bool(node.get('read-only', False))
        # The format node points at its storage node by name, which names
        # the file.
        storage = nodes.get(node.get('file'), node)
        read_only = read_only or bool(storage.get('read-only', False))
        drives.append(PflashDrive(unit=int(unit),
                                  filename=storage.get('filename', ''),
                                  read_only=read_only))
    return sorted(drives, key=lambda d: d.unit)


def pflash_arguments(command_line: str) -> list[str]:
    """The QEMU arguments that set up the flash drives, as QEMU got them.

    The ``-blockdev`` arguments of each drive's format node and the
    storage node under it, then the ``-machine`` argument that maps them
    to ``pflash0`` and ``pflash1``: the raw text behind ``pflash_drives``,
    for a person to check its conclusions.
    """
    words = shlex.split(command_line)
    blockdevs = {}
    machine = []
    for option, value in zip(words, words[1:]):
        if option == '-blockdev':
            node = json.loads(value)
            blockdevs[node.get('node-name')] = (node, value)
        elif option == '-machine' and _PFLASH_PROPERTY.search(value):
            machine.append('-machine %s' % value)
    arguments = []
    for _unit, format_name in sorted(_PFLASH_PROPERTY.findall(command_line)):
        node = blockdevs.get(format_name, ({}, ''))[0]
        for name in (node.get('file'), format_name):
            if name in blockdevs:
                arguments.append("-blockdev '%s'" % blockdevs[name][1])
    return arguments + machine
