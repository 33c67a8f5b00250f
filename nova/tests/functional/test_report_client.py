"""Functional tests of embedded placement and the report client.

These run the real openstack-placement in the test process: its start and
stop, its database, and the whole compute -> placement -> scheduler loop of
the stateless firmware trait.
"""

import threading
import time

import fixtures
from keystoneauth1 import session as ks_session
import os_resource_classes as orc
import os_traits
from testtools import content

import nova.conf
from nova import exception
from nova.scheduler.client import embedded
from nova.scheduler.client import report
from nova import test

CONF = nova.conf.CONF

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
INVENTORY = {
    orc.VCPU: {'total': 8},
    orc.MEMORY_MB: {'total': 16384},
    orc.DISK_GB: {'total': 200},
}
_ORIGINAL_GET_ENDPOINT = ks_session.Session.get_endpoint


def create_provider(adapter, name: str) -> dict:
    resp = adapter.post('/resource_providers', microversion='1.20',
                        json={'name': name})
    if resp.status_code != 200:
        raise AssertionError(resp.text)
    return resp.json()


def provider_names(adapter) -> set:
    resp = adapter.get('/resource_providers', microversion='1.14')
    return {rp['name'] for rp in resp.json()['resource_providers']}


class EmbeddedPlacementTestCase(test.NoDBTestCase):

    def test_each_start_gets_a_fresh_database(self):
        timings = []
        for name in ('first', 'second'):
            start = time.monotonic()
            with embedded.EmbeddedPlacement(CONF) as adapter:
                timings.append(time.monotonic() - start)
                self.assertEqual(set(), provider_names(adapter))
                create_provider(adapter, name)
                self.assertEqual({name}, provider_names(adapter))
        self.addDetail('startup_seconds', content.text_content(
            ', '.join('%.3f' % t for t in timings)))

    def test_standard_traits_present_after_restart(self):
        # Placement syncs os-traits into a database once per process; a
        # second database must get them too.
        for _ in range(2):
            with embedded.EmbeddedPlacement(CONF) as adapter:
                resp = adapter.get('/traits?name=in:%s' % STATELESS,
                                   microversion='1.6')
                self.assertEqual([STATELESS], resp.json()['traits'])

    def test_second_instance_refused_while_running(self):
        with embedded.EmbeddedPlacement(CONF) as adapter:
            create_provider(adapter, 'kept')
            self.assertRaises(exception.EmbeddedPlacementAlreadyRunning,
                              embedded.EmbeddedPlacement(CONF).start)
            self.assertEqual({'kept'}, provider_names(adapter))

    def test_stop_restores_keystoneauth(self):
        with embedded.EmbeddedPlacement(CONF):
            self.assertIsNot(_ORIGINAL_GET_ENDPOINT,
                             ks_session.Session.get_endpoint)
        self.assertIs(_ORIGINAL_GET_ENDPOINT, ks_session.Session.get_endpoint)

    def test_failed_start_leaves_nothing_behind(self):
        self.flags(embedded_connection='nosuchdialect://', group='placement')
        placement = embedded.EmbeddedPlacement(CONF)
        exc = self.assertRaises(exception.EmbeddedPlacementStartFailed,
                                placement.start)
        self.assertIn('nosuchdialect', str(exc))
        self.assertIs(_ORIGINAL_GET_ENDPOINT, ks_session.Session.get_endpoint)
        self.flags(embedded_connection='sqlite://', group='placement')
        with embedded.EmbeddedPlacement(CONF) as adapter:
            create_provider(adapter, 'after-failure')

    def test_in_memory_data_shared_by_threads(self):
        # One in-memory database lives in one connection: every request,
        # from whatever thread, must see the same data, and concurrent
        # writers must not trip over each other.
        errors = []

        def create_many(prefix):
            try:
                for i in range(10):
                    create_provider(adapter, '%s-%d' % (prefix, i))
            except Exception as e:
                errors.append(e)

        with embedded.EmbeddedPlacement(CONF) as adapter:
            threads = [threading.Thread(target=create_many, args=(p,))
                       for p in ('a', 'b', 'c', 'd')]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            self.assertEqual([], errors)
            self.assertEqual(40, len(provider_names(adapter)))

    def test_file_database_survives_restart(self):
        path = self.useFixture(fixtures.TempDir()).join('placement.sqlite')
        self.flags(embedded_connection='sqlite:///%s' % path,
                   group='placement')
        with embedded.EmbeddedPlacement(CONF) as adapter:
            client = report.SchedulerReportClient(adapter)
            rp = create_provider(adapter, 'durable')
            client.set_traits_for_provider(rp['uuid'], ['CUSTOM_DURABLE'])
        with embedded.EmbeddedPlacement(CONF) as adapter:
            client = report.SchedulerReportClient(adapter)
            self.assertEqual({'CUSTOM_DURABLE'},
                             client.get_provider_traits(rp['uuid']).traits)


