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
run; the sides run as alternating pairs until the interval of the ratio
resolves its goal (``benchmarks.compare``). The overhead is also given in
absolute time, per pair, and so is the driver's own work before libvirt
is called (``_get_guest_xml``: guest config, firmware and loader choice,
the loader file checks, XML) for a stateless and a stateful guest.
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
MARGIN = 0.05
PAIRS, SECONDS = 40, 90.0


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
        pairs, seconds = options.cap(PAIRS, SECONDS)
        sampled = benchmarks.compare(
            driver_spawn, bare_spawn, goal=GOAL_RATIO, margin=MARGIN,
            max_pairs=pairs, max_seconds=seconds)

        xml_times = {}
        for label, stateless in (('stateless', True), ('stateful', False)):
            inst, spec = environment.create_server(
                environment.image(stateless), instance_id=2)

            def build(inst=inst, meta=spec.image):
                return driver._get_guest_xml(inst, meta)

            count = benchmarks.batch_size(build)
            xml_times[label] = [benchmarks.per_call(build, count)
                                for _ in range(12)]

    return [
        benchmarks.ratio_figure(
            NAME, 'spawn overhead: LibvirtDriver.spawn / bare libvirt '
                  'calls, same XML and disk', sampled, GOAL_RATIO, MARGIN,
            detail='medians: driver %s, bare %s' % (
                benchmarks.fmt_ms(benchmarks.median(sampled.first)),
                benchmarks.fmt_ms(benchmarks.median(sampled.second)))),
        benchmarks.difference_figure(
            NAME, 'spawn overhead in time: driver - bare, per spawn',
            benchmarks.differences(sampled), benchmarks.fmt_ms),
    ] + [
        benchmarks.Figure(
            NAME, "driver's guest XML build (_get_guest_xml), %s" % label,
            benchmarks.fmt_median(times, benchmarks.fmt_us),
            detail='guest config, firmware and loader choice, loader file '
                   'checks, to_xml; 12 batches')
        for label, times in xml_times.items()
    ]
