"""A compute's trait sync when placement misbehaves.

A compute service (``ComputeManager`` with ``LibvirtDriver`` on
fakelibvirt) syncs its node provider with real placement, embedded, while
``PlacementFixture.interference`` makes things go wrong for real: another
writer's trait lands on the provider just before the compute's write, so
placement refuses the stale generation with a 409; or placement stops
answering (a port that refuses connections).

What must hold: conflicts are retried a bounded number of times, nobody
else's trait is ever lost, an unreachable placement is reported as such
and changes nothing, and the next sync after the fault converges, with no
write at all when nothing changed.
"""

import os_resource_classes as orc
import os_traits

from nova.compute import manager as compute_manager
from nova import exception
from nova.scheduler.client import report
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
OPERATOR_TRAIT = 'CUSTOM_OPERATOR_RACK_7'
HOST = 'compute-faults'
NEW_LIBVIRT, OLD_LIBVIRT = (8, 6, 0), (8, 5, 0)


class PlacementFaultsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.interference = self.placement.interference
        self.operator = self.placement.adapter
        self.rp_uuid = compute_manager.compute_node_uuid(HOST)

    def start_compute(self, lv_ver=NEW_LIBVIRT, init=True
                      ) -> compute_manager.ComputeManager:
        """Start (or restart) the compute on a libvirt of ``lv_ver``.

        Its report client goes through the interference, like the
        fixture's own client; a restarted service has a fresh one.
        """
        self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=lv_ver, hostname=HOST))
        compute = compute_manager.ComputeManager(
            libvirt_driver.LibvirtDriver(),
            report.SchedulerReportClient(self.interference), host=HOST)
        if init:
            compute.init_host()
        else:
            compute.driver.init_host(HOST)
        return compute

    def provider(self) -> tuple[set, dict, int]:
        """Traits, inventory totals and generation, as placement has them."""
        url = '/resource_providers/%s' % self.rp_uuid
        traits = self.operator.get(url + '/traits', microversion='1.6')
        inventory = self.operator.get(url + '/inventories',
                                      microversion='1.26')
        self.assertEqual(200, traits.status_code, traits.text)
        self.assertEqual(200, inventory.status_code, inventory.text)
        body = inventory.json()
        return (set(traits.json()['traits']),
                {rc: inv['total'] for rc, inv in body['inventories'].items()},
                body['resource_provider_generation'])

    def add_operator_trait(self) -> None:
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid, OPERATOR_TRAIT)

    def assert_no_writes_on_next_sync(self, compute) -> None:
        writes = dict(compute.report_client.write_counts)
        before = self.provider()
        compute.update_available_resource()
        self.assertEqual(writes, dict(compute.report_client.write_counts))
        self.assertEqual(before, self.provider())

    # --- generation conflicts

    def test_conflicts_on_first_sync_are_retried(self):
        # The very first sync creates the provider and writes inventory and
        # traits; each of the first two provider writes loses a race.
        self.interference.lose_next_writes(2)

        compute = self.start_compute()

        traits, inventory, _gen = self.provider()
        self.assertIn(STATELESS, traits)
        self.assertEqual(
            {'%s1' % placement_fixture.CONCURRENT_TRAIT_PREFIX,
             '%s2' % placement_fixture.CONCURRENT_TRAIT_PREFIX},
            {t for t in traits if t.startswith(
                placement_fixture.CONCURRENT_TRAIT_PREFIX)})
        self.assertEqual({orc.VCPU, orc.MEMORY_MB, orc.DISK_GB},
                         set(inventory))
        # The inventory write was refused twice and retried each time after
        # re-reading the provider; then inventory and traits went through.
        self.assertEqual({'resource_provider': 1, 'inventory': 3,
                          'traits': 1},
                         dict(compute.report_client.write_counts))
        self.assert_no_writes_on_next_sync(compute)

    def test_conflicts_during_downgrade_keep_everyone_elses_traits(self):
        self.start_compute(NEW_LIBVIRT)
        self.add_operator_trait()
        self.interference.lose_next_writes(2)

        compute = self.start_compute(OLD_LIBVIRT)

        traits, _inv, _gen = self.provider()
        self.assertNotIn(STATELESS, traits)
        self.assertIn(OPERATOR_TRAIT, traits)
        self.assertLessEqual(set(self.interference.concurrent_traits),
                             traits)
        self.assertEqual(2, len(self.interference.concurrent_traits))
        # Only traits changed: two writes refused, one accepted, and the
        # inventory (the same host) was never written.
        self.assertEqual({'traits': 3},
                         dict(compute.report_client.write_counts))
        self.assert_no_writes_on_next_sync(compute)

    def test_endless_conflicts_give_up_after_bounded_attempts(self):
        self.start_compute(NEW_LIBVIRT)
        self.add_operator_trait()
        before_traits, before_inventory, _gen = self.provider()
        self.interference.lose_next_writes(100)

        compute = self.start_compute(OLD_LIBVIRT, init=False)
        self.assertRaises(exception.ResourceProviderUpdateConflict,
                          compute.update_available_resource)

        attempts = compute.report_client.max_generation_attempts
        self.assertEqual({'traits': attempts},
                         dict(compute.report_client.write_counts))
        self.assertEqual(attempts, len(self.interference.concurrent_traits))
        traits, inventory, _gen = self.provider()
        # Nothing of the compute's change got through, and nothing was lost.
        self.assertEqual(
            before_traits | set(self.interference.concurrent_traits), traits)
        self.assertEqual(before_inventory, inventory)
        self.assertIn('Giving up updating resource provider',
                      self.stdlog.output)

        # Once the other writer stops, the next periodic sync converges.
        self.interference.lose_next_writes(0)
        compute.update_available_resource()
        traits, _inv, _gen = self.provider()
        self.assertNotIn(STATELESS, traits)
        self.assertIn(OPERATOR_TRAIT, traits)
        self.assertLessEqual(set(self.interference.concurrent_traits),
                             traits)
        self.assert_no_writes_on_next_sync(compute)

    # --- placement unreachable

    def test_unreachable_placement_changes_nothing(self):
        compute = self.start_compute()
        self.add_operator_trait()
        compute.update_available_resource()
        before = self.provider()
        writes = dict(compute.report_client.write_counts)

        self.interference.cut()
        # Nothing changed and the cached provider is fresh: no request.
        compute.update_available_resource()
        # Once the provider has to be read again, the sync fails cleanly.
        compute.report_client.invalidate_resource_provider(
            compute.node_uuid)
        ex = self.assertRaises(exception.PlacementAPIConnectFailure,
                               compute.update_available_resource)
        self.assertIn('Unable to communicate with the Placement API',
                      ex.format_message())
        self.interference.restore()

        self.assertEqual(before, self.provider())
        self.assertIn(OPERATOR_TRAIT, before[0])
        # Back again: nothing changed, so the next sync writes nothing.
        compute.update_available_resource()
        self.assertEqual(writes, dict(compute.report_client.write_counts))
        self.assertEqual(before, self.provider())

    def test_change_made_while_unreachable_lands_on_next_sync(self):
        self.start_compute(NEW_LIBVIRT)
        self.add_operator_trait()
        before_traits, before_inventory, _gen = self.provider()

        # The compute restarts on an older libvirt while placement is down.
        self.interference.cut()
        compute = self.start_compute(OLD_LIBVIRT, init=False)
        self.assertRaises(exception.PlacementAPIConnectFailure,
                          compute.update_available_resource)
        self.assertEqual({}, dict(compute.report_client.write_counts))
        self.assertEqual((before_traits, before_inventory),
                         self.provider()[:2])

        self.interference.restore()
        compute.update_available_resource()

        self.assertEqual(before_traits - {STATELESS}, self.provider()[0])
        self.assertEqual({'traits': 1},
                         dict(compute.report_client.write_counts))
        self.assert_no_writes_on_next_sync(compute)