class FakeStatelessDriver:
    """A virt driver reduced to what ``update_provider_tree`` does."""

    def __init__(self, supports_stateless: bool) -> None:
        self.supports_stateless = supports_stateless

    def update_provider_tree(self, provider_tree, nodename):
        traits = set(provider_tree.data(nodename).traits)
        if self.supports_stateless:
            traits.add(STATELESS)
        else:
            traits.discard(STATELESS)
        provider_tree.update_traits(nodename, traits)
        provider_tree.update_inventory(nodename, INVENTORY)


class ResourceRequest:
    """Stands in for ``nova.scheduler.utils.ResourceRequest``."""

    def __init__(self, stateless: bool) -> None:
        self.stateless = stateless

    def to_querystring(self) -> str:
        query = 'resources=VCPU:2,MEMORY_MB:2048,DISK_GB:20'
        if self.stateless:
            query += '&required=%s' % STATELESS
        return query


class StatelessTraitFlowTestCase(test.NoDBTestCase):
    """Compute hosts report the trait; the scheduler finds them by it."""

    HOSTS = {
        'host-new': '0d5e3c1a-7777-4c4c-9d9d-000000000001',
        'host-old': '0d5e3c1a-7777-4c4c-9d9d-000000000002',
    }

    def setUp(self):
        super().setUp()
        self.flags(embedded=True, group='placement')
        ctx = report.placement_client(CONF)
        self.adapter = ctx.__enter__()
        self.addCleanup(ctx.__exit__, None, None, None)
        self.compute_client = report.SchedulerReportClient(self.adapter)
        self.scheduler_client = report.SchedulerReportClient(self.adapter)
        self.drivers = {'host-new': FakeStatelessDriver(True),
                        'host-old': FakeStatelessDriver(False)}

    def periodic_update(self):
        for name, uuid in self.HOSTS.items():
            tree = self.compute_client.get_provider_tree_and_ensure_root(
                uuid, name)
            self.drivers[name].update_provider_tree(tree, name)
            self.compute_client.update_from_provider_tree(tree)

    def hosts_for(self, stateless: bool) -> set:
        _requests, summaries, _version = (
            self.scheduler_client.get_allocation_candidates(
                ResourceRequest(stateless)))
        names = {uuid: name for name, uuid in self.HOSTS.items()}
        return {names[uuid] for uuid in summaries}

    def test_embedded_placement_starts_empty(self):
        self.assertEqual(set(), self.hosts_for(stateless=False))

    def test_scheduler_follows_host_capability(self):
        self.periodic_update()
        self.assertEqual({'host-new'}, self.hosts_for(stateless=True))
        self.assertEqual({'host-new', 'host-old'},
                         self.hosts_for(stateless=False))

        writes = self.compute_client.write_count
        self.periodic_update()
        self.assertEqual(writes, self.compute_client.write_count)

        # The old host gets a newer libvirt; an operator tags it meanwhile.
        uuid = self.HOSTS['host-old']
        self.scheduler_client.set_traits_for_provider(
            uuid, ['CUSTOM_RACK_B'])
        self.drivers['host-old'].supports_stateless = True
        self.periodic_update()
        self.assertEqual({'host-new', 'host-old'},
                         self.hosts_for(stateless=True))
        self.assertEqual({'CUSTOM_RACK_B', STATELESS},
                         self.scheduler_client.get_provider_traits(
                             uuid).traits)
        # The operator's write made the compute's cached generation stale:
        # its first write is refused (409), the second lands.
        self.assertEqual(writes + 2, self.compute_client.write_count)
