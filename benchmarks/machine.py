"""The machine a run measured: printed with the table and written with it.

Timings mean little without the machine they came from, and on a shared
machine without how busy it was: the load average is taken when the run
starts and when it ends.
"""

import dataclasses
import os
import platform
import subprocess


def _cpu_model() -> str:
    try:
        with open('/proc/cpuinfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _memory_gib() -> float:
    try:
        with open('/proc/meminfo', encoding='utf-8') as f:
            for line in f:
                if line.startswith('MemTotal:'):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _package_version(name: str) -> str:
    try:
        out = subprocess.run(
            ['dpkg-query', '-W', '-f', '${Version}', name],
            capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return 'unknown'
    return out.stdout.strip() or 'not installed'


def _libvirt_versions() -> str:
    try:
        import libvirt
        lv = libvirt.getVersion()
    except Exception:
        return 'unknown'
    return '%d.%d.%d' % (lv // 1000000, lv // 1000 % 1000, lv % 1000)


def _load() -> str:
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return 'unknown'
    return '%.2f %.2f %.2f' % (one, five, fifteen)


@dataclasses.dataclass
class Machine:
    cpu: str
    cpus: int
    memory_gib: float
    system: str
    python: str
    libvirt: str
    qemu: str
    ovmf: str
    load_start: str
    load_end: str = ''

    def finish(self) -> None:
        self.load_end = _load()

    def rows(self) -> list[tuple[str, str]]:
        rows = [
            ('CPU', '%s, %d CPUs' % (self.cpu, self.cpus)),
            ('memory', '%.1f GiB' % self.memory_gib),
            ('system', self.system),
            ('Python', self.python),
            ('libvirt', self.libvirt),
            ('QEMU', self.qemu),
            ('OVMF', self.ovmf),
            ('load average (1, 5, 15 min) at start', self.load_start),
        ]
        if self.load_end:
            rows.append(('load average at end', self.load_end))
        return rows


def describe() -> Machine:
    return Machine(
        cpu=_cpu_model(), cpus=os.cpu_count() or 0,
        memory_gib=_memory_gib(), system=platform.platform(),
        python=platform.python_version(), libvirt=_libvirt_versions(),
        qemu=_package_version('qemu-system-x86'),
        ovmf=_package_version('ovmf'), load_start=_load())
