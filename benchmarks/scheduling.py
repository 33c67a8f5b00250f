"""Scheduling at scale: allocation candidates, trait sync reads and writes.

Real openstack-placement runs embedded in this process on a file-backed
SQLite database in the benchmark's scratch directory (a file rather than
placement's in-memory default: it has real pages, a journal and more than
one connection, as a small deployment's database would; placement in
production runs on MySQL or PostgreSQL, which this machine does not have).

The population: compute node providers with VCPU, MEMORY_MB and DISK_GB
inventory, every other one with ``COMPUTE_SECURITY_STATELESS_FIRMWARE``.
The first 1,000 are created through placement's REST API, as computes
would, and that setup is timed; the rest (to 10,000) are written in bulk
through placement's own database models, since doing them one request
at a time would take minutes (the API rate measured on the first 1,000
says how many).

Measured at each size: the latency of ``GET /allocation_candidates``
through ``SchedulerReportClient.get_allocation_candidates`` for a
``ResourceRequest`` built from a stateless image, and for the same flavor
with a plain UEFI image (no trait), with Nova's default limit of 1,000;
alternating, medians. Then, on the full population, the placement reads
and writes of a periodic sync through
``ComputeManager.update_available_resource`` for a sample of computes
(``LibvirtDriver`` on fakelibvirt, each compute with its own report
client): when nothing changed, and after the computes restart on a libvirt
too old for stateless firmware (one capability flips).
"""

import collections
import os

import fixtures
import os_resource_classes as orc
import os_traits
import sqlalchemy as sa

import benchmarks
from benchmarks import environment
from nova.compute import manager as compute_manager
import nova.conf
from nova.scheduler.client import report
from nova.scheduler import utils as scheduler_utils
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt.libvirt import driver as libvirt_driver
from placement.db.sqlalchemy import models as placement_models

CONF = nova.conf.CONF

NAME = 'scheduling'
STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
#: Providers created through the REST API; the rest go in through the DB.
API_PROVIDERS = 1000
#: Ratio of the stateless request's latency to the unconstrained one's.
GOAL_CANDIDATES_RATIO = 1.10
INVENTORY = {
    orc.VCPU: {'total': 64, 'allocation_ratio': 4.0},
    orc.MEMORY_MB: {'total': 262144, 'reserved': 512},
    orc.DISK_GB: {'total': 2000},
}
_INVENTORY_DEFAULTS = {'reserved': 0, 'min_unit': 1, 'step_size': 1,
                       'allocation_ratio': 1.0}


def _node_name(index: int) -> str:
    return 'bench-compute-%05d' % index


def _inventory() -> dict:
    return {rc: dict(_INVENTORY_DEFAULTS, max_unit=inv['total'], **inv)
            for rc, inv in INVENTORY.items()}


def _has_trait(index: int) -> bool:
    return index % 2 == 0


class Population:
    """The compute node providers in placement, grown on demand."""

    def __init__(self, placement: placement_fixture.PlacementFixture,
                 db_url: str) -> None:
        self._adapter = placement.adapter
        self._db_url = db_url
        self.size = 0
        self.api_seconds = 0.0
        self.db_seconds = 0.0
        self.db_count = 0

    def grow(self, size: int) -> None:
        api_end = min(size, API_PROVIDERS)
        if self.size < api_end:
            with benchmarks.Stopwatch() as sw:
                for index in range(self.size, api_end):
                    self._create_through_api(index)
            self.api_seconds += sw.seconds
            self.size = api_end
        if self.size < size:
            with benchmarks.Stopwatch() as sw:
                self._create_in_db(self.size, size)
            self.db_seconds += sw.seconds
            self.db_count += size - self.size
            self.size = size

    def _check(self, resp, expected: int) -> dict:
        if resp.status_code != expected:
            raise RuntimeError('placement answered %d: %s' % (
                resp.status_code, resp.text))
        return resp.json()

    def _create_through_api(self, index: int) -> None:
        name = _node_name(index)
        uuid = compute_manager.compute_node_uuid(name)
        rp = self._check(self._adapter.post(
            '/resource_providers', microversion='1.20',
            json={'uuid': uuid, 'name': name}), 200)
        inv = self._check(self._adapter.put(
            '/resource_providers/%s/inventories' % uuid, microversion='1.26',
            json={'resource_provider_generation': rp['generation'],
                  'inventories': _inventory()}), 200)
        if _has_trait(index):
            self._check(self._adapter.put(
                '/resource_providers/%s/traits' % uuid, microversion='1.6',
                json={'resource_provider_generation':
                      inv['resource_provider_generation'],
                      'traits': [STATELESS]}), 200)

    def _create_in_db(self, start: int, end: int) -> None:
        """Insert providers the way placement stores them, in bulk."""
        rp_table = placement_models.ResourceProvider.__table__
        inv_table = placement_models.Inventory.__table__
        rpt_table = placement_models.ResourceProviderTrait.__table__
        engine = sa.create_engine(self._db_url)
        try:
            with engine.begin() as conn:
                rc_ids = {name: id_ for id_, name in conn.execute(sa.select(
                    placement_models.ResourceClass.id,
                    placement_models.ResourceClass.name))}
                trait_id = conn.execute(sa.select(
                    placement_models.Trait.id).where(
                        placement_models.Trait.name == STATELESS)).scalar()
                next_id = (conn.execute(sa.select(
                    sa.func.max(rp_table.c.id))).scalar() or 0) + 1
                providers, inventories, traits = [], [], []
                for offset, index in enumerate(range(start, end)):
                    rp_id = next_id + offset
                    name = _node_name(index)
                    providers.append({
                        'id': rp_id, 'name': name, 'generation': 1,
                        'uuid': compute_manager.compute_node_uuid(name),
                        'root_provider_id': rp_id,
                        'parent_provider_id': None})
                    for rc, inv in _inventory().items():
                        inventories.append(dict(
                            inv, resource_provider_id=rp_id,
                            resource_class_id=rc_ids[rc]))
                    if _has_trait(index):
                        traits.append({'resource_provider_id': rp_id,
                                       'trait_id': trait_id})
                conn.execute(rp_table.insert(), providers)
                conn.execute(inv_table.insert(), inventories)
                if traits:
                    conn.execute(rpt_table.insert(), traits)
        finally:
            engine.dispose()


