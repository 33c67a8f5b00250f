"""The scheduler: from a request spec to a host with resources claimed."""

import dataclasses
import typing as ty

from oslo_log import log as logging

from nova import exception
from nova.scheduler.client import report
from nova.scheduler import utils

if ty.TYPE_CHECKING:
    from nova import objects

LOG = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class Selection:
    """The host chosen for an instance and the allocation claimed there."""

    compute_node_uuid: str
    nodename: str
    allocation_request: dict
    resource_request: utils.ResourceRequest


class SchedulerManager:
    """Chooses hosts through placement's allocation candidates.

    Nova's filters and weighers run on the candidates placement returns;
    the firmware flow needs none of them, since the stateless firmware
    trait is already a placement constraint. The first candidate whose
    claim succeeds wins.
    """

    def __init__(self, report_client: report.SchedulerReportClient) -> None:
        self.report_client = report_client

    def select_destinations(
        self,
        request_spec: 'objects.RequestSpec',
        project_id: str = 'demo',
        user_id: str = 'demo',
    ) -> Selection:
        """Pick a host for the instance of ``request_spec`` and claim it.

        :raises nova.exception.NoValidHost: when no provider can satisfy
            the request, naming what was asked for.
        """
        resource_request = utils.ResourceRequest.from_request_spec(
            request_spec)
        try:
            alloc_reqs, _summaries, _version = (
                self.report_client.get_allocation_candidates(
                    resource_request))
        except exception.AllocationCandidatesRetrievalFailed as ex:
            # Placement answers 400 for a trait nobody ever defined (a
            # flavor's trait:CUSTOM_X=required): no host has it.
            raise exception.NoValidHost(
                reason='Placement refused the query %s: %s' % (
                    resource_request.to_querystring(),
                    ex.format_message())) from ex
        for alloc_req in alloc_reqs:
            rp_uuid = next(iter(alloc_req['allocations']))
            if self.report_client.claim_resources(
                    request_spec.instance_uuid, alloc_req, project_id,
                    user_id):
                nodename = self.report_client.get_provider_name(rp_uuid)
                LOG.info('Selected %(node)s for instance %(uuid)s '
                         '(%(query)s)', {'node': nodename,
                                         'uuid': request_spec.instance_uuid,
                                         'query': resource_request})
                return Selection(rp_uuid, nodename, alloc_req,
                                 resource_request)
        raise exception.NoValidHost(
            reason='No compute node offers %s.' %
                   resource_request.to_querystring())
