"""Live migration between two libvirt daemons, on real QEMU.

The scenarios live in ``two_daemon_live_migration``; each runs here in a
process of its own, since libvirt refuses a connection to its daemon in a
process that has already embedded its QEMU driver, as every functional
test process does. This process starts the second libvirt host each
scenario migrates to, so that it ends, with its daemons, guests and
namespaces, whatever becomes of the scenario's process. A failure shows
the scenario's output and the second host's libvirtd log.
"""

import os
import subprocess
import sys

from testtools import content

from nova import test
from nova.tests.fixtures import libvirt_second_host
from nova.tests.functional.libvirt import two_daemon_live_migration

SCENARIOS = two_daemon_live_migration

#: A scenario boots one guest under TCG on shared cores and migrates it.
SCENARIO_TIMEOUT = 360


class LiveMigrationBetweenDaemonsTestCase(test.NoDBTestCase):

    TIMEOUT = SCENARIO_TIMEOUT + 60

    def run_scenario(self, name: str) -> None:
        host = self.useFixture(libvirt_second_host.SecondLibvirtHostFixture(
            SCENARIOS.HOST2, SCENARIOS.DESTINATION_HIDES.get(name, ()))).host
        proc = subprocess.run(
            [sys.executable, '-m', 'testtools.run',
             '%s.LiveMigrationBetweenDaemonsTestCase.%s' % (
                 SCENARIOS.__name__, name)],
            env=dict(os.environ, **host.to_environ()),
            capture_output=True, text=True, timeout=SCENARIO_TIMEOUT)
        output = proc.stdout + proc.stderr
        self.addDetail('scenario output', content.text_content(output))
        if proc.returncode != 0:
            with open(host.log_path('libvirtd'), errors='replace') as f:
                self.addDetail('libvirtd of %s' % host.hostname,
                               content.text_content(f.read()[-6000:]))
        self.assertEqual(0, proc.returncode, output[-6000:])
        self.assertIn('OK', output)

    def test_stateless_guest_moves_running(self):
        self.run_scenario('test_stateless_guest_moves_running')

    def test_stateless_aarch64_guest_moves_running(self):
        self.run_scenario('test_stateless_aarch64_guest_moves_running')

    def test_failed_migrations_leave_the_guest_on_the_source(self):
        self.run_scenario(
            'test_failed_migrations_leave_the_guest_on_the_source')

    def test_destination_without_the_firmware_refuses(self):
        self.run_scenario('test_destination_without_the_firmware_refuses')

    def test_stateful_guest_keeps_its_store(self):
        self.run_scenario('test_stateful_guest_keeps_its_store')
