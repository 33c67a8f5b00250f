"""Tests of the placement report client against a real placement.

Placement runs embedded in the test process on a fresh in-memory database
(``PlacementFixture``), so generations, 409 conflicts and allocation
candidates are placement's own. The test acts as the virt driver (editing
the provider tree) and as an operator (writing to placement directly).
"""

import os_resource_classes as orc
import os_traits

import nova.conf
from nova import exception
from nova.scheduler.client import report
from nova import test
from nova.tests.fixtures import placement as placement_fixture

CONF = nova.conf.CONF

CN_UUID = '5a7e0c1d-1111-4a4a-8b8b-000000000001'
CN2_UUID = '5a7e0c1d-1111-4a4a-8b8b-000000000002'
CN_NAME = 'compute1'
STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
UEFI = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
# As a driver gives it: placement fills in the other fields.
INVENTORY = {
    orc.VCPU: {'total': 4, 'allocation_ratio': 4.0},
    orc.MEMORY_MB: {'total': 8192, 'reserved': 512},
    orc.DISK_GB: {'total': 100},
}


class QueryString:
    """Stands in for ``ResourceRequest``: only its query string matters."""

    def __init__(self, querystring: str) -> None:
        self._querystring = querystring

    def to_querystring(self) -> str:
        return self._querystring


def driver_update_provider_tree(tree, nodename, capabilities, inventory):
    """Do what the libvirt driver's ``update_provider_tree`` does.

    ``capabilities`` maps each trait the driver owns to whether the host
    has it; every other trait on the provider is left alone.
    """
    traits = set(tree.data(nodename).traits)
    for trait, supported in capabilities.items():
        if supported:
            traits.add(trait)
        else:
            traits.discard(trait)
    tree.update_traits(nodename, traits)
    tree.update_inventory(nodename, inventory)


class _PlacementTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture(CONF))
        self.client = self.placement.client
        self.operator = self.placement.adapter

    def placement_traits(self, rp_uuid=CN_UUID):
        resp = self.operator.get('/resource_providers/%s/traits' % rp_uuid,
                                 microversion='1.6')
        self.assertEqual(200, resp.status_code, resp.text)
        return set(resp.json()['traits'])

    def placement_inventory(self, rp_uuid=CN_UUID):
        resp = self.operator.get(
            '/resource_providers/%s/inventories' % rp_uuid,
            microversion='1.26')
        self.assertEqual(200, resp.status_code, resp.text)
        return resp.json()['inventories']

    def compute_cycle(self, capabilities, inventory=INVENTORY,
                      rp_uuid=CN_UUID, name=CN_NAME):
        """One periodic update of a compute node, as the manager runs it."""
        tree = self.client.get_provider_tree_and_ensure_root(rp_uuid, name)
        driver_update_provider_tree(tree, name, capabilities, inventory)
        self.client.update_from_provider_tree(tree)


class ProvidersTestCase(_PlacementTestCase):

    def test_root_created_once_and_visible_in_placement(self):
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual([CN_UUID], tree.get_provider_uuids())
        self.assertEqual(CN_NAME, tree.data(CN_UUID).name)
        self.assertEqual(CN_UUID,
                         self.client.get_provider_by_name(CN_NAME)['uuid'])
        self.client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        self.assertEqual({'resource_provider': 1}, self.client.write_counts)

    def test_existing_provider_found_not_created(self):
        resp = self.operator.post('/resource_providers', microversion='1.20',
                                  json={'uuid': CN_UUID, 'name': CN_NAME})
        self.assertEqual(200, resp.status_code, resp.text)
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertTrue(tree.exists(CN_NAME))
        self.assertEqual(0, self.client.write_count)

    def test_name_taken_by_other_uuid_uses_that_provider(self):
        self.operator.post('/resource_providers', microversion='1.20',
                           json={'uuid': CN2_UUID, 'name': CN_NAME})
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual(CN2_UUID, tree.data(CN_NAME).uuid)
        self.assertIn('already exists with UUID %s' % CN2_UUID,
                      self.stdlog.output)

    def test_provider_recreated_under_same_name(self):
        self.client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        resp = self.operator.delete('/resource_providers/%s' % CN_UUID,
                                    microversion='1.14')
        self.assertEqual(204, resp.status_code, resp.text)
        tree = self.client.get_provider_tree_and_ensure_root(
            CN2_UUID, CN_NAME)
        self.assertEqual([CN2_UUID], tree.get_provider_uuids())
        self.assertEqual(CN2_UUID,
                         self.client.get_provider_by_name(CN_NAME)['uuid'])

    def test_get_provider_by_name_unknown(self):
        exc = self.assertRaises(exception.ResourceProviderNotFound,
                                self.client.get_provider_by_name, 'ghost')
        self.assertIn('ghost', str(exc))

    def test_tree_is_cached_until_refreshed(self):
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual(frozenset(), tree.data(CN_UUID).traits)
        generation = placement_fixture.operator_add_traits(
            self.operator, CN_UUID, 'CUSTOM_RACK_7')
        # Within [compute] resource_provider_association_refresh the
        # client answers from its cache ...
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual(frozenset(), tree.data(CN_UUID).traits)
        # ... until the provider is invalidated (or the interval passed).
        self.client.invalidate_resource_provider(CN_UUID)
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual({'CUSTOM_RACK_7'}, tree.data(CN_UUID).traits)
        self.assertEqual(generation, tree.data(CN_UUID).generation)

    def test_provider_under_another_uuid_is_cached_too(self):
        self.operator.post('/resource_providers', microversion='1.20',
                           json={'uuid': CN2_UUID, 'name': CN_NAME})
        counting = placement_fixture.CountingAdapter(self.operator)
        client = report.SchedulerReportClient(counting)
        client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        before = counting.count('GET')
        tree = client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        self.assertEqual(before, counting.count('GET'))
        self.assertEqual([CN2_UUID], tree.get_provider_uuids())

    def test_returned_tree_is_a_copy(self):
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        tree.add_traits(CN_NAME, STATELESS)
        again = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        self.assertEqual(frozenset(), again.data(CN_NAME).traits)


