"""Base classes for the unit and functional tests.

``TestCase`` gives every test a clean configuration (changes made with
``self.flags`` are undone afterwards), captured logging and registered
versioned objects, so that tests never depend on each other's state.
"""

import fixtures
from oslo_config import fixture as config_fixture
from oslo_log import log as logging
import testtools

import nova.conf
from nova import objects

CONF = nova.conf.CONF

_LOGGING_SET_UP = False


def _setup_logging_once() -> None:
    global _LOGGING_SET_UP
    if not _LOGGING_SET_UP:
        logging.register_options(CONF)
        _LOGGING_SET_UP = True


class TestCase(testtools.TestCase):
    """Test case base class for all tests of this tree."""

    #: Seconds after which a test is failed as hung.
    TIMEOUT = 160

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(fixtures.Timeout(self.TIMEOUT, gentle=True))
        _setup_logging_once()
        self.conf_fixture = self.useFixture(config_fixture.Config(CONF))
        # Parse an empty command line so options can be read without a
        # config file on this machine.
        CONF([], project='nova', default_config_files=[])
        self.stdlog = self.useFixture(fixtures.FakeLogger(
            level=logging.DEBUG, format='%(levelname)s %(name)s %(message)s'))
        objects.register_all()

    def flags(self, **kw) -> None:
        """Override flag variables for a test; ``group`` picks the group."""
        group = kw.pop('group', None)
        for k, v in kw.items():
            CONF.set_override(k, v, group)


class NoDBTestCase(TestCase):
    """Alias kept for readers who know Nova: no test here uses a Nova DB."""
