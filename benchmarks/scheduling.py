"""Scheduling at scale: allocation candidates and the periodic sync.

Real openstack-placement runs embedded in this process on a file-backed
SQLite database in the benchmark's scratch directory (a file rather than
placement's in-memory default: it has real pages, a journal and more than
one connection, as a small deployment's database would; placement in
production runs on MySQL or PostgreSQL, which this machine does not have).

The population: compute node providers with VCPU, MEMORY_MB and DISK_GB
inventory. The first 500 are created through placement's REST API, as
computes would, and that setup is timed; the rest (to 10,000) are written
in bulk through placement's own database models, since doing them one
request at a time would take minutes (the API rate measured on the first
500 says how many).

Allocation candidates, at each size, through
``SchedulerReportClient.get_allocation_candidates`` for a
``ResourceRequest`` built from a stateless image against one built from
the same UEFI image without the property, with Nova's default limit of
1,000; each request once untimed first, then alternating pairs:

* the cost of the trait: ``COMPUTE_SECURITY_STATELESS_FIRMWARE`` on every
  provider, so both queries return the same candidates and differ only by
  the trait filter;
* a rare trait: on 2% of the providers (every 50th), as in a cloud where
  few hosts can boot stateless firmware; the stateless query then returns
  fewer candidates.

The periodic sync, at each size: a sample of computes syncs its node's
provider through placement served over real HTTP by this process (one
WSGI server in front of the same placement), which counts every request
by method. This tree's side: ``ComputeManager.update_available_resource``
(its report client's ``get_provider_tree_and_ensure_root``, the driver's
``update_provider_tree``, ``update_from_provider_tree``) with
``LibvirtDriver`` on fakelibvirt, since the flip below needs a libvirt
this machine does not have. Upstream's side (``benchmarks.side_worker`` in
upstream's virtualenv, one ``SchedulerReportClient`` per compute): what
its resource tracker's ``_update_to_placement`` asks placement
(``get_provider_subtree_and_ensure_root``, the tree's allocations,
``update_from_provider_tree``), with the same inventory and capability
traits as this tree's driver reports. Upstream caches providers and
refreshes them every ``[compute] resource_provider_association_refresh``
(300 s), so its syncs are counted both cached and on a refresh (the
option set to 1 s for that one sync), and averaged over the default
period: one refresh in every five 60 s periodic syncs. Then the stateless
capability flips (this tree: a restart on libvirt 8.5.0; upstream: the
trait reported false) and the writes of that sync are counted.
"""

import collections
import os
import threading
import time
import typing as ty
from wsgiref import simple_server

import fixtures
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
import os_resource_classes as orc
import os_traits
from oslo_config import cfg
import sqlalchemy as sa

import benchmarks
from benchmarks import environment
from benchmarks import sides as sides_mod
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
API_PROVIDERS = 500
#: One provider in RARE_EVERY has the trait in the rare trait case (2%).
RARE_EVERY = 50
GOAL = 1.10
MARGIN = 0.10
PAIRS, SECONDS = 30, 75.0
#: Seconds between two periodic syncs of a compute (Nova's default) and
#: between two refreshes of upstream's provider cache (its default).
PERIODIC = 60
REFRESH = 300
INVENTORY = {
    orc.VCPU: {'total': 64, 'allocation_ratio': 4.0},
    orc.MEMORY_MB: {'total': 262144, 'reserved': 512},
    orc.DISK_GB: {'total': 2000},
}
#: What each side does in the sync counts (see feature_cost.SIDES).
SIDES = (
    ('scheduling: periodic sync',
     'ComputeManager.update_available_resource: '
     'get_provider_tree_and_ensure_root, the driver\'s '
     'update_provider_tree, update_from_provider_tree',
     "its resource tracker's _update_to_placement calls: "
     'get_provider_subtree_and_ensure_root, allocations of the tree '
     '(counted apart), the same inventory and traits, '
     'update_from_provider_tree'),
)
_INVENTORY_DEFAULTS = {'reserved': 0, 'min_unit': 1, 'step_size': 1,
                       'allocation_ratio': 1.0}


