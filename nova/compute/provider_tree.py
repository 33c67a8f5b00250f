"""An in-memory picture of resource providers as placement knows them.

The compute manager hands a ``ProviderTree`` to the virt driver's
``update_provider_tree``; the driver edits inventory and traits in it, and the
report client pushes the differences to placement. Every public method takes
the tree's lock, because the periodic resource update and other compute
threads may touch the same tree.

Only root providers are modelled here (the stateless firmware trait lives on
the compute node provider itself), but the names follow Nova's so that a
driver written against Nova's tree reads the same.
"""

import copy
import dataclasses
import threading
import typing as ty

from oslo_log import log as logging

LOG = logging.getLogger(__name__)

#: Values placement stores for inventory fields a request leaves out
#: (``max_unit``'s is the largest 32-bit signed integer).
_INVENTORY_DEFAULTS = {
    'reserved': 0,
    'min_unit': 1,
    'max_unit': 0x7FFFFFFF,
    'step_size': 1,
    'allocation_ratio': 1.0,
}


@dataclasses.dataclass(frozen=True)
class ProviderData:
    """A read-only copy of one provider, safe to use outside the lock."""

    uuid: str
    name: str
    generation: int | None
    parent_uuid: str | None
    inventory: dict
    traits: frozenset


def _normalized_record(record: dict) -> dict:
    """Return ``record`` with placement's defaults filled in.

    Placement replaces a whole inventory record on PUT, so a field the caller
    leaves out is not "unchanged": it becomes the default. Comparing filled-in
    records therefore tells exactly whether a PUT would change anything.
    """
    return dict(_INVENTORY_DEFAULTS, **record)


def inventory_differs(current: dict, new: dict) -> bool:
    """Whether writing ``new`` over ``current`` would change placement."""
    if set(current) != set(new):
        return True
    return any(_normalized_record(current[rc]) != _normalized_record(rec)
               for rc, rec in new.items())


class _Provider:
    """One provider's mutable state; only touched under the tree lock."""

    def __init__(self, name: str, uuid: str,
                 generation: int | None = None,
                 parent_uuid: str | None = None) -> None:
        self.name = name
        self.uuid = uuid
        self.generation = generation
        self.parent_uuid = parent_uuid
        self.inventory: dict = {}
        self.traits: set = set()

    def data(self) -> ProviderData:
        return ProviderData(
            uuid=self.uuid, name=self.name, generation=self.generation,
            parent_uuid=self.parent_uuid,
            inventory=copy.deepcopy(self.inventory),
            traits=frozenset(self.traits))

    def _set_generation(self, generation: int | None) -> None:
        # A write to placement returns the provider's new generation; the
        # caller passes it here so the next write is not refused as stale.
        if generation is not None and generation != self.generation:
            LOG.debug('Updating generation of provider %s from %s to %s',
                      self.uuid, self.generation, generation)
            self.generation = generation

    def update_inventory(self, inventory: dict,
                         generation: int | None) -> bool:
        self._set_generation(generation)
        if not inventory_differs(self.inventory, inventory):
            return False
        self.inventory = copy.deepcopy(inventory)
        return True

    def update_traits(self, traits: ty.Iterable[str],
                      generation: int | None) -> bool:
        self._set_generation(generation)
        new = set(traits)
        if new == self.traits:
            return False
        self.traits = new
        return True


class ProviderTree:
    """A thread-safe collection of resource providers, keyed by name/UUID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # Insertion ordered, so callers walk providers in a stable order.
        self._by_uuid: dict[str, _Provider] = {}

    def _find(self, name_or_uuid: str) -> _Provider:
        provider = self._by_uuid.get(name_or_uuid)
        if provider is not None:
            return provider
        for provider in self._by_uuid.values():
            if provider.name == name_or_uuid:
                return provider
        raise ValueError('No such provider %s' % name_or_uuid)

    def _exists(self, name_or_uuid: str) -> bool:
        try:
            self._find(name_or_uuid)
        except ValueError:
            return False
        return True

    def get_provider_uuids(self) -> list[str]:
        """UUIDs of all providers in the tree, in insertion order."""
        with self.lock:
            return list(self._by_uuid)

    def new_root(self, name: str, uuid: str,
                 generation: int | None = None) -> str:
        """Add a root provider; return its UUID.

        :raises ValueError: if a provider with that name or UUID exists.
        """
        with self.lock:
            for key in (uuid, name):
                if self._exists(key):
                    raise ValueError(
                        'Provider %s already exists.' % key)
            self._by_uuid[uuid] = _Provider(name, uuid, generation)
            return uuid

    def remove(self, name_or_uuid: str) -> None:
        """Forget a provider, e.g. after placement reported it deleted."""
        with self.lock:
            del self._by_uuid[self._find(name_or_uuid).uuid]

    def exists(self, name_or_uuid: str) -> bool:
        with self.lock:
            return self._exists(name_or_uuid)

    def data(self, name_or_uuid: str) -> ProviderData:
        """Return a copy of a provider's state.

        :raises ValueError: if no such provider is in the tree.
        """
        with self.lock:
            return self._find(name_or_uuid).data()

    def has_inventory_changed(self, name_or_uuid: str,
                              inventory: dict) -> bool:
        """Whether ``inventory`` differs from the provider's inventory."""
        with self.lock:
            current = self._find(name_or_uuid).inventory
            return inventory_differs(current, inventory)

    def update_inventory(self, name_or_uuid: str, inventory: dict,
                         generation: int | None = None) -> bool:
        """Replace a provider's inventory; return whether it changed.

        :param inventory: ``{resource_class: {'total': ..., ...}}`` as in
            placement's inventories API.
        :param generation: the provider generation placement reported with
            this inventory, if known.
        """
        with self.lock:
            return self._find(name_or_uuid).update_inventory(
                inventory, generation)

    def have_traits_changed(self, name_or_uuid: str,
                            traits: ty.Iterable[str]) -> bool:
        """Whether ``traits`` is not exactly the provider's trait set."""
        with self.lock:
            return set(traits) != self._find(name_or_uuid).traits

    def has_traits(self, name_or_uuid: str,
                   traits: ty.Iterable[str]) -> bool:
        """Whether the provider has every one of ``traits``."""
        with self.lock:
            return set(traits) <= self._find(name_or_uuid).traits

    def update_traits(self, name_or_uuid: str, traits: ty.Iterable[str],
                      generation: int | None = None) -> bool:
        """Replace a provider's traits; return whether they changed."""
        with self.lock:
            return self._find(name_or_uuid).update_traits(traits, generation)

    def add_traits(self, name_or_uuid: str, *traits: str) -> None:
        """Add ``traits`` to the provider, keeping the ones it has."""
        with self.lock:
            provider = self._find(name_or_uuid)
            provider.update_traits(provider.traits | set(traits), None)

    def remove_traits(self, name_or_uuid: str, *traits: str) -> None:
        """Remove ``traits`` from the provider; absent ones are ignored."""
        with self.lock:
            provider = self._find(name_or_uuid)
            provider.update_traits(provider.traits - set(traits), None)