def _requests() -> tuple[scheduler_utils.ResourceRequest,
                         scheduler_utils.ResourceRequest]:
    _instance, stateless_spec = environment.create_server(
        environment.image(stateless=True))
    _instance, plain_spec = environment.create_server(
        environment.image(stateless=None))
    return (scheduler_utils.ResourceRequest.from_request_spec(stateless_spec),
            scheduler_utils.ResourceRequest.from_request_spec(plain_spec))


def _candidates_figures(client: report.SchedulerReportClient, size: int,
                        runs: int) -> list[benchmarks.Figure]:
    stateless_req, plain_req = _requests()
    counts = {}

    def timed(request, label):
        def measure() -> float:
            with benchmarks.Stopwatch() as sw:
                alloc_reqs, _summaries, _version = (
                    client.get_allocation_candidates(request))
            counts[label] = len(alloc_reqs)
            return sw.seconds
        return measure

    # Warm placement's caches (resource classes, traits) first.
    timed(plain_req, 'plain')()
    stateless_times, plain_times = benchmarks.alternate(
        timed(stateless_req, 'stateless'), timed(plain_req, 'plain'), runs)
    ratio = benchmarks.median(stateless_times) / benchmarks.median(
        plain_times)
    where = '%d providers' % size
    return [
        benchmarks.Figure(
            NAME, 'allocation candidates, stateless request, %s (median)'
                  % where, benchmarks.fmt_ms(benchmarks.median(
                      stateless_times)),
            detail='%d candidates; %s' % (counts['stateless'],
                                          stateless_req.to_querystring())),
        benchmarks.Figure(
            NAME, 'allocation candidates, unconstrained, %s (median)'
                  % where, benchmarks.fmt_ms(benchmarks.median(plain_times)),
            detail='%d candidates; %s' % (counts['plain'],
                                          plain_req.to_querystring())),
        benchmarks.Figure(
            NAME, 'allocation candidates: stateless / unconstrained, %s'
                  % where, benchmarks.fmt_ratio(ratio),
            goal='<= %.2fx' % GOAL_CANDIDATES_RATIO,
            passed=ratio <= GOAL_CANDIDATES_RATIO,
            detail='%d alternating requests each' % runs),
    ]


class Computes:
    """A sample of compute services syncing their node to placement.

    Their requests to placement are counted on the way (``requests``).
    """

    def __init__(self, adapter, count: int) -> None:
        self.requests = placement_fixture.CountingAdapter(adapter)
        self.last_gets = 0
        self.managers = []
        for index in range(count):
            client = report.SchedulerReportClient(self.requests)
            self.managers.append(compute_manager.ComputeManager(
                None, client, host=_node_name(index)))

    def restart_on(self, lv_ver: tuple[int, int, int]) -> fixtures.Fixture:
        """Start every compute's driver on a fake libvirt ``lv_ver``.

        The computes share one driver (one fake host answers for all):
        what is measured is the sync, not the driver's start.
        """
        fake = fakelibvirt.FakeLibvirtFixture(lv_ver=lv_ver)
        fake.setUp()
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        for manager in self.managers:
            manager.driver = driver
        return fake

    def sync(self) -> tuple[collections.Counter, float]:
        """One periodic sync of every compute; writes and median time.

        ``last_gets`` is then the number of GETs the sync sent placement.
        """
        before = collections.Counter()
        for manager in self.managers:
            before.update(manager.report_client.write_counts)
        gets_before = self.requests.count('GET')
        times = []
        for manager in self.managers:
            with benchmarks.Stopwatch() as sw:
                manager.update_available_resource()
            times.append(sw.seconds)
        after = collections.Counter()
        for manager in self.managers:
            after.update(manager.report_client.write_counts)
        self.last_gets = self.requests.count('GET') - gets_before
        return after - before, benchmarks.median(times)


