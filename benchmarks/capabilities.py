"""Capability detection: libvirt calls of init_host and of later reads.

A compute service asks libvirt what the host can do when it starts; the
answers cannot change while it runs, so every later read (the capability
traits of each periodic sync, each guest's firmware choice) must come from
memory. ``Host.api_calls`` counts every libvirt call made through the
driver's ``Host``. Goal: ``getDomainCapabilities`` once per (arch, machine
type, virt type) in the life of the service, whatever is read afterwards.
"""

import collections

import benchmarks
from benchmarks import environment
import nova.conf
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF

NAME = 'capabilities'
#: Reads of each kind after init_host.
READS = 1000


def _format_calls(calls: collections.Counter) -> str:
    return ', '.join('%s %d' % (name, n) for name, n in sorted(calls.items()))


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        host = driver.host
        with benchmarks.Stopwatch() as init_time:
            driver.init_host('bench')
        after_init = collections.Counter(host.api_calls)

        arch = host.get_host_arch()
        machine_type = host.get_default_machine_type(arch)
        with benchmarks.Stopwatch() as reads_time:
            for _ in range(READS):
                driver.capabilities_as_traits()
                host.get_domain_capabilities_for(arch, machine_type)
                host.get_domain_capabilities()
                host.stateless_firmware_support()
                bool(host.supports_secure_boot)
                driver._update_capabilities()
        after_reads = collections.Counter(host.api_calls)
        combinations = len(host.get_domain_capabilities())
        domain_caps = host.get_domain_capabilities()[arch]
        versioned = {c.machine_type for c in domain_caps.values()}
        combo = '(%s, %s, %s)' % (arch, machine_type,
                                  CONF.libvirt.virt_type)

    fetched_init = after_init['getDomainCapabilities']
    fetched_total = after_reads['getDomainCapabilities']
    later = after_reads - after_init
    return [
        benchmarks.Figure(
            NAME, 'libvirt calls made by init_host',
            str(sum(after_init.values())),
            detail='%s; init_host took %s (the first in a process waits '
                   'for libvirt to probe QEMU)' % (
                       _format_calls(after_init),
                       benchmarks.fmt_ms(init_time.seconds))),
        benchmarks.Figure(
            NAME, 'getDomainCapabilities calls by init_host',
            str(fetched_init), goal='%d (one per %s)' % (
                combinations, combo),
            status_word=benchmarks.pass_if(fetched_init == combinations),
            detail='machine type %s resolves to %s' % (
                machine_type, ', '.join(sorted(versioned)))),
        benchmarks.Figure(
            NAME, 'getDomainCapabilities calls after %d x 6 capability '
                  'reads' % READS,
            str(fetched_total - fetched_init), goal='0',
            status_word=benchmarks.pass_if(fetched_total == fetched_init),
            detail='reads: capabilities_as_traits, '
                   'get_domain_capabilities_for, get_domain_capabilities, '
                   'stateless_firmware_support, supports_secure_boot, '
                   '_update_capabilities; %s per round; other libvirt '
                   'calls during the reads: %s' % (
                       benchmarks.fmt_us(reads_time.seconds / READS),
                       _format_calls(later) or 'none')),
    ]
