"""nova-compute and libvirt that do not share a filesystem, on real QEMU.

In containerised deployments nova-compute and the libvirt daemon run in
separate containers, and the firmware images libvirt uses may not exist in
nova-compute's filesystem at all. Here nova-compute runs in a mount
namespace of its own in which ``/usr/share/OVMF`` is an empty tmpfs, while
the libvirt daemon (``qemu:///system``) sees the real one: libvirt's
domain capabilities, not nova-compute's filesystem, decide whether a
loader can be used.
"""

import json
import os
import shutil
import subprocess
import sys

from nova import test
from nova.tests.fixtures import libvirt_system

FIRMWARE_DIR = '/usr/share/OVMF'
CODE = os.path.join(FIRMWARE_DIR, 'OVMF_CODE_4M.fd')


class SeparateFilesystemTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        if shutil.which('unshare') is None:
            self.fail('unshare (util-linux) is needed to hide the firmware')
        self.system = self.useFixture(libvirt_system.SystemLibvirtFixture())

    def spawn_without_firmware_files(self) -> tuple[dict, str]:
        instance_id = libvirt_system.unique_instance_id()
        self.system.domain_names.append('instance-%08x' % instance_id)
        result_path = os.path.join(self.system.work, 'result.json')
        script = ('mount -t tmpfs tmpfs %s && exec "$@"' % FIRMWARE_DIR)
        proc = subprocess.run(
            ['unshare', '--mount', '--propagation', 'private', 'sh', '-c',
             script, 'sh', sys.executable, '-m',
             'nova.tests.functional.libvirt.hidden_firmware_spawn',
             '--work', self.system.work, '--instance-id', str(instance_id),
             '--firmware-dir', FIRMWARE_DIR, '--result', result_path],
            capture_output=True, text=True, timeout=300)
        log = proc.stdout + proc.stderr
        self.assertEqual(0, proc.returncode, log[-3000:])
        with open(result_path, encoding='utf-8') as f:
            return json.load(f), log

    def test_stateless_guest_boots_with_firmware_libvirt_sees(self):
        result, log = self.spawn_without_firmware_files()

        # nova-compute saw no firmware file at all...
        self.assertEqual([], result['firmware_files_seen'])
        self.assertIn('UEFI firmware file %s, which libvirt offered, is not '
                      'visible to nova-compute' % CODE, log)
        # ...and the host still reported the capability and booted the
        # guest stateless from the file libvirt sees.
        self.assertTrue(result['supported'])
        self.assertNotIn('error', result)
        self.assertIn(result['marker'], ('BdsDxe:', 'UEFI Interactive Shell',
                                         'Shell>'))
        self.assertEqual(CODE, result['loader'])
        self.assertTrue(result['loader_stateless'])
        self.assertIsNone(result['nvram'])
        self.assertEqual([], result['nvram_files'])
        self.assertEqual([[0, CODE, True]], result['pflash'])