class UpdateFromProviderTreeTestCase(_PlacementTestCase):

    def test_driver_traits_and_inventory_reach_placement(self):
        self.compute_cycle({STATELESS: True, UEFI: False})
        self.assertEqual({STATELESS}, self.placement_traits())
        inventory = self.placement_inventory()
        self.assertEqual(4, inventory[orc.VCPU]['total'])
        self.assertEqual(4.0, inventory[orc.VCPU]['allocation_ratio'])
        self.assertEqual(512, inventory[orc.MEMORY_MB]['reserved'])
        self.assertEqual(1, self.client.write_counts['inventory'])
        self.assertEqual(1, self.client.write_counts['traits'])

    def test_no_write_when_nothing_changed(self):
        self.compute_cycle({STATELESS: True})
        writes = self.client.write_count
        for _ in range(3):
            self.compute_cycle({STATELESS: True})
        self.assertEqual(writes, self.client.write_count)

    def test_one_trait_write_when_a_capability_flips(self):
        self.compute_cycle({STATELESS: True})
        before = dict(self.client.write_counts)
        self.compute_cycle({STATELESS: False})
        self.assertEqual(before['traits'] + 1,
                         self.client.write_counts['traits'])
        self.assertEqual(before['inventory'],
                         self.client.write_counts['inventory'])
        self.assertEqual(set(), self.placement_traits())

    def test_operator_traits_survive_driver_updates(self):
        self.compute_cycle({STATELESS: True})
        placement_fixture.operator_add_traits(
            self.operator, CN_UUID, 'CUSTOM_GOLD', os_traits.HW_CPU_X86_AVX2)
        self.compute_cycle({STATELESS: False})
        self.assertEqual({'CUSTOM_GOLD', os_traits.HW_CPU_X86_AVX2},
                         self.placement_traits())

    def test_trait_added_after_refresh_survives_via_real_conflict(self):
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        # The operator writes after the client read the provider: the
        # client's write carries a stale generation and placement says 409.
        placement_fixture.operator_add_traits(
            self.operator, CN_UUID, 'CUSTOM_LATE')
        driver_update_provider_tree(tree, CN_NAME, {STATELESS: True},
                                    INVENTORY)
        self.client.update_from_provider_tree(tree)
        self.assertEqual({'CUSTOM_LATE', STATELESS}, self.placement_traits())
        # The inventory write lost the race, then both writes went through.
        self.assertEqual(2, self.client.write_counts['inventory'])
        self.assertEqual(1, self.client.write_counts['traits'])
        self.assertIn('changed under us', self.stdlog.output)

    def test_conflicts_retried_until_the_driver_change_lands(self):
        self.compute_cycle({STATELESS: True})
        self.placement.interference.lose_next_writes(2)
        self.compute_cycle({STATELESS: False, UEFI: True})
        self.assertEqual(
            set(self.placement.interference.concurrent_traits) | {UEFI},
            self.placement_traits())
        self.assertEqual(2, len(self.placement.interference.concurrent_traits))
        # One write per try: two lost, the third landed.
        self.assertEqual(1 + 3, self.client.write_counts['traits'])

    def test_removal_applied_on_top_of_fresh_traits(self):
        self.compute_cycle({STATELESS: True, UEFI: True})
        self.placement.interference.lose_next_writes(1)
        self.compute_cycle({STATELESS: False, UEFI: True})
        self.assertEqual({UEFI, 'CUSTOM_CONCURRENT_WRITER_1'},
                         self.placement_traits())

    def test_inventory_conflict_retried(self):
        self.compute_cycle({})
        self.placement.interference.lose_next_writes(1)
        bigger = dict(INVENTORY, **{orc.VCPU: {'total': 32}})
        self.compute_cycle({}, inventory=bigger)
        self.assertEqual(32, self.placement_inventory()[orc.VCPU]['total'])
        self.assertEqual({'CUSTOM_CONCURRENT_WRITER_1'},
                         self.placement_traits())

    def test_gives_up_after_bounded_retries(self):
        self.compute_cycle({})
        attempts = report.MAX_GENERATION_ATTEMPTS
        self.placement.interference.lose_next_writes(attempts)
        exc = self.assertRaises(exception.ResourceProviderUpdateConflict,
                                self.compute_cycle, {STATELESS: True})
        self.assertIn(CN_UUID, str(exc))
        self.assertEqual(attempts, self.client.write_counts['traits'])
        self.assertNotIn(STATELESS, self.placement_traits())
        # Nothing is lost: the next periodic update gets it through.
        self.compute_cycle({STATELESS: True})
        self.assertEqual(
            set(self.placement.interference.concurrent_traits) | {STATELESS},
            self.placement_traits())

    def test_retry_bound_is_per_client(self):
        self.compute_cycle({})
        client = report.SchedulerReportClient(
            self.placement.interference, max_generation_attempts=1)
        self.placement.interference.lose_next_writes(1)
        tree = client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        tree.add_traits(CN_NAME, STATELESS)
        self.assertRaises(exception.ResourceProviderUpdateConflict,
                          client.update_from_provider_tree, tree)
        self.assertEqual(1, client.write_counts['traits'])

    def test_stale_tree_does_not_undo_newer_traits(self):
        # Two trees handed out at different generations: the older one's
        # change is applied as a change, not as a full trait set.
        old_tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        placement_fixture.operator_add_traits(
            self.operator, CN_UUID, 'CUSTOM_NEWER')
        self.client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)
        old_tree.add_traits(CN_NAME, STATELESS)
        self.client.update_from_provider_tree(old_tree)
        self.assertEqual({'CUSTOM_NEWER', STATELESS}, self.placement_traits())

    def test_tree_built_by_hand_creates_provider(self):
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        tree.new_root('compute2', CN2_UUID)
        tree.update_traits('compute2', ['CUSTOM_NEW_HOST'])
        self.client.update_from_provider_tree(tree)
        self.assertEqual({'CUSTOM_NEW_HOST'}, self.placement_traits(CN2_UUID))