def _node_name(index: int) -> str:
    return 'bench-compute-%05d' % index


def _inventory() -> dict:
    return {rc: dict(_INVENTORY_DEFAULTS, max_unit=inv['total'], **inv)
            for rc, inv in INVENTORY.items()}


class Population:
    """The compute node providers in placement, grown on demand.

    Every provider is created with the trait; ``make_trait_rare`` and
    ``give_trait_to_all`` move between the two cases of the benchmark.
    """

    def __init__(self, placement: placement_fixture.PlacementFixture,
                 db_url: str) -> None:
        self._adapter = placement.adapter
        self._engine = sa.create_engine(db_url)
        self.size = 0
        self.api_seconds = 0.0
        self.db_seconds = 0.0
        self.db_count = 0

    def close(self) -> None:
        self._engine.dispose()

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
        self._check(self._adapter.put(
            '/resource_providers/%s/traits' % uuid, microversion='1.6',
            json={'resource_provider_generation':
                  inv['resource_provider_generation'],
                  'traits': [STATELESS]}), 200)

    def _trait_id(self, conn) -> int:
        return conn.execute(sa.select(placement_models.Trait.id).where(
            placement_models.Trait.name == STATELESS)).scalar()

    def _create_in_db(self, start: int, end: int) -> None:
        """Insert providers the way placement stores them, in bulk."""
        rp_table = placement_models.ResourceProvider.__table__
        inv_table = placement_models.Inventory.__table__
        rpt_table = placement_models.ResourceProviderTrait.__table__
        with self._engine.begin() as conn:
            rc_ids = {name: id_ for id_, name in conn.execute(sa.select(
                placement_models.ResourceClass.id,
                placement_models.ResourceClass.name))}
            trait_id = self._trait_id(conn)
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
                traits.append({'resource_provider_id': rp_id,
                               'trait_id': trait_id})
            conn.execute(rp_table.insert(), providers)
            conn.execute(inv_table.insert(), inventories)
            conn.execute(rpt_table.insert(), traits)

    def make_trait_rare(self) -> None:
        """Keep the trait on every RARE_EVERY-th provider only."""
        rpt = placement_models.ResourceProviderTrait.__table__
        rp = placement_models.ResourceProvider.__table__
        with self._engine.begin() as conn:
            trait_id = self._trait_id(conn)
            keep = [id_ for id_, name in conn.execute(sa.select(
                rp.c.id, rp.c.name))
                if int(name.rsplit('-', 1)[1]) % RARE_EVERY == 0]
            conn.execute(rpt.delete().where(
                rpt.c.trait_id == trait_id,
                rpt.c.resource_provider_id.not_in(keep)))

    def give_trait_to_all(self) -> None:
        rpt = placement_models.ResourceProviderTrait.__table__
        rp = placement_models.ResourceProvider.__table__
        with self._engine.begin() as conn:
            trait_id = self._trait_id(conn)
            have = set(conn.execute(sa.select(
                rpt.c.resource_provider_id).where(
                    rpt.c.trait_id == trait_id)).scalars())
            missing = [{'resource_provider_id': id_, 'trait_id': trait_id}
                       for id_ in conn.execute(sa.select(rp.c.id)).scalars()
                       if id_ not in have]
            if missing:
                conn.execute(rpt.insert(), missing)


def _requests() -> tuple[scheduler_utils.ResourceRequest,
                         scheduler_utils.ResourceRequest]:
    _instance, stateless_spec = environment.create_server(
        environment.image(stateless=True))
    _instance, plain_spec = environment.create_server(
        environment.image(stateless=None))
    return (scheduler_utils.ResourceRequest.from_request_spec(stateless_spec),
            scheduler_utils.ResourceRequest.from_request_spec(plain_spec))


