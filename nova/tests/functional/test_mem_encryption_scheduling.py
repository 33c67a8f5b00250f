"""Memory encryption models scheduled through real placement.

A host that can encrypt guest memory has ``MEM_ENCRYPTION_CONTEXT``
inventory, but a free context does not say which models its CPU and
firmware run: an AMD SEV host cannot run an SEV-SNP guest, an AMD host no
Intel TDX guest. Each model therefore also requires its CPU trait, as in
Nova. This machine has neither AMD SEV nor Intel TDX, so the hosts here are
resource providers registered in placement as a compute service of such a
host would register them; placement, the query and the scheduler are real.
"""

import os_resource_classes as orc
import os_traits

from nova.compute import api as compute_api
from nova import exception
from nova.scheduler.client import report
from nova.scheduler import manager as scheduler_manager
from nova.scheduler import utils as scheduler_utils
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import placement as placement_fixture

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE

#: host name -> the memory encryption CPU traits it reports. Every host
#: can boot stateless firmware and has encryption contexts free.
HOSTS = {
    'sev-host': {os_traits.HW_CPU_X86_AMD_SEV},
    'sev-es-host': {os_traits.HW_CPU_X86_AMD_SEV,
                    os_traits.HW_CPU_X86_AMD_SEV_ES},
    'snp-host': {os_traits.HW_CPU_X86_AMD_SEV,
                 os_traits.HW_CPU_X86_AMD_SEV_ES,
                 os_traits.HW_CPU_X86_AMD_SEV_SNP},
    'tdx-host': {os_traits.HW_CPU_X86_INTEL_TDX},
}


def encrypted_image(model: str | None) -> dict:
    return compute_fixture.make_image(
        hw_firmware_type='uefi', hw_firmware_stateless='true',
        hw_machine_type='q35', hw_mem_encryption='true',
        hw_mem_encryption_model=model)


class MemEncryptionSchedulingTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())
        self.operator = self.placement.adapter
        self.scheduler = scheduler_manager.SchedulerManager(
            report.SchedulerReportClient(self.operator))
        self.api = compute_api.API()
        self._instance_ids = iter(range(1, 1000))
        self.hosts_by_rp = {}
        for name, traits in HOSTS.items():
            self.hosts_by_rp[self.register_host(name, traits | {STATELESS})
                             ] = name

    def register_host(self, name: str, traits: set) -> str:
        resp = self.operator.post('/resource_providers', microversion='1.20',
                                  json={'name': name})
        self.assertEqual(200, resp.status_code, resp.text)
        rp = resp.json()
        resp = self.operator.put(
            '/resource_providers/%s/inventories' % rp['uuid'],
            microversion='1.26', json={
                'resource_provider_generation': rp['generation'],
                'inventories': {
                    orc.VCPU: {'total': 8},
                    orc.MEMORY_MB: {'total': 16384},
                    orc.DISK_GB: {'total': 100},
                    orc.MEM_ENCRYPTION_CONTEXT: {'total': 15},
                }})
        self.assertEqual(200, resp.status_code, resp.text)
        placement_fixture.operator_add_traits(self.operator, rp['uuid'],
                                              *traits)
        return rp['uuid']

    def candidate_hosts(self, image: dict) -> set:
        """The hosts placement offers for a server of ``image``."""
        _instance, spec = self.api.create(
            compute_fixture.make_flavor(), image,
            instance_id=next(self._instance_ids))
        request = scheduler_utils.ResourceRequest.from_request_spec(spec)
        alloc_reqs, _summaries, _version = (
            self.scheduler.report_client.get_allocation_candidates(request))
        return {self.hosts_by_rp[rp]
                for alloc_req in alloc_reqs
                for rp in alloc_req['allocations']}

    def test_each_model_only_on_hosts_whose_cpu_runs_it(self):
        expected = {
            # No model: AMD SEV, as in Nova.
            None: {'sev-host', 'sev-es-host', 'snp-host'},
            'amd-sev': {'sev-host', 'sev-es-host', 'snp-host'},
            'amd-sev-es': {'sev-es-host', 'snp-host'},
            'amd-sev-snp': {'snp-host'},
            'intel-tdx': {'tdx-host'},
        }
        for model, hosts in expected.items():
            self.assertEqual(hosts,
                             self.candidate_hosts(encrypted_image(model)),
                             model)

    def test_snp_never_lands_on_a_host_without_the_snp_trait(self):
        # The SEV-SNP host is gone: plain SEV hosts with free contexts and
        # stateless firmware remain, and must not be chosen.
        resp = self.operator.delete(
            '/resource_providers/%s' % next(
                rp for rp, name in self.hosts_by_rp.items()
                if name == 'snp-host'), microversion='1.20')
        self.assertEqual(204, resp.status_code, resp.text)
        instance, spec = self.api.create(
            compute_fixture.make_flavor(), encrypted_image('amd-sev-snp'))
        ex = self.assertRaises(exception.NoValidHost,
                               self.scheduler.select_destinations, spec)
        self.assertIn(os_traits.HW_CPU_X86_AMD_SEV_SNP, str(ex))
        self.assertEqual({}, self.scheduler.report_client
                         .get_allocations_for_consumer(instance.uuid))
