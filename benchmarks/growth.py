"""Growth: the driver with guests already running, and a cold start.

Spawn and destroy of one stateless guest, and ``list_instances``, with no
other guest on the host and with N guests already running (``--guests``,
16 by default). The N guests are spawned by the driver and then paused:
their QEMU processes, domains and files stay, but their emulated CPUs
(TCG, a few percent of a core each at the UEFI shell) do not compete for
the machine's cores, so what grows is what the driver and libvirt do per
guest, not the host's CPU load. Rounds alternate the two levels (0, N,
0, N, ...); the j-th sample at N is paired with the j-th at 0 of the same
round, and the ratios N / 0 get their intervals as every comparison does;
rounds go on until spawn's interval is narrower than the margin or a cap.

The startup probe: ``LibvirtDriver.init_host`` (versions, domain
capabilities, firmware descriptors, the stateless firmware decision) in a
new process on a new embedded root, so nothing is cached, neither in the
process nor in libvirt's capability cache on disk; then in a new process
on that same root (libvirt's cache warm), as a compute service restarting.
Cold and warm alternate in pairs.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

import benchmarks
from benchmarks import environment
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host

NAME = 'growth'
GOAL = 1.10
MARGIN = 0.10
#: Rounds of PER_ROUND samples at each level, at most; at least two.
ROUNDS, ROUND_SECONDS, PER_ROUND = 8, 150.0, 4
PROBE_PAIRS, PROBE_SECONDS = 6, 90.0
#: ``list_instances`` calls per sample.
LIST_CALLS = 20


class _Host:
    def __init__(self, driver: libvirt_driver.LibvirtDriver) -> None:
        self.driver = driver
        self.background = []
        self._ids = iter(range(9000, 99999))

    def _server(self, stateless: bool = True):
        return environment.create_server(environment.image(stateless),
                                         instance_id=next(self._ids))

    def grow(self, count: int) -> None:
        conn = self.driver.host.get_connection()
        for _ in range(count):
            instance, spec = self._server()
            self.driver.spawn(None, instance, spec.image)
            conn.lookupByName(instance.name).suspend()
            self.background.append(instance)

    def shrink(self) -> None:
        for instance in self.background:
            self.driver.destroy(None, instance)
        self.background = []

    def sample(self) -> tuple[float, float, float]:
        """Spawn, destroy and list_instances (per call) of a probe guest."""
        instance, spec = self._server()
        with benchmarks.Stopwatch() as spawn:
            self.driver.spawn(None, instance, spec.image)
        listed = benchmarks.per_call(self.driver.list_instances, LIST_CALLS)
        with benchmarks.Stopwatch() as destroy:
            self.driver.destroy(None, instance)
        return spawn.seconds, destroy.seconds, listed


def _levels(options: benchmarks.Options):
    """Rounds of samples at 0 and at N guests, until spawn's ratio resolves.
    """
    max_rounds, max_seconds = options.cap(ROUNDS, ROUND_SECONDS)
    zero: list[tuple] = []
    grown: list[tuple] = []
    start = time.monotonic()
    with environment.embedded_libvirt():
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        host = _Host(driver)
        host.sample()  # the first QEMU start after a probe is slower
        try:
            for done in range(1, max_rounds + 1):
                zero += [host.sample() for _ in range(PER_ROUND)]
                host.grow(options.growth_guests)
                grown += [host.sample() for _ in range(PER_ROUND)]
                host.shrink()
                if done < 2:
                    continue
                spawn = _ratio([s[0] for s in grown], [s[0] for s in zero])
                if (spawn.width < MARGIN or
                        time.monotonic() - start >= max_seconds):
                    break
        finally:
            host.shrink()
    return zero, grown


def _ratio(grown: list[float], zero: list[float]) -> benchmarks.Sampled:
    ratios = [g / z for g, z in zip(grown, zero)]
    center, low, high = benchmarks.median_interval(ratios)
    stopped = 'narrow' if high - low < MARGIN else 'fixed'
    return benchmarks.Sampled(ratios, grown, zero, center, low, high,
                              stopped, 0.0)


def probe_main(root: str) -> None:
    """In a child process: time init_host on ``root``; print JSON.

    Its state directory goes beside ``root``, in the benchmark's scratch
    directory, which the benchmark removes at the end.
    """
    environment.configure(tempfile.mkdtemp(prefix='state-',
                                           dir=os.path.dirname(root)))
    uri = 'qemu:///embed?root=%s' % root
    environment.CONF.set_override('connection_uri', uri, group='libvirt')
    environment.CONF.set_override('virt_type', 'qemu', group='libvirt')
    driver = libvirt_driver.LibvirtDriver()
    with benchmarks.Stopwatch() as sw:
        driver.init_host('bench')
    support = driver.host.stateless_firmware_support()
    print(json.dumps({'seconds': sw.seconds,
                      'supported': support.supported,
                      'calls': dict(driver.host.api_calls)}))


def _probe(root: str) -> float:
    code = 'from benchmarks import growth; growth.probe_main(%r)' % root
    out = subprocess.run(
        [sys.executable, '-c', code], capture_output=True, text=True,
        cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        timeout=300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])['seconds']


def _startup(options: benchmarks.Options) -> benchmarks.Sampled:
    base = os.path.join(options.workdir, 'probe-roots')
    os.makedirs(base, exist_ok=True)
    roots = []

    def cold() -> float:
        root = tempfile.mkdtemp(dir=base)
        libvirt_host.prepare_embed_root('qemu:///embed?root=%s' % root,
                                        root)
        roots.append(root)
        return _probe(root)

    def warm() -> float:
        # The root the last cold probe filled (libvirt's cache on disk).
        return _probe(roots[-1])

    # Warm never runs first in a pair: it needs a root a cold probe made.
    cold()
    pairs, seconds = options.cap(PROBE_PAIRS, PROBE_SECONDS)
    # No goal: the pairs go on to the cap of pairs or seconds.
    return benchmarks.compare(cold, warm, goal=float('inf'), margin=0.0,
                              max_pairs=pairs, max_seconds=seconds)


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    zero, grown = _levels(options)
    n = options.growth_guests
    figures = []
    for index, what in ((0, 'spawn'), (1, 'destroy')):
        sampled = _ratio([s[index] for s in grown], [s[index] for s in zero])
        figures.append(benchmarks.ratio_figure(
            NAME, '%s of a guest: with %d guests running / with none' % (
                what, n), sampled, GOAL, MARGIN,
            detail='medians: %s with %d, %s with none; %d pairs from '
                   'alternating rounds' % (
                       benchmarks.fmt_ms(benchmarks.median(sampled.first)),
                       n, benchmarks.fmt_ms(benchmarks.median(
                           sampled.second)), sampled.pairs)))
    for level, samples in ((0, zero), (n, grown)):
        figures.append(benchmarks.Figure(
            NAME, 'list_instances with %d other guests running' % level,
            benchmarks.fmt_median([s[2] for s in samples],
                                  benchmarks.fmt_us),
            detail='per call, %d calls per sample' % LIST_CALLS))
    startup = _startup(options)
    figures.append(benchmarks.Figure(
        NAME, 'startup probe (init_host), cold: new process, new libvirt '
              'root', benchmarks.fmt_median(startup.first, benchmarks.fmt_s),
        detail='libvirt probes QEMU, domain capabilities, firmware '
               'descriptors, the stateless firmware decision'))
    figures.append(benchmarks.Figure(
        NAME, "startup probe (init_host), warm: new process, libvirt's "
              "cache on disk", benchmarks.fmt_median(startup.second,
                                                     benchmarks.fmt_s),
        detail='pairs with the cold probe, alternating'))
    return figures
