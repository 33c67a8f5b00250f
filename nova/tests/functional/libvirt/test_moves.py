"""Moves of a stateless guest between two compute hosts, on real QEMU.

The scenarios live in ``two_host_moves``; each runs here in a process of
its own, since libvirt refuses a connection to its daemon in a process that
has already embedded its QEMU driver, as every functional test process
does. A failure shows the scenario's own output.
"""

import subprocess
import sys

from nova import test

SCENARIOS = 'nova.tests.functional.libvirt.two_host_moves'

#: A scenario boots a few guests under TCG on shared cores.
TIMEOUT = 600


class MovesBetweenHostsTestCase(test.NoDBTestCase):

    def run_scenario(self, name: str) -> None:
        proc = subprocess.run(
            [sys.executable, '-m', 'testtools.run',
             '%s.MovesBetweenHostsTestCase.%s' % (SCENARIOS, name)],
            capture_output=True, text=True, timeout=TIMEOUT)
        output = proc.stdout + proc.stderr
        self.assertEqual(0, proc.returncode, output[-6000:])
        self.assertIn('OK', output)

    def test_cold_migrate_with_resize_revert_and_confirm(self):
        self.run_scenario('test_cold_migrate_with_resize_revert_and_confirm')

    def test_shelve_offload_and_unshelve_to_another_host(self):
        self.run_scenario('test_shelve_offload_and_unshelve_to_another_host')

    def test_evacuate_from_a_failed_host(self):
        self.run_scenario('test_evacuate_from_a_failed_host')

    def test_stateful_guest_gets_a_new_store_on_another_host(self):
        self.run_scenario(
            'test_stateful_guest_gets_a_new_store_on_another_host')
