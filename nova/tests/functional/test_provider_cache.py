"""Placement reads of the compute service's periodic sync.

Every compute updates its resource provider once a periodic interval (60 s
by default in Nova). Reading the provider, its inventory and its traits on
each of them would make placement answer three GETs per compute per
interval, 500 a second at 10,000 computes. As Nova's report client does,
the compute works from a cache and reads again only every
``[compute] resource_provider_association_refresh`` seconds, or at once
when a write finds the cache stale (409) or fails.

Placement is real; the requests the compute sends it are counted on their
way. The driver is ``LibvirtDriver`` on fakelibvirt, so that it can be
swapped for one posing as another libvirt version between syncs without
restarting the compute (and so without a new, empty cache).
"""

import time

import os_traits
from testtools import content

from nova.compute import manager as compute_manager
from nova import exception
from nova.scheduler.client import report
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.fixtures import placement as placement_fixture
from nova.virt.libvirt import driver as libvirt_driver

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
HOST = 'compute-cache'
OLD_LIBVIRT, NEW_LIBVIRT = (8, 5, 0), (8, 6, 0)
OPERATOR_TRAIT = 'CUSTOM_CACHE_RACK'
#: The reads of a refresh of the compute node provider after a conflict.
CONFLICT_REFRESH = {
    ('GET', '/resource_providers/{uuid}/inventories'): 1,
    ('GET', '/resource_providers/{uuid}/traits'): 1,
}
#: ... and of a refresh when the cache has aged or is not trusted.
REFRESH = {**CONFLICT_REFRESH, ('GET', '/resource_providers/{uuid}'): 1}
SYNCS = 10
#: A refresh interval a few syncs take well under, even on a loaded
#: machine, and the seconds to wait for it to pass.
REFRESH_INTERVAL = 3
PAST_INTERVAL = REFRESH_INTERVAL + 0.2


class ProviderCacheTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.useFixture(compute_fixture.ComputeStateFixture())
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.operator = self.placement.adapter
        self.counting = placement_fixture.CountingAdapter(
            self.placement.interference)
        self.compute = compute_manager.ComputeManager(
            None, report.SchedulerReportClient(self.counting), host=HOST)
        self.rp_uuid = compute_manager.compute_node_uuid(HOST)

    def start_driver(self, lv_ver: tuple) -> None:
        """Start a driver on libvirt ``lv_ver`` under the same compute."""
        self.useFixture(fakelibvirt.FakeLibvirtFixture(
            lv_ver=lv_ver, hostname=HOST))
        self.compute.driver = libvirt_driver.LibvirtDriver()
        self.compute.driver.init_host(HOST)

    def sync(self) -> dict:
        """One periodic sync; return the requests it sent placement."""
        before = self.counting.counts.copy()
        self.compute.update_available_resource()
        return dict(self.counting.counts - before)

    def traits(self) -> set:
        resp = self.operator.get(
            '/resource_providers/%s/traits' % self.rp_uuid,
            microversion='1.6')
        return set(resp.json()['traits'])

    def test_unchanged_syncs_read_nothing(self):
        self.start_driver(NEW_LIBVIRT)
        first = self.sync()
        self.assertEqual(1, first[('POST', '/resource_providers')])
        gets = []
        for _ in range(SYNCS):
            gets.append(sum(n for (method, _), n in self.sync().items()
                            if method == 'GET'))
        self.addDetail('gets_per_sync', content.text_content(
            'first sync: %s; then %s' % (sorted(first.items()), gets)))
        self.assertEqual([0] * SYNCS, gets)
        self.assertEqual({}, self.sync())
        self.assertIn(STATELESS, self.traits())

    def test_refresh_after_the_interval(self):
        self.flags(resource_provider_association_refresh=REFRESH_INTERVAL,
                   group='compute')
        self.start_driver(NEW_LIBVIRT)
        self.sync()
        self.assertEqual({}, self.sync())
        # Someone else changes the provider: the compute does not see it
        # before the interval has passed, and then sees it.
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid, OPERATOR_TRAIT)
        self.assertNotIn(OPERATOR_TRAIT, self.compute.report_client
                         .get_provider_tree_and_ensure_root(
                             self.rp_uuid, HOST).data(self.rp_uuid).traits)
        time.sleep(PAST_INTERVAL)
        self.assertEqual(REFRESH, self.sync())
        self.assertIn(OPERATOR_TRAIT, self.compute.report_client
                      .get_provider_tree_and_ensure_root(
                          self.rp_uuid, HOST).data(self.rp_uuid).traits)
        self.assertEqual({}, self.sync())

    def test_zero_disables_the_refresh(self):
        self.flags(resource_provider_association_refresh=0, group='compute')
        self.start_driver(NEW_LIBVIRT)
        self.sync()
        time.sleep(PAST_INTERVAL)
        self.assertEqual({}, self.sync())

    def test_conflict_refreshes_and_keeps_others_traits(self):
        self.start_driver(OLD_LIBVIRT)
        self.sync()
        self.assertNotIn(STATELESS, self.traits())
        # An operator tags the host; the compute's cache is now stale, and
        # its driver starts reporting stateless firmware.
        placement_fixture.operator_add_traits(
            self.operator, self.rp_uuid, OPERATOR_TRAIT)
        self.start_driver(NEW_LIBVIRT)

        requests = self.sync()
        # The write from the stale cache is refused, the provider re-read
        # and the driver's one change applied on top of the fresh traits
        # (the trait it adds is looked up once, as it is new to it).
        self.assertEqual({**CONFLICT_REFRESH, ('GET', '/traits'): 1,
                          ('PUT', '/resource_providers/{uuid}/traits'): 2},
                         requests)
        self.assertEqual({STATELESS, OPERATOR_TRAIT},
                         self.traits() & {STATELESS, OPERATOR_TRAIT})
        self.assertEqual({}, self.sync())

    def test_failed_update_reads_again_at_the_next_sync(self):
        self.start_driver(OLD_LIBVIRT)
        self.sync()
        # Placement goes away while the driver has a change to write.
        self.start_driver(NEW_LIBVIRT)
        self.placement.interference.cut()
        self.assertRaises(exception.PlacementAPIConnectFailure, self.sync)
        self.placement.interference.restore()
        # The cache is not trusted after a failed update: read it again.
        requests = self.sync()
        self.assertEqual({**REFRESH, ('GET', '/traits'): 1,
                          ('PUT', '/resource_providers/{uuid}/traits'): 1},
                         requests)
        self.assertIn(STATELESS, self.traits())
        self.assertEqual({}, self.sync())
