"""The placement report client against a server that is not placement.

A wrong endpoint, or a proxy in front of placement answering with its own
page, used to surface as ``JSONDecodeError`` or ``TypeError`` from deep in
the client. The client says instead which request got what.
"""

from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import session as ks_session

from nova import exception
from nova.scheduler.client import report
from nova import test
from nova.tests.fixtures import servers

UUID = '8f1c9e3a-7a7b-4c61-9b55-7d3a1c0e2f10'


class NotPlacementTestCase(test.NoDBTestCase):

    def client(self, body: str) -> report.SchedulerReportClient:
        server = self.useFixture(servers.StaticHTTPServerFixture(
            {'*': (200, body)}))
        return report.SchedulerReportClient(ks_adapter.Adapter(
            ks_session.Session(), endpoint_override=server.url,
            service_type='placement', raise_exc=False))

    def test_answers_that_are_not_json_objects(self):
        for body in ('<html>502 Bad Gateway</html>', '[]', '"text"'):
            client = self.client(body)

            ex = self.assertRaises(exception.PlacementAPIConnectFailure,
                                   client.get_provider_traits, UUID)

            self.assertEqual(
                'Unable to communicate with the Placement API: GET '
                '/resource_providers/%s/traits answered 200 with a body '
                'that is not a JSON object: %r' % (UUID, body),
                ex.format_message())