class DirectCallsTestCase(_PlacementTestCase):

    def setUp(self):
        super().setUp()
        self.client.get_provider_tree_and_ensure_root(CN_UUID, CN_NAME)

    def test_set_and_get_traits(self):
        self.client.set_traits_for_provider(CN_UUID, [STATELESS, 'CUSTOM_A'])
        info = self.client.get_provider_traits(CN_UUID)
        self.assertEqual({STATELESS, 'CUSTOM_A'}, info.traits)
        # The custom trait had to be created first.
        self.assertEqual(1, self.client.write_counts['trait'])

    def test_set_traits_with_stale_generation_conflicts(self):
        self.client.set_traits_for_provider(CN_UUID, [STATELESS])
        exc = self.assertRaises(exception.ResourceProviderUpdateConflict,
                                self.client.set_traits_for_provider,
                                CN_UUID, [UEFI], generation=0)
        self.assertEqual(409, exc.kwargs['code'])
        self.assertEqual({STATELESS}, self.placement_traits())

    def test_unknown_standard_trait_refused(self):
        exc = self.assertRaises(exception.TraitCreationFailed,
                                self.client.set_traits_for_provider,
                                CN_UUID, ['COMPUTE_NO_SUCH_TRAIT'])
        self.assertIn('COMPUTE_NO_SUCH_TRAIT', str(exc))

    def test_set_inventory(self):
        self.client.set_inventory_for_provider(CN_UUID, INVENTORY)
        self.assertEqual(8192,
                         self.placement_inventory()[orc.MEMORY_MB]['total'])

    def test_inventory_in_use_is_not_a_conflict(self):
        self.client.set_inventory_for_provider(CN_UUID, INVENTORY)
        resp = self.operator.put(
            '/allocations/%s' % '9f0e0000-2222-4b4b-8c8c-000000000009',
            microversion='1.28',
            json={'allocations': {CN_UUID: {'resources': {orc.VCPU: 2}}},
                  'project_id': 'p', 'user_id': 'u',
                  'consumer_generation': None})
        self.assertEqual(204, resp.status_code, resp.text)
        # The allocation moved the provider's generation on: the write
        # from the cached one conflicts, the provider is re-read, and the
        # write again is refused for the inventory in use, not retried.
        without_cpus = {orc.MEMORY_MB: INVENTORY[orc.MEMORY_MB]}
        exc = self.assertRaises(exception.ResourceProviderUpdateFailed,
                                self.compute_cycle, {}, without_cpus)
        self.assertIn('inventories', str(exc))
        self.assertIn(orc.VCPU, self.placement_inventory())

    def test_unknown_provider(self):
        self.assertRaises(exception.ResourceProviderNotFound,
                          self.client.set_traits_for_provider,
                          CN2_UUID, [STATELESS])