def _candidates_figure(client: report.SchedulerReportClient, size: int,
                       case: str, caps) -> benchmarks.Figure:
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

    stateless, plain = (timed(stateless_req, 'stateless'),
                        timed(plain_req, 'plain'))
    # Warm placement's caches (resource classes, traits) and SQLite's
    # pages for both requests before anything is timed.
    stateless()
    plain()
    sampled = benchmarks.compare(stateless, plain, goal=GOAL,
                                 margin=MARGIN, max_pairs=caps[0],
                                 max_seconds=caps[1])
    return benchmarks.ratio_figure(
        NAME, 'allocation candidates, %d providers, trait on %s: '
              'stateless / without' % (size, case), sampled, GOAL, MARGIN,
        detail='medians: stateless %s (%d candidates), without %s (%d '
               'candidates); %s' % (
                   benchmarks.fmt_ms(benchmarks.median(sampled.first)),
                   counts['stateless'],
                   benchmarks.fmt_ms(benchmarks.median(sampled.second)),
                   counts['plain'], stateless_req.to_querystring()))


# --- the periodic sync -----------------------------------------------------


class _CountingApp:
    """Placement's WSGI app, counting requests by kind."""

    def __init__(self, app) -> None:
        self._app = app
        self._lock = threading.Lock()
        self.counts: collections.Counter = collections.Counter()

    def __call__(self, environ, start_response):
        method = environ['REQUEST_METHOD']
        path = environ.get('PATH_INFO', '')
        kind = 'GET' if method == 'GET' else 'write'
        if method == 'GET' and path.endswith('/allocations'):
            kind = 'GET allocations'
        with self._lock:
            self.counts[kind] += 1
            self.counts['%s %s' % (method, _route(path))] += 1
        return self._app(environ, start_response)

    def take(self) -> collections.Counter:
        with self._lock:
            counts, self.counts = self.counts, collections.Counter()
        return counts


def _route(path: str) -> str:
    parts = ['{uuid}' if len(p) == 36 and p.count('-') == 4 else p
             for p in path.split('/')]
    return '/'.join(parts)


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, *args) -> None:
        pass


class _HttpPlacement:
    """The embedded placement served over HTTP on the loopback."""

    def __init__(self, placement: placement_fixture.PlacementFixture
                 ) -> None:
        self.app = _CountingApp(placement.embedded.wsgi_app)
        self._server = simple_server.make_server(
            '127.0.0.1', 0, self.app, handler_class=_QuietHandler)
        self.url = 'http://127.0.0.1:%d' % self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True)
        self._thread.start()

    def adapter(self) -> ks_adapter.Adapter:
        # Placement here runs without keystone (noauth2): a token of
        # "admin" is what its auth middleware wants, as a keystone token.
        return ks_adapter.Adapter(
            ks_session.Session(auth=token_endpoint.Token(self.url, 'admin')),
            service_type='placement', endpoint_override=self.url,
            raise_exc=False)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class _TreeComputes:
    """A sample of this tree's compute services, each with its client."""

    def __init__(self, http: _HttpPlacement, indexes: ty.Iterable[int]
                 ) -> None:
        self.managers = [
            compute_manager.ComputeManager(
                None, report.SchedulerReportClient(http.adapter()),
                host=_node_name(index))
            for index in indexes]
        self._fake: ty.Optional[fixtures.Fixture] = None

    def restart_on(self, lv_ver: tuple[int, int, int]
                   ) -> libvirt_driver.LibvirtDriver:
        """Start every compute's driver on a fake libvirt ``lv_ver``.

        The computes share one driver (one fake host answers for all):
        what is measured is the sync, not the driver's start.
        """
        self.stop()
        self._fake = fakelibvirt.FakeLibvirtFixture(lv_ver=lv_ver)
        self._fake.setUp()
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host('bench')
        for manager in self.managers:
            manager.driver = driver
        return driver

    def sync(self) -> None:
        for manager in self.managers:
            manager.update_available_resource()

    def stop(self) -> None:
        if self._fake is not None:
            self._fake.cleanUp()
            self._fake = None


def _per_compute(counts: collections.Counter, computes: int,
                 kind: str) -> float:
    return counts[kind] / computes


def _routes(counts: collections.Counter) -> str:
    # The per-route counts ("GET /resource_providers/{uuid}"), not the
    # totals by kind.
    return ', '.join('%s %d' % kv for kv in sorted(counts.items())
                     if ' /' in kv[0]) or 'none'


