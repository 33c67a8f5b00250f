"""Stateless against stateful UEFI on real QEMU: boots, memory, host disk.

One cycle of a guest, through ``LibvirtDriver`` on the embedded QEMU
driver (TCG), each boot timed until the serial console shows OVMF running
(``boot_evidence.wait_for_firmware``: its boot manager, ``BdsDxe:``):

1. first boot: ``spawn`` (define, a stateful guest's VARS copied from the
   template, start) and OVMF's first start, which for a stateful guest
   sets up an empty variable store;
2. second boot: ``power_off`` then ``power_on`` (the domain and its NVRAM
   kept, the XML rebuilt as Nova does), OVMF starting on the variables it
   wrote;
3. hard reboot: ``reboot(HARD)`` of the running guest.

After the first boot, the resident memory of the guest's QEMU process
(``VmRSS``) and the NVRAM files libvirt keeps for it (apparent size and
allocated blocks, which give the host disk per 1,000 instances).
A stateless cycle and a stateful one make a pair; pairs alternate in
order until every boot's ratio resolves its goal or the cap is reached.
The console file is removed before each timed boot, so each wait sees
only that boot's output.
"""

import math
import os

import benchmarks
from benchmarks import environment
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

NAME = 'boots'
#: Seconds to wait for the firmware; a few under TCG on a quiet machine.
FIRMWARE_TIMEOUT = 180
#: Console polling interval: the resolution of the boot times.
POLL_INTERVAL = 0.05
GOAL = 1.05
MARGIN = 0.05
PAIRS, SECONDS = 16, 420.0
BOOTS = ('first boot', 'second boot (power on, NVRAM kept)', 'hard reboot')
#: Instances the disk figure is given for.
FLEET = 1000


class FirmwareNotSeen(Exception):
    pass


def _qemu_pid(uri: str, name: str) -> int:
    root = libvirt_host.embed_root(uri)
    run = (os.path.join(root, 'run', 'qemu') if root is not None
           else '/run/libvirt/qemu')
    with open(os.path.join(run, name + '.pid'), encoding='utf-8') as f:
        return int(f.read().strip())


def _rss_kib(pid: int) -> int:
    with open('/proc/%d/status' % pid, encoding='utf-8') as f:
        for line in f:
            if line.startswith('VmRSS:'):
                return int(line.split()[1])
    raise RuntimeError('no VmRSS for process %d' % pid)


class _Cycle:
    """One guest's three boots; every figure it yields, per variant."""

    def __init__(self, driver: libvirt_driver.LibvirtDriver,
                 stateless: bool) -> None:
        self.driver = driver
        self.stateless = stateless
        self.times: dict[str, list[float]] = {b: [] for b in BOOTS}
        self.rss: list[int] = []
        self.nvram_apparent: list[int] = []
        self.nvram_allocated: list[int] = []
        self._next_id = 7000 if stateless else 8000

    def _boot(self, console: str, action) -> float:
        try:
            os.unlink(console)
        except FileNotFoundError:
            pass
        with benchmarks.Stopwatch() as sw:
            action()
            marker = boot_evidence.wait_for_firmware(
                console, FIRMWARE_TIMEOUT, interval=POLL_INTERVAL)
        if marker is None:
            raise FirmwareNotSeen('no firmware output in %s within %d s' % (
                console, FIRMWARE_TIMEOUT))
        return sw.seconds

    def run(self) -> float:
        """One cycle; returns its first boot (the pair's pacing value)."""
        self._next_id += 1
        driver = self.driver
        instance, spec = environment.create_server(
            environment.image(self.stateless), instance_id=self._next_id)
        console = driver.console_log_path(instance)
        uri = driver.host.uri
        try:
            first = self._boot(console, lambda: driver.spawn(
                None, instance, spec.image))
            self.rss.append(_rss_kib(_qemu_pid(uri, instance.name)))
            files = boot_evidence.nvram_files(uri, instance.name)
            stats = [os.stat(path) for path in files]
            self.nvram_apparent.append(sum(s.st_size for s in stats))
            self.nvram_allocated.append(sum(s.st_blocks * 512
                                            for s in stats))
            driver.power_off(instance)
            second = self._boot(console, lambda: driver.power_on(
                None, instance))
            hard = self._boot(console, lambda: driver.reboot(
                None, instance, None, libvirt_driver.REBOOT_HARD))
        finally:
            driver.destroy(None, instance)
        for boot, seconds in zip(BOOTS, (first, second, hard)):
            self.times[boot].append(seconds)
        return first


def _sampled_from(values_a: list[float], values_b: list[float],
                  template: benchmarks.Sampled) -> benchmarks.Sampled:
    ratios = [a / b for a, b in zip(values_a, values_b)]
    center, low, high = benchmarks.median_interval(ratios)
    return benchmarks.Sampled(ratios, values_a, values_b, center, low, high,
                              template.stopped, template.seconds)


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    pairs, seconds = options.cap(PAIRS, SECONDS)
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        stateless, stateful = _Cycle(driver, True), _Cycle(driver, False)
        # The pairs are paced on the first boot; the other two boots of
        # the same cycles are read from the same pairs afterwards.
        first = benchmarks.compare(
            stateless.run, stateful.run, goal=GOAL, margin=MARGIN,
            max_pairs=pairs, max_seconds=seconds)

    figures = []
    for boot in BOOTS:
        sampled = (first if boot == BOOTS[0] else _sampled_from(
            stateless.times[boot], stateful.times[boot], first))
        figures.append(benchmarks.ratio_figure(
            NAME, '%s: stateless / stateful' % boot, sampled, GOAL, MARGIN,
            detail='medians: stateless %s, stateful %s; TCG, until OVMF '
                   'shows BdsDxe' % (
                       benchmarks.fmt_s(benchmarks.median(sampled.first)),
                       benchmarks.fmt_s(benchmarks.median(sampled.second)))))
    rss_diff = [(a - b) for a, b in zip(stateless.rss, stateful.rss)]
    _mid, _low, high = benchmarks.median_interval(rss_diff)
    figures.append(benchmarks.Figure(
        NAME, 'QEMU resident memory per guest: stateless - stateful',
        benchmarks.fmt_median(rss_diff, benchmarks.fmt_kib),
        goal='<= +0 KiB',
        status_word=(benchmarks.PASS if high <= 0 else
                     benchmarks.MISS if _low > 0 else
                     benchmarks.INCONCLUSIVE),
        detail='VmRSS of the QEMU process once OVMF runs; medians: '
               'stateless %d KiB, stateful %d KiB' % (
                   benchmarks.median(stateless.rss),
                   benchmarks.median(stateful.rss))))
    for label, cycle, goal in (('stateless', stateless, 0),
                               ('stateful', stateful, None)):
        apparent = max(cycle.nvram_apparent)
        allocated = max(cycle.nvram_allocated)
        figures.append(benchmarks.Figure(
            NAME, 'host disk for NVRAM per %d %s instances' % (
                FLEET, label),
            '%.1f MiB allocated (%.1f MiB apparent)' % (
                allocated * FLEET / 2 ** 20, apparent * FLEET / 2 ** 20),
            goal='0 bytes' if goal == 0 else '',
            status_word=(None if goal is None else
                         benchmarks.PASS if allocated == 0 and apparent == 0
                         else benchmarks.MISS),
            detail='largest per guest of %d: %d bytes, %d allocated' % (
                len(cycle.nvram_apparent), apparent, allocated)))
    if math.isnan(first.center):
        figures[0].skipped = 'no boot measured'
    return figures