def _format_writes(writes: collections.Counter) -> str:
    return ', '.join('%s %d' % kv for kv in sorted(writes.items())) or 'none'


def _sync_figures(placement: placement_fixture.PlacementFixture,
                  size: int, sample: int) -> list[benchmarks.Figure]:
    sample = min(sample, size)
    computes = Computes(placement.adapter, sample)
    where = '%d of %d providers' % (sample, size)
    fake = computes.restart_on((8, 6, 0))
    try:
        first, _ = computes.sync()
        first_gets = computes.last_gets
        unchanged, unchanged_time = computes.sync()
        unchanged_gets = computes.last_gets
    finally:
        fake.cleanUp()
    fake = computes.restart_on((8, 5, 0))
    try:
        flipped, flipped_time = computes.sync()
        settled, _ = computes.sync()
    finally:
        fake.cleanUp()
    resp = placement.adapter.get(
        '/resource_providers?required=%s' % STATELESS, microversion='1.18')
    still_stateless = {rp['name'] for rp in resp.json()['resource_providers']}
    left = sum(1 for m in computes.managers if m.nodename in still_stateless)

    flip_ok = (flipped == collections.Counter(traits=sample) and left == 0)
    return [
        benchmarks.Figure(
            NAME, 'placement reads per compute of a sync with nothing '
                  'changed (%s)' % where,
            '%.2f' % (unchanged_gets / sample), goal='0',
            passed=unchanged_gets == 0,
            detail='GETs: %d by the first sync after start, %d by the next; '
                   'the cache is read again every [compute] '
                   'resource_provider_association_refresh (%d s) or after '
                   'a failed or conflicting write' % (
                       first_gets, unchanged_gets,
                       CONF.compute.resource_provider_association_refresh)),
        benchmarks.Figure(
            NAME, 'placement writes of a sync with nothing changed (%s)'
                  % where, str(sum(unchanged.values())), goal='0',
            passed=not unchanged,
            detail='median sync %s per compute; the first sync after '
                   'start wrote: %s' % (benchmarks.fmt_ms(unchanged_time),
                                        _format_writes(first))),
        benchmarks.Figure(
            NAME, 'trait writes per compute when stateless support flips '
                  '(%s)' % where,
            '%.2f' % (flipped['traits'] / sample),
            goal='1 traits write, nothing else',
            passed=flip_ok,
            detail='restart on libvirt 8.5.0: %s; median sync %s; trait '
                   'left on %d of them; the sync after: %s' % (
                       _format_writes(flipped),
                       benchmarks.fmt_ms(flipped_time), left,
                       _format_writes(settled))),
    ]


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    db_path = os.path.join(options.workdir, 'placement.sqlite')
    db_url = 'sqlite:///%s' % db_path
    CONF.set_override('embedded_connection', db_url, group='placement')
    placement = placement_fixture.PlacementFixture()
    placement.setUp()
    figures: list[benchmarks.Figure] = []
    try:
        population = Population(placement, db_url)
        client = report.SchedulerReportClient(placement.adapter)
        for size in sorted(options.provider_counts):
            population.grow(size)
            figures += _candidates_figures(client, size, options.runs)
        api_rate = min(population.size, API_PROVIDERS) / max(
            population.api_seconds, 1e-9)
        setup = 'API: %d providers in %.1f s (%.0f/s, so %d would take ' \
                '%.0f s)' % (min(population.size, API_PROVIDERS),
                             population.api_seconds, api_rate,
                             population.size,
                             population.size / api_rate)
        if population.db_count:
            setup += '; database, in bulk: %d in %.1f s' % (
                population.db_count, population.db_seconds)
        figures.append(benchmarks.Figure(
            NAME, 'setup of %d providers' % population.size,
            '%.1f s' % (population.api_seconds + population.db_seconds),
            detail=setup))
        figures += _sync_figures(placement, population.size,
                                 options.sync_sample)
    finally:
        placement.cleanUp()
        CONF.clear_override('embedded_connection', group='placement')
    return figures