class UnreachablePlacementTestCase(_PlacementTestCase):

    def test_refresh_fails_cleanly(self):
        self.placement.interference.cut()
        exc = self.assertRaises(
            exception.PlacementAPIConnectFailure,
            self.client.get_provider_tree_and_ensure_root, CN_UUID, CN_NAME)
        self.assertIn('Unable to communicate with the Placement API',
                      str(exc))

    def test_update_fails_and_next_update_succeeds(self):
        self.compute_cycle({STATELESS: False})
        tree = self.client.get_provider_tree_and_ensure_root(
            CN_UUID, CN_NAME)
        driver_update_provider_tree(tree, CN_NAME, {STATELESS: True},
                                    INVENTORY)
        self.placement.interference.cut()
        self.assertRaises(exception.PlacementAPIConnectFailure,
                          self.client.update_from_provider_tree, tree)
        self.placement.interference.restore()
        self.client.update_from_provider_tree(tree)
        self.assertEqual({STATELESS}, self.placement_traits())


class HTTPPlacementTestCase(test.NoDBTestCase):
    """``[placement] embedded = False``: keystoneauth over real TCP."""

    def test_unreachable_deployment(self):
        sock, url = placement_fixture.refused_endpoint()
        self.addCleanup(sock.close)
        self.flags(embedded=False, auth_type='none', endpoint_override=url,
                   group='placement')
        with report.placement_client(CONF) as adapter:
            self.assertFalse(adapter.raise_exc)
            self.assertEqual(url, adapter.endpoint_override)
            client = report.SchedulerReportClient(adapter)
            self.assertRaises(exception.PlacementAPIConnectFailure,
                              client.get_provider_tree_and_ensure_root,
                              CN_UUID, CN_NAME)
            self.assertRaises(exception.PlacementAPIConnectFailure,
                              client.get_allocation_candidates,
                              QueryString('resources=VCPU:1'))

    def test_no_endpoint_configured(self):
        self.flags(embedded=False, group='placement')
        with report.placement_client(CONF) as adapter:
            client = report.SchedulerReportClient(adapter)
            self.assertRaises(exception.PlacementAPIConnectFailure,
                              client.get_provider_by_name, CN_NAME)


class AllocationCandidatesTestCase(_PlacementTestCase):

    def setUp(self):
        super().setUp()
        self.compute_cycle({STATELESS: True})
        self.compute_cycle({STATELESS: False}, rp_uuid=CN2_UUID,
                           name='compute2')
        self.resources = 'resources=VCPU:1,MEMORY_MB:512,DISK_GB:10'

    def candidates(self, querystring):
        requests, summaries, version = self.client.get_allocation_candidates(
            QueryString(querystring))
        self.assertEqual(report.ALLOCATION_CANDIDATES_VERSION, version)
        hosts = {rp for request in requests
                 for rp in request['allocations']}
        self.assertEqual(set(summaries), hosts)
        return hosts

    def test_required_trait_selects_only_capable_hosts(self):
        self.assertEqual({CN_UUID}, self.candidates(
            '%s&required=%s' % (self.resources, STATELESS)))

    def test_forbidden_trait_excludes_capable_hosts(self):
        self.assertEqual({CN2_UUID}, self.candidates(
            '%s&required=!%s' % (self.resources, STATELESS)))

    def test_without_trait_both_hosts(self):
        self.assertEqual({CN_UUID, CN2_UUID}, self.candidates(self.resources))

    def test_capability_lost_removes_host(self):
        self.compute_cycle({STATELESS: False})
        self.assertEqual(set(), self.candidates(
            '%s&required=%s' % (self.resources, STATELESS)))

    def test_too_big_request_has_no_candidates(self):
        self.assertEqual(set(), self.candidates('resources=VCPU:17'))

    def test_bad_query_raises(self):
        exc = self.assertRaises(exception.AllocationCandidatesRetrievalFailed,
                                self.client.get_allocation_candidates,
                                QueryString('resources=VCPU:many'))
        self.assertIn('Got: many', str(exc))
