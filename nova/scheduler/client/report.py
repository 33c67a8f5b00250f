"""The placement client of the compute and scheduler services.

The compute side keeps its node's resource provider in placement up to date:
``get_provider_tree_and_ensure_root`` gives the virt driver a picture of the
provider, the driver edits it in ``update_provider_tree``, and
``update_from_provider_tree`` writes back what the driver changed. As in
Nova, the picture comes from a cache that is read from placement again only
every ``[compute] resource_provider_association_refresh`` seconds, or at
once when a write finds it stale: a periodic sync that changes nothing sends
placement no request at all. The scheduler side asks
``get_allocation_candidates`` which providers can host a request.

Traits on a compute node provider have several owners: the driver reports
capabilities, operators add ``CUSTOM_*`` traits, other services add their
own. Every write therefore carries the provider generation it was computed
from; placement refuses it (409) if anyone wrote in between, and the client
then re-reads the provider and applies only what the driver changed on top
of the fresh traits, so that nobody else's trait is lost.
"""

import collections
import contextlib
import threading
import time
import typing as ty
from urllib import parse

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from oslo_log import log as logging

from nova.compute import provider_tree
import nova.conf
from nova import exception
from nova.scheduler.client import embedded

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

# Each call names the placement microversion it is written against, so a
# newer placement never changes what the client sees.
#: GET /resource_providers/{uuid} and ?name= filtering.
PROVIDER_GET_VERSION = '1.14'
#: POST /resource_providers answers with the new provider.
POST_RPS_RETURNS_PAYLOAD_API_VERSION = '1.20'
#: /traits and /resource_providers/{uuid}/traits. The only 409 a trait
#: write can get is a generation conflict.
TRAITS_VERSION = '1.6'
#: Inventories; 1.26 allows reserved == total. Since 1.23 errors carry a
#: code, which tells a generation conflict from inventory still in use.
INVENTORY_VERSION = '1.26'
#: GET /allocation_candidates with ``required=in:...`` and ``!TRAIT``.
ALLOCATION_CANDIDATES_VERSION = '1.39'

#: PUT /allocations/{consumer} with consumer generations.
ALLOCATIONS_VERSION = '1.28'

#: How often ``update_from_provider_tree`` tries one provider when others
#: keep writing to it in between, before it gives up.
MAX_GENERATION_ATTEMPTS = 4

_CONCURRENT_UPDATE = 'placement.concurrent_update'
# The write_counts key of each kind of provider data.
_WRITE_KINDS = {'inventories': 'inventory', 'traits': 'traits'}
_SNAPSHOTS_KEPT = 8

# keystoneauth's ways of saying "placement could not be reached".
_CONNECT_ERRORS = (
    ks_exc.ConnectionError,
    ks_exc.CatalogException,
    ks_exc.DiscoveryFailure,
    ks_exc.AuthPluginException,
    ks_exc.AuthorizationFailure,
    ks_exc.Unauthorized,
)

TraitInfo = collections.namedtuple('TraitInfo', ['traits', 'generation'])


class QueryStringSource(ty.Protocol):
    """Anything that renders itself as an allocation candidates query."""

    def to_querystring(self) -> str:
        ...


def get_placement_adapter(conf: cfg.ConfigOpts) -> ks_adapter.Adapter:
    """A keystoneauth adapter to placement over HTTP, from ``[placement]``.

    ``raise_exc=False``: the client looks at every status code itself.
    """
    group = 'placement'
    auth = ks_loading.load_auth_from_conf_options(conf, group)
    session = ks_loading.load_session_from_conf_options(
        conf, group, auth=auth)
    return ks_loading.load_adapter_from_conf_options(
        conf, group, session=session, auth=auth, raise_exc=False)


@contextlib.contextmanager
def placement_client(
        conf: cfg.ConfigOpts) -> ty.Iterator[ks_adapter.Adapter]:
    """Yield an adapter to the placement that ``[placement]`` selects.

    With ``embedded = True`` (the default) placement runs in this process
    for as long as the ``with`` block lasts; otherwise the adapter reaches a
    deployment over HTTP.
    """
    if conf.placement.embedded:
        with embedded.EmbeddedPlacement(conf) as adapter:
            yield adapter
    else:
        yield get_placement_adapter(conf)