def _set_refresh(seconds: ty.Optional[int]) -> bool:
    """Set this tree's provider cache refresh, if it has one."""
    try:
        if seconds is None:
            CONF.clear_override('resource_provider_association_refresh',
                                group='compute')
        else:
            CONF.set_override('resource_provider_association_refresh',
                              seconds, group='compute')
    except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
        return False
    return True


def _tree_sync(http: _HttpPlacement, size: int, sample: int) -> dict:
    """This tree's computes: counted as upstream's are.

    Should this tree's report client cache providers under upstream's
    option (``[compute] resource_provider_association_refresh``), the
    sync after a refresh is counted too; without such an option every
    sync is the same and the refresh one is the cached one again.
    """
    computes = _TreeComputes(http, range(sample))
    try:
        driver = computes.restart_on((8, 6, 0))
        caching = _set_refresh(REFRESH)
        http.app.take()
        computes.sync()
        start = http.app.take()
        computes.sync()
        unchanged = http.app.take()
        if caching:
            _set_refresh(1)
            time.sleep(1.2)
        computes.sync()
        refreshed = http.app.take()
        _set_refresh(REFRESH)
        computes.restart_on((8, 5, 0))
        computes.sync()
        flipped = http.app.take()
    finally:
        _set_refresh(None)
        computes.stop()
    return {'start': start, 'unchanged': unchanged, 'refreshed': refreshed,
            'flipped': flipped, 'caching': caching,
            'inventory': driver._get_inventory(),
            'traits': driver.capabilities_as_traits()}


def _upstream_sync(process: sides_mod.SideProcess, http: _HttpPlacement,
                   size: int, sample: int, inventory: dict,
                   traits: dict) -> dict:
    nodes = [(_node_name(i), compute_manager.compute_node_uuid(
        _node_name(i))) for i in range(size - sample, size)]
    process.call('sync_setup', url=http.url, nodes=nodes,
                 inventory=inventory, traits=traits)
    process.call('set', refresh=REFRESH)
    http.app.take()
    process.call('sync')
    start = http.app.take()
    process.call('sync')
    cached = http.app.take()
    process.call('set', refresh=1)
    time.sleep(1.2)
    process.call('sync')
    refreshed = http.app.take()
    process.call('set', refresh=REFRESH,
                 traits=dict(traits, **{STATELESS: False}))
    process.call('sync')
    flipped = http.app.take()
    return {'start': start, 'unchanged': cached, 'refreshed': refreshed,
            'flipped': flipped}


def _gets(result: dict, n: int) -> tuple[float, float, float]:
    """GETs per compute: cached sync, refresh sync, average at defaults."""
    cached = _per_compute(result['unchanged'], n, 'GET')
    refreshed = _per_compute(result['refreshed'], n, 'GET')
    periods = REFRESH // PERIODIC
    return cached, refreshed, (refreshed + (periods - 1) * cached) / periods


def _gets_text(gets: tuple[float, float, float], size: int) -> str:
    cached, refreshed, average = gets
    return ('%.2f cached, %.2f on a refresh: %.2f on average, %.0f per '
            'minute for %d computes' % (cached, refreshed, average,
                                        average * size * 60 / PERIODIC,
                                        size))


