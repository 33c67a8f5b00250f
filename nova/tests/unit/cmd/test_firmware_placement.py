"""Tests of how ``nova-firmware`` reaches placement and checks it is one.

Against the real placement, embedded; the functional tests serve it, and
servers that are not placement, over HTTP.
"""

import fixtures

from nova.cmd import firmware
from nova.cmd import firmware_placement as fp
from nova.compute import manager as compute_manager
import nova.conf
from nova import exception
from nova import test
from nova.tests.fixtures import placement as placement_fixture

CONF = nova.conf.CONF


class PlacementConfigTestCase(test.NoDBTestCase):

    def configure(self, *argv):
        firmware.configure(firmware.build_parser().parse_args(
            ['--state-dir', self.useFixture(fixtures.TempDir()).path] +
            list(argv) + ['boot']))

    def test_services_do_not_embed_placement(self):
        self.assertFalse(CONF.placement.embedded)

    def test_the_tool_embeds_placement_by_default(self):
        self.configure()
        fp.configure_placement(None)
        self.assertTrue(CONF.placement.embedded)
        self.assertEqual('embedded (sqlite://)', fp.placement_description())

    def test_configuration_file_wins_over_the_tools_default(self):
        conf = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(conf, 'w') as f:
            f.write('[placement]\nembedded = False\n')
        self.configure('--config-file', conf)
        self.assertFalse(CONF.placement.embedded)

    def test_database_password_is_not_shown(self):
        self.flags(embedded=True,
                   embedded_connection='mysql+pymysql://nova:s3cret@db/pl',
                   group='placement')
        self.assertEqual('embedded (mysql+pymysql://nova:***@db/pl)',
                         fp.placement_description())

    def test_url_without_credentials(self):
        fp.configure_placement('http://127.0.0.1:8778')
        conf = CONF.placement
        self.assertFalse(conf.embedded)
        self.assertEqual('http://127.0.0.1:8778', conf.endpoint_override)
        self.assertEqual('none', conf.auth_type)
        self.assertEqual('http://127.0.0.1:8778 (auth_type none)',
                         fp.placement_description())

    def test_url_keeps_configured_credentials(self):
        self.flags(auth_type='password', group='placement')
        fp.configure_placement('http://placement.example')
        self.assertEqual('password', CONF.placement.auth_type)


class ProbePlacementTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.placement = self.useFixture(
            placement_fixture.PlacementFixture())

    def test_new_node(self):
        self.assertEqual(
            {'api_versions': '1.0-1.39',
             'compute_node': 'not registered yet'},
            fp.probe_placement(self.placement.adapter, 'compute1'))

    def test_registered_node(self):
        uuid = compute_manager.compute_node_uuid('compute1')
        self.placement.client.get_provider_tree_and_ensure_root(
            uuid, 'compute1')
        self.assertEqual(
            'registered (%s)' % uuid,
            fp.probe_placement(self.placement.adapter,
                               'compute1')['compute_node'])

    def test_unreachable(self):
        self.placement.interference.cut()
        ex = self.assertRaises(exception.PlacementAPIConnectFailure,
                               fp.probe_placement,
                               self.placement.interference, 'compute1')
        self.assertIn('Unable to establish connection', ex.format_message())