def _is_json_object(resp) -> bool:
    try:
        return isinstance(resp.json(), dict)
    except ValueError:
        return False


def _error_code(resp) -> str | None:
    try:
        return resp.json()['errors'][0]['code']
    except (ValueError, KeyError, IndexError, TypeError):
        return None


class SchedulerReportClient:
    """Client for placement's provider, trait and candidate APIs.

    The client keeps its last-known view of every provider it handled
    (generation, inventory, traits) so that an unchanged provider costs no
    request at all in ``update_from_provider_tree``.

    ``write_counts`` counts the write requests placement answered, refused
    ones (e.g. a 409) included, by kind: ``resource_provider`` (create),
    ``inventory``, ``traits`` (a provider's trait set), ``trait`` (a custom
    trait's definition). ``write_count`` is their sum. Benchmarks read them
    to check that an unchanged host costs no write.
    """

    def __init__(self, adapter: ks_adapter.Adapter,
                 max_generation_attempts: int = MAX_GENERATION_ATTEMPTS
                 ) -> None:
        self._adapter = adapter
        self.max_generation_attempts = max_generation_attempts
        # Serializes refresh and sync of the view below; HTTP calls are
        # short and a compute host has few providers.
        self._lock = threading.RLock()
        self._provider_tree = provider_tree.ProviderTree()
        # uuid -> {generation: ProviderData}: what placement held at each
        # recent generation, i.e. what a caller's tree was built from.
        self._snapshots: dict[str, collections.OrderedDict] = {}
        self._known_traits: set[str] = set()
        # uuid -> time.monotonic() of the provider's last read from
        # placement; no entry means it must be read before it is used.
        self._association_refresh_time: dict[str, float] = {}
        # Compute node UUID -> UUID of the provider used for it.
        self._provider_for: dict[str, str] = {}
        self.write_counts: collections.Counter = collections.Counter()

    @property
    def write_count(self) -> int:
        return sum(self.write_counts.values())

    # --- HTTP ---------------------------------------------------------------

    def _request(self, method: str, url: str, version: str,
                 write_kind: str | None = None, payload=None):
        kwargs = {'microversion': version}
        if payload is not None:
            kwargs['json'] = payload
        try:
            resp = self._adapter.request(url, method, **kwargs)
        except _CONNECT_ERRORS as e:
            LOG.warning('Placement API unreachable: %s %s: %s',
                        method, url, e)
            raise exception.PlacementAPIConnectFailure(reason=str(e)) from e
        if write_kind is not None:
            self.write_counts[write_kind] += 1
        if resp.status_code >= 400:
            LOG.debug('Placement answered %s %s with %d: %s',
                      method, url, resp.status_code, resp.text)
        elif resp.content and not _is_json_object(resp):
            # Not placement (a proxy's page, a wrong endpoint): say so,
            # rather than fail on it later as a missing key.
            raise exception.PlacementAPIConnectFailure(
                reason='%s %s answered %d with a body that is not a JSON '
                       'object: %.80r' % (method, url, resp.status_code,
                                          resp.text))
        return resp

    def _get(self, url: str, version: str):
        return self._request('GET', url, version)

    # --- providers ----------------------------------------------------------

    def get_provider_by_name(self, name: str) -> dict:
        """Return placement's record of the provider called ``name``.

        :raises ResourceProviderNotFound: if there is none.
        """
        url = '/resource_providers?name=%s' % parse.quote(name, safe='')
        resp = self._get(url, PROVIDER_GET_VERSION)
        if resp.status_code != 200:
            raise exception.ResourceProviderRetrievalFailed(uuid=name)
        providers = resp.json()['resource_providers']
        if not providers:
            raise exception.ResourceProviderNotFound(name_or_uuid=name)
        return providers[0]

    def get_provider_name(self, uuid: str) -> str:
        """Return the name of the provider ``uuid``.

        :raises ResourceProviderNotFound: if there is none.
        """
        provider = self._get_resource_provider(uuid)
        if provider is None:
            raise exception.ResourceProviderNotFound(name_or_uuid=uuid)
        return provider['name']

    def _get_resource_provider(self, uuid: str) -> dict | None:
        resp = self._get('/resource_providers/%s' % uuid,
                         PROVIDER_GET_VERSION)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise exception.ResourceProviderRetrievalFailed(uuid=uuid)
        return resp.json()

    def _create_resource_provider(self, uuid: str, name: str) -> dict | None:
        """Create a provider; None if its name or UUID is already taken."""
        resp = self._request('POST', '/resource_providers',
                             POST_RPS_RETURNS_PAYLOAD_API_VERSION,
                             write_kind='resource_provider',
                             payload={'uuid': uuid, 'name': name})
        if resp.status_code == 200:
            LOG.info('Created resource provider %s (%s)', name, uuid)
            return resp.json()
        if resp.status_code == 409:
            return None
        raise exception.ResourceProviderCreationFailed(name=name)

    def _ensure_resource_provider(self, uuid: str, name: str) -> str:
        """Make sure placement has the provider; return its UUID.

        A provider already registered under ``name`` with another UUID (e.g.
        the compute node record was recreated) is used as it is, so that
        its traits and allocations stay where they are.
        """
        provider = (self._get_resource_provider(uuid) or
                    self._create_resource_provider(uuid, name))
        if provider is None:
            # Someone else created it in between, or the name is taken.
            provider = (self._get_resource_provider(uuid) or
                        self.get_provider_by_name(name))
            if provider['uuid'] != uuid:
                LOG.warning('Resource provider %s already exists with UUID '
                            '%s; using it instead of %s.',
                            name, provider['uuid'], uuid)
        self._cache_provider(provider)
        return provider['uuid']

    def _cache_provider(self, provider: dict) -> None:
        uuid, name = provider['uuid'], provider['name']
        if self._provider_tree.exists(uuid):
            return
        if self._provider_tree.exists(name):
            # The name moved to a new provider (the old one was deleted and
            # the host registered again): the old entry is stale.
            self._forget(self._provider_tree.data(name).uuid)
        self._provider_tree.new_root(name, uuid, provider['generation'])

    def _ensure_cached(self, uuid: str) -> None:
        if self._provider_tree.exists(uuid):
            return
        provider = self._get_resource_provider(uuid)
        if provider is None:
            raise exception.ResourceProviderNotFound(name_or_uuid=uuid)
        self._cache_provider(provider)
        self._refresh_provider(uuid)

    def get_provider_tree_and_ensure_root(
            self, rp_uuid: str, name: str) -> provider_tree.ProviderTree:
        """Return a copy of the client's providers.

        The root provider is created in placement if needed. Its generation,
        inventory and traits come from the client's cache, read from
        placement when the provider is first seen and again once the cache
        is older than ``[compute] resource_provider_association_refresh``
        or after a write failed. A change someone else made in between is
        not lost: writes carry the cached generation, placement refuses a
        stale one and ``update_from_provider_tree`` then re-reads the
        provider and applies only the caller's change on top.
        """
        with self._lock:
            # The provider used for rp_uuid may have another UUID (see
            # _ensure_resource_provider).
            uuid = self._provider_for.get(rp_uuid, rp_uuid)
            if (not self._provider_tree.exists(uuid) or
                    self._associations_stale(uuid)):
                uuid = self._ensure_resource_provider(rp_uuid, name)
                self._refresh_provider(uuid)
                self._provider_for[rp_uuid] = uuid
            return self._copy_of_view()

    def _associations_stale(self, uuid: str) -> bool:
        """Whether the provider's cached data must be read again.

        It must if it was never read or a write to it failed since; else
        once it is older than ``resource_provider_association_refresh``
        seconds, unless that is zero (never).
        """
        refreshed = self._association_refresh_time.get(uuid)
        if refreshed is None:
            return True
        interval = CONF.compute.resource_provider_association_refresh
        return interval > 0 and time.monotonic() - refreshed > interval

    def invalidate_resource_provider(self, uuid: str) -> None:
        """Read the provider from placement before its next use."""
        with self._lock:
            self._association_refresh_time.pop(uuid, None)

    def _copy_of_view(self) -> provider_tree.ProviderTree:
        tree = provider_tree.ProviderTree()
        for uuid in self._provider_tree.get_provider_uuids():
            data = self._provider_tree.data(uuid)
            tree.new_root(data.name, data.uuid, data.generation)
            tree.update_inventory(uuid, data.inventory)
            tree.update_traits(uuid, data.traits)
        return tree

    def _refresh_provider(self, uuid: str) -> None:
        """Read inventory and traits; keep them only if they match.

        Each answer carries the generation it was read at; if a write came
        between the two reads they differ, and reading again gives a
        consistent pair.
        """
        for _attempt in range(self.max_generation_attempts):
            inventory, inv_generation = self._get_inventory(uuid)
            traits = self.get_provider_traits(uuid)
            if inv_generation == traits.generation:
                break
        else:
            raise exception.ResourceProviderRetrievalFailed(uuid=uuid)
        self._provider_tree.update_inventory(uuid, inventory, inv_generation)
        self._provider_tree.update_traits(uuid, traits.traits)
        # A trait on a provider exists in placement: writing it back later
        # needs no lookup.
        self._known_traits.update(traits.traits)
        self._remember(uuid)
        self._association_refresh_time[uuid] = time.monotonic()

    def _remember(self, uuid: str) -> None:
        data = self._provider_tree.data(uuid)
        snapshots = self._snapshots.setdefault(
            uuid, collections.OrderedDict())
        snapshots[data.generation] = data
        snapshots.move_to_end(data.generation)
        while len(snapshots) > _SNAPSHOTS_KEPT:
            snapshots.popitem(last=False)

    # --- inventory ----------------------------------------------------------

    def _get_inventory(self, uuid: str) -> tuple[dict, int]:
        resp = self._get('/resource_providers/%s/inventories' % uuid,
                         INVENTORY_VERSION)
        if resp.status_code == 404:
            self._forget(uuid)
            raise exception.ResourceProviderNotFound(name_or_uuid=uuid)
        if resp.status_code != 200:
            raise exception.ResourceProviderRetrievalFailed(uuid=uuid)
        body = resp.json()
        return body['inventories'], body['resource_provider_generation']

    def _forget(self, uuid: str) -> None:
        if self._provider_tree.exists(uuid):
            self._provider_tree.remove(uuid)
        self._snapshots.pop(uuid, None)
        self._association_refresh_time.pop(uuid, None)

    def set_inventory_for_provider(self, rp_uuid: str, inventory: dict,
                                   generation: int | None = None) -> None:
        """Replace the provider's inventory in placement.

        :param generation: defaults to the last generation the client saw.
        :raises ResourceProviderUpdateConflict: on a generation conflict.
        :raises ResourceProviderUpdateFailed: on any other refusal, e.g.
            inventory that existing allocations still use.
        """
        with self._lock:
            self._ensure_cached(rp_uuid)
            self._put_provider_data(
                rp_uuid, 'inventories', INVENTORY_VERSION, inventory,
                generation,
                # Since 1.23 a 409 says why: only a concurrent update is a
                # generation conflict; inventory in use is not.
                is_conflict=lambda resp: (
                    _error_code(resp) == _CONCURRENT_UPDATE))

    def _put_provider_data(
            self, rp_uuid: str, kind: str, version: str, value,
            generation: int | None,
            is_conflict: ty.Callable[[ty.Any], bool]) -> None:
        """Replace a provider's ``inventories`` or ``traits``.

        The write carries the provider generation (by default the last one
        the client saw); on success the client's view takes placement's
        answer and its new generation.

        :raises ResourceProviderUpdateConflict: a 409 that ``is_conflict``
            says is a generation conflict.
        :raises ResourceProviderUpdateFailed: any other refusal.
        """
        if generation is None:
            generation = self._provider_tree.data(rp_uuid).generation
        url = '/resource_providers/%s/%s' % (rp_uuid, kind)
        resp = self._request(
            'PUT', url, version, write_kind=_WRITE_KINDS[kind],
            payload={'resource_provider_generation': generation,
                     kind: value})
        if resp.status_code == 200:
            body = resp.json()
            update = (self._provider_tree.update_inventory
                      if kind == 'inventories'
                      else self._provider_tree.update_traits)
            update(rp_uuid, body[kind], body['resource_provider_generation'])
            self._remember(rp_uuid)
            LOG.info('Updated %(kind)s of resource provider %(uuid)s: '
                     '%(value)s', {'kind': kind, 'uuid': rp_uuid,
                                   'value': value})
            return
        if resp.status_code == 409 and is_conflict(resp):
            raise exception.ResourceProviderUpdateConflict(
                uuid=rp_uuid, generation=generation, error=resp.text)
        raise exception.ResourceProviderUpdateFailed(url=url, error=resp.text)

    # --- traits -------------------------------------------------------------

    def get_provider_traits(self, rp_uuid: str) -> TraitInfo:
        """Return the provider's traits and the generation they belong to.

        :raises ResourceProviderTraitRetrievalFailed: if placement refuses.
        """
        resp = self._get('/resource_providers/%s/traits' % rp_uuid,
                         TRAITS_VERSION)
        if resp.status_code != 200:
            raise exception.ResourceProviderTraitRetrievalFailed(
                uuid=rp_uuid)
        body = resp.json()
        return TraitInfo(frozenset(body['traits']),
                         body['resource_provider_generation'])

    def _ensure_traits(self, traits: ty.Iterable[str]) -> None:
        """Create the custom traits placement does not know yet.

        A provider can only carry traits that exist in placement; standard
        traits exist from placement's start, custom ones are created here.
        """
        unknown = set(traits) - self._known_traits
        if not unknown:
            return
        names = ','.join(sorted(unknown))
        resp = self._get('/traits?name=in:%s' % parse.quote(names, safe=','),
                         TRAITS_VERSION)
        if resp.status_code != 200:
            raise exception.TraitRetrievalFailed(error=resp.text)
        self._known_traits.update(resp.json()['traits'])
        for name in sorted(unknown - self._known_traits):
            resp = self._request('PUT', '/traits/%s' % name, TRAITS_VERSION,
                                 write_kind='trait')
            if resp.status_code not in (201, 204):
                raise exception.TraitCreationFailed(name=name,
                                                    error=resp.text)
            self._known_traits.add(name)

    def set_traits_for_provider(self, rp_uuid: str,
                                traits: ty.Iterable[str],
                                generation: int | None = None) -> None:
        """Replace the provider's traits in placement with ``traits``.

        :param generation: defaults to the last generation the client saw.
        :raises ResourceProviderUpdateConflict: on a generation conflict.
        """
        traits = sorted(set(traits))
        with self._lock:
            self._ensure_cached(rp_uuid)
            self._ensure_traits(traits)
            # At this microversion a trait write has no other 409 than a
            # generation conflict.
            self._put_provider_data(
                rp_uuid, 'traits', TRAITS_VERSION, traits, generation,
                is_conflict=lambda resp: True)

    # --- sync from the driver's tree ----------------------------------------

    def update_from_provider_tree(
            self, new_tree: provider_tree.ProviderTree) -> None:
        """Write to placement what the caller changed in ``new_tree``.

        ``new_tree`` is normally the one ``get_provider_tree_and_ensure_root``
        returned, edited by the virt driver. Inventory is the compute host's
        own and is written whenever it differs from placement's. Traits are
        shared, so only the ones the caller added or removed are applied,
        on top of whatever placement holds when the write succeeds.

        Nothing is written for a provider the caller did not change.

        :raises ResourceProviderUpdateConflict: if other writers kept winning
            for ``max_generation_attempts`` tries.
        :raises PlacementAPIConnectFailure: if placement is unreachable; the
            caller's tree is untouched and the next call tries again.
        """
        with self._lock:
            for uuid in new_tree.get_provider_uuids():
                try:
                    self._update_provider(new_tree.data(uuid))
                except Exception:
                    # Whatever placement holds now is unknown: the next
                    # call reads it rather than trusting the cache.
                    self.invalidate_resource_provider(uuid)
                    raise

    def _base_of(self, uuid: str, desired: provider_tree.ProviderData
                 ) -> provider_tree.ProviderData:
        """What placement held when the caller's copy was taken.

        The caller's change is its tree minus this. Falling back to the
        current view is right for a tree built by hand (no generation) and
        as good as it gets for a very old one.
        """
        snapshot = self._snapshots.get(uuid, {}).get(desired.generation)
        return snapshot or self._provider_tree.data(uuid)

    def _update_provider(self, desired: provider_tree.ProviderData) -> None:
        uuid = desired.uuid
        if not self._provider_tree.exists(uuid):
            # A tree built by the caller, not handed out by this client.
            uuid = self._ensure_resource_provider(uuid, desired.name)
            self._refresh_provider(uuid)
        base = self._base_of(uuid, desired)
        added = desired.traits - base.traits
        removed = base.traits - desired.traits
        attempt = 1
        while True:
            try:
                self._push_inventory(uuid, desired.inventory)
                self._push_traits(uuid, added, removed)
                return
            except exception.ResourceProviderUpdateConflict:
                if attempt >= self.max_generation_attempts:
                    LOG.error('Giving up updating resource provider %s '
                              'after %d generation conflicts.',
                              uuid, attempt)
                    raise
                LOG.info('Resource provider %s changed under us (attempt '
                         '%d of %d); re-reading it and retrying.',
                         uuid, attempt, self.max_generation_attempts)
                attempt += 1
                self._refresh_provider(uuid)

    def _push_inventory(self, uuid: str, inventory: dict) -> None:
        if self._provider_tree.has_inventory_changed(uuid, inventory):
            self.set_inventory_for_provider(uuid, inventory)

    def _push_traits(self, uuid: str, added: frozenset,
                     removed: frozenset) -> None:
        current = self._provider_tree.data(uuid).traits
        wanted = (current | added) - removed
        if wanted != current:
            self.set_traits_for_provider(uuid, wanted)

    # --- scheduling ---------------------------------------------------------

    def get_allocation_candidates(
            self, resource_request: QueryStringSource
    ) -> tuple[list, dict, str]:
        """Ask placement which providers can satisfy ``resource_request``.

        :returns: ``(allocation_requests, provider_summaries, version)`` as
            placement answers them at ``version``.
        :raises AllocationCandidatesRetrievalFailed: if placement refuses
            the query.
        """
        version = ALLOCATION_CANDIDATES_VERSION
        url = '/allocation_candidates?%s' % resource_request.to_querystring()
        resp = self._get(url, version)
        if resp.status_code != 200:
            raise exception.AllocationCandidatesRetrievalFailed(
                error=resp.text)
        body = resp.json()
        return body['allocation_requests'], body['provider_summaries'], version

    # --- allocations --------------------------------------------------------

    def claim_resources(self, consumer_uuid: str, alloc_request: dict,
                        project_id: str, user_id: str) -> bool:
        """Claim an allocation request placement offered for a consumer.

        :returns: True when placement accepted the claim, False when it was
            refused (the resources went to someone else in between).
        """
        allocations = alloc_request['allocations']
        # A new consumer: placement refuses the claim if one exists.
        generation = None
        current = self._get_allocations(consumer_uuid)
        if current is not None and current['allocations']:
            # An instance being evacuated keeps what it holds on its
            # source until that host is cleaned up: claim both.
            allocations = _merge_allocations(current['allocations'],
                                             allocations)
            generation = current['consumer_generation']
        payload = {
            'allocations': allocations,
            'project_id': project_id,
            'user_id': user_id,
            'consumer_generation': generation,
        }
        resp = self._request('PUT', '/allocations/%s' % consumer_uuid,
                             ALLOCATIONS_VERSION, write_kind='allocations',
                             payload=payload)
        if resp.status_code != 204:
            LOG.warning('Unable to claim resources for %(uuid)s: %(err)s',
                        {'uuid': consumer_uuid, 'err': resp.text})
            return False
        return True

    def _get_allocations(self, consumer_uuid: str) -> dict | None:
        resp = self._get('/allocations/%s' % consumer_uuid,
                         ALLOCATIONS_VERSION)
        if resp.status_code != 200:
            return None
        return resp.json()

    def move_allocations(self, source_consumer: str, target_consumer: str,
                         project_id: str, user_id: str) -> bool:
        """Move all of a consumer's allocations to another, atomically.

        As Nova does for a cold migration: the instance's allocation on
        its source becomes the migration's, so the instance can claim its
        destination, and back on revert. One ``POST /allocations`` writes
        both consumers with their generations, so a concurrent change to
        either makes it fail rather than lose or double resources.

        :returns: True when placement took the move; False when there was
            nothing to move or placement refused it.
        """
        source = self._get_allocations(source_consumer)
        if not source or not source['allocations']:
            return False
        target = self._get_allocations(target_consumer) or {}
        payload = {
            source_consumer: {
                'allocations': {},
                'project_id': project_id, 'user_id': user_id,
                'consumer_generation': source['consumer_generation']},
            target_consumer: {
                'allocations': {
                    rp: {'resources': alloc['resources']}
                    for rp, alloc in source['allocations'].items()},
                'project_id': project_id, 'user_id': user_id,
                'consumer_generation': target.get('consumer_generation')},
        }
        resp = self._request('POST', '/allocations', ALLOCATIONS_VERSION,
                             write_kind='allocations', payload=payload)
        if resp.status_code != 204:
            LOG.warning('Unable to move allocations of %(src)s to %(dst)s: '
                        '%(err)s', {'src': source_consumer,
                                    'dst': target_consumer,
                                    'err': resp.text})
            return False
        return True

    def remove_provider_from_allocation(self, consumer_uuid: str,
                                        rp_uuid: str, project_id: str,
                                        user_id: str) -> bool:
        """Drop what a consumer holds on one provider, keep the rest.

        For the source host of an evacuated instance, once cleaned up.
        """
        current = self._get_allocations(consumer_uuid)
        if not current or rp_uuid not in current['allocations']:
            return False
        payload = {
            'allocations': {
                rp: {'resources': alloc['resources']}
                for rp, alloc in current['allocations'].items()
                if rp != rp_uuid},
            'project_id': project_id, 'user_id': user_id,
            'consumer_generation': current['consumer_generation'],
        }
        resp = self._request('PUT', '/allocations/%s' % consumer_uuid,
                             ALLOCATIONS_VERSION, write_kind='allocations',
                             payload=payload)
        return resp.status_code == 204

    def get_allocations_for_consumer(self, consumer_uuid: str) -> dict:
        """Provider uuid -> resources placement holds for a consumer."""
        resp = self._get('/allocations/%s' % consumer_uuid,
                         ALLOCATIONS_VERSION)
        if resp.status_code != 200:
            return {}
        return {rp: alloc['resources']
                for rp, alloc in resp.json()['allocations'].items()}

    def delete_allocation_for_instance(self, consumer_uuid: str) -> bool:
        """Remove a consumer's allocations; True if there were any."""
        resp = self._request('DELETE', '/allocations/%s' % consumer_uuid,
                             ALLOCATIONS_VERSION, write_kind='allocations')
        return resp.status_code == 204


def _merge_allocations(current: dict, claimed: dict) -> dict:
    """A consumer's allocations with another claim added, by provider."""
    merged = {rp: {'resources': dict(alloc['resources'])}
              for rp, alloc in current.items()}
    for rp, alloc in claimed.items():
        resources = merged.setdefault(rp, {'resources': {}})['resources']
        for rc, amount in alloc['resources'].items():
            resources[rc] = resources.get(rc, 0) + amount
    return merged