def _sync_figures(tree: dict, upstream: ty.Optional[dict], label: str,
                  why_not: str, size: int, sample: int
                  ) -> list[benchmarks.Figure]:
    n = sample
    where = '%d computes of %d' % (sample, size)
    tree_gets = _gets(tree, n)
    tree_writes = _per_compute(tree['unchanged'], n, 'write')
    figures = []
    goal, status = '', None
    if upstream is not None:
        up_gets = _gets(upstream, n)
        allocs = _per_compute(upstream['unchanged'], n, 'GET allocations')
        goal = '<= %s average (%.2f)' % (label, up_gets[2])
        status = benchmarks.pass_if(tree_gets[2] <= up_gets[2])
        figures.append(benchmarks.Figure(
            NAME, 'placement GETs per unchanged periodic sync, per compute, '
                  '%s: %s' % (where, label), _gets_text(up_gets, size),
            detail='cached: %s; refresh: %s; besides those, its resource '
                   "tracker reads the node's allocations on every sync "
                   '(%.2f GET), which this tree does not do' % (
                       _routes(upstream['unchanged']),
                       _routes(upstream['refreshed']), allocs)))
    figures.append(benchmarks.Figure(
        NAME, 'placement GETs per unchanged periodic sync, per compute, '
              '%s: this tree' % where, _gets_text(tree_gets, size),
        goal=goal, status_word=status,
        detail='cached: %s; refresh: %s%s; the first sync after start: '
               '%s%s' % (
                   _routes(tree['unchanged']), _routes(tree['refreshed']),
                   '' if tree['caching'] else
                   ' (no [compute] resource_provider_association_refresh '
                   'here: every sync reads)',
                   _routes(tree['start']),
                   '' if upstream is not None else '; %s: %s' % (
                       label, why_not))))
    figures.append(benchmarks.Figure(
        NAME, 'placement writes per unchanged periodic sync, per compute, '
              '%s: this tree' % where, '%.2f' % tree_writes, goal='0',
        status_word=benchmarks.pass_if(tree_writes == 0),
        detail='' if upstream is None else '%s: %.2f' % (
            label, _per_compute(upstream['unchanged'], n, 'write'))))
    flip_writes = tree['flipped']
    flip_ok = (flip_writes['write'] == n and
               flip_writes['PUT /resource_providers/{uuid}/traits'] == n)
    figures.append(benchmarks.Figure(
        NAME, 'placement requests of the sync after stateless support '
              'flips, per compute, %s: this tree' % where,
        '%.2f writes, %.2f GETs' % (_per_compute(flip_writes, n, 'write'),
                                    _per_compute(flip_writes, n, 'GET')),
        goal='1 traits write, nothing else written',
        status_word=benchmarks.pass_if(flip_ok),
        detail='restart on libvirt 8.5.0: %s%s' % (
            _routes(flip_writes), '' if upstream is None else
            '; %s (trait reported false): %s' % (
                label, _routes(upstream['flipped'])))))
    return figures


def _sync_at(placement: placement_fixture.PlacementFixture, size: int,
             options: benchmarks.Options) -> list[benchmarks.Figure]:
    sample = min(options.sync_sample, size // 2)
    http = _HttpPlacement(placement)
    upstream_side = next((s for s in options.sides
                          if s.label == sides_mod.UPSTREAM_LABEL), None)
    try:
        tree = _tree_sync(http, size, sample)
        upstream, why = None, 'not configured'
        if upstream_side is not None:
            process, why = sides_mod.start(upstream_side, options.workdir)
            if process is not None:
                try:
                    upstream = _upstream_sync(
                        process, http, size, sample, tree['inventory'],
                        tree['traits'])
                except sides_mod.SideError as ex:
                    why = str(ex)
                finally:
                    process.close()
    finally:
        http.close()
    label = upstream_side.label if upstream_side else 'upstream'
    return _sync_figures(tree, upstream, label, why, size, sample)


def run(options: benchmarks.Options) -> list[benchmarks.Figure]:
    db_path = os.path.join(options.workdir, 'placement.sqlite')
    db_url = 'sqlite:///%s' % db_path
    CONF.set_override('embedded_connection', db_url, group='placement')
    placement = placement_fixture.PlacementFixture()
    placement.setUp()
    figures: list[benchmarks.Figure] = []
    caps = options.cap(PAIRS, SECONDS)
    population = Population(placement, db_url)
    try:
        client = report.SchedulerReportClient(placement.adapter)
        for size in sorted(options.provider_counts):
            population.grow(size)
            figures.append(_candidates_figure(client, size,
                                              'every provider', caps))
            population.make_trait_rare()
            figures.append(_candidates_figure(
                client, size, '%d%% of them' % (100 // RARE_EVERY), caps))
            population.give_trait_to_all()
            figures += _sync_at(placement, size, options)
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
    finally:
        population.close()
        placement.cleanUp()
        CONF.clear_override('embedded_connection', group='placement')
    return figures
