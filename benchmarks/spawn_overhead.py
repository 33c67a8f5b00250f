"""Spawn overhead: the driver's spawn against bare libvirt calls.

Both sides start the same stateless UEFI guest on the embedded QEMU
driver, on the same connection:

* driver: ``LibvirtDriver.spawn`` (guest config and XML, instance
  directory, disk image, ``defineXML``, ``createWithFlags``);
* bare: the instance directory, the same ``qemu-img create`` of the disk,
  ``defineXML`` and ``createWithFlags`` of the XML the driver's own
  ``_get_guest_xml`` wrote for that instance.

The only work the bare side leaves out is building the XML (done once,
before timing) and the driver's bookkeeping, which is the overhead asked
about. Each guest is destroyed and undefined, untimed, before the next
run; the sides alternate and their medians are compared.
"""

import os
import shutil
import subprocess

import benchmarks
from benchmarks import environment
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

NAME = 'spawn'
GOAL_RATIO = 1.05


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        instance, spec = environment.create_server(environment.image(True))
        image_meta = spec.image
        xml = driver._get_guest_xml(instance, image_meta)
        conn = driver.host.get_connection()
        undefine_nvram = libvirt_host.libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        instance_dir = os.path.dirname(driver.console_log_path(instance))
        disk = os.path.join(instance_dir, libvirt_driver.DISK_NAME)

        def driver_spawn() -> float:
            with benchmarks.Stopwatch() as sw:
                driver.spawn(None, instance, image_meta)
            driver.destroy(None, instance)
            return sw.seconds

        def bare_spawn() -> float:
            with benchmarks.Stopwatch() as sw:
                os.makedirs(instance_dir, exist_ok=True)
                subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2',
                                disk, '%dG' % max(instance.flavor.root_gb, 1)],
                               check=True, capture_output=True)
                domain = conn.defineXML(xml)
                domain.createWithFlags(0)
            domain.destroy()
            domain.undefineFlags(undefine_nvram)
            shutil.rmtree(instance_dir, ignore_errors=True)
            return sw.seconds

        # One untimed start each: the first QEMU start after a probe is
        # slower for reasons unrelated to either side.
        driver_spawn()
        bare_spawn()
        driver_times, bare_times = benchmarks.alternate(
            driver_spawn, bare_spawn, options.runs)

    driver_median = benchmarks.median(driver_times)
    bare_median = benchmarks.median(bare_times)
    ratio = driver_median / bare_median
    runs = '%d alternating runs each' % options.runs
    return [
        benchmarks.Figure(
            NAME, 'LibvirtDriver.spawn, stateless guest (median)',
            benchmarks.fmt_ms(driver_median), detail=runs),
        benchmarks.Figure(
            NAME, 'bare defineXML + createWithFlags, same XML and disk '
                  '(median)',
            benchmarks.fmt_ms(bare_median), detail=runs),
        benchmarks.Figure(
            NAME, 'spawn overhead: driver / bare',
            benchmarks.fmt_ratio(ratio), goal='<= %.2fx' % GOAL_RATIO,
            passed=ratio <= GOAL_RATIO, detail=runs),
    ]
