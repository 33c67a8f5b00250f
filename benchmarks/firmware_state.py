"""Stateless against stateful UEFI on real QEMU: bytes written and boot time.

Each run spawns a guest through ``LibvirtDriver.spawn`` on the embedded
QEMU driver (TCG) and waits until its serial console shows OVMF running
(``boot_evidence.wait_for_firmware``: its boot manager, ``BdsDxe:``). The
time is from the start of spawn to that line; the bytes are the sizes of
the NVRAM files libvirt keeps for the guest (``boot_evidence.nvram_files``)
once it runs. Stateless and stateful guests alternate; medians compared.
Goal: no NVRAM byte for a stateless guest, and a boot no slower.
"""

import os

import benchmarks
from benchmarks import environment
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver

NAME = 'firmware'
#: Seconds to wait for the firmware; it shows in a few under TCG.
FIRMWARE_TIMEOUT = 120
#: Console polling interval: the resolution of the boot time.
POLL_INTERVAL = 0.05
#: Allowance for noise on the boot time ratio.
NOISE = 0.05


class FirmwareNotSeen(Exception):
    pass


def _boot(driver: libvirt_driver.LibvirtDriver, stateless: bool
          ) -> tuple[float, int]:
    """Spawn, wait for the firmware, measure, destroy."""
    instance, spec = environment.create_server(environment.image(stateless))
    try:
        with benchmarks.Stopwatch() as sw:
            driver.spawn(None, instance, spec.image)
            marker = boot_evidence.wait_for_firmware(
                driver.console_log_path(instance), FIRMWARE_TIMEOUT,
                interval=POLL_INTERVAL)
        if marker is None:
            raise FirmwareNotSeen(
                'no firmware output from %s guest %s within %d s' % (
                    'stateless' if stateless else 'stateful',
                    instance.name, FIRMWARE_TIMEOUT))
        nvram_bytes = sum(
            os.path.getsize(path) for path in
            boot_evidence.nvram_files(driver.host.uri, instance.name))
    finally:
        driver.destroy(None, instance)
    return sw.seconds, nvram_bytes


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    runs = max(3, min(options.runs, 5))
    stateless_bytes: list[int] = []
    stateful_bytes: list[int] = []

    def stateless() -> float:
        seconds, nvram = _boot(driver, True)
        stateless_bytes.append(nvram)
        return seconds

    def stateful() -> float:
        seconds, nvram = _boot(driver, False)
        stateful_bytes.append(nvram)
        return seconds

    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        stateless_times, stateful_times = benchmarks.alternate(
            stateless, stateful, runs)

    ratio = (benchmarks.median(stateless_times) /
             benchmarks.median(stateful_times))
    detail = '%d alternating boots each, TCG; times: stateless %s, ' \
             'stateful %s' % (
                 runs, ', '.join('%.2f' % t for t in stateless_times),
                 ', '.join('%.2f' % t for t in stateful_times))
    return [
        benchmarks.Figure(
            NAME, 'host NVRAM bytes per stateless instance',
            str(max(stateless_bytes)), goal='0',
            passed=max(stateless_bytes) == 0,
            detail='largest of %d boots' % runs),
        benchmarks.Figure(
            NAME, 'host NVRAM bytes per stateful instance',
            str(max(stateful_bytes)),
            detail='the copy of the VARS template libvirt makes per guest'),
        benchmarks.Figure(
            NAME, 'spawn start to firmware running, stateless (median)',
            '%.2f s' % benchmarks.median(stateless_times), detail=detail),
        benchmarks.Figure(
            NAME, 'spawn start to firmware running, stateful (median)',
            '%.2f s' % benchmarks.median(stateful_times)),
        benchmarks.Figure(
            NAME, 'boot time: stateless / stateful',
            benchmarks.fmt_ratio(ratio),
            goal='<= 1.00x (+%d%% noise)' % (NOISE * 100),
            passed=ratio <= 1.0 + NOISE),
    ]
