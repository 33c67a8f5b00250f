"""Reading a guest's firmware evidence from files libvirt and QEMU write.

The command lines below are what libvirt 9.0 logged for QEMU 7.2 on
Debian 12 (environment and unrelated devices cut), for a stateless and a
stateful UEFI guest.
"""

import os

import fixtures

from nova import test
from nova.virt.libvirt import boot_evidence

CODE = '/usr/share/OVMF/OVMF_CODE_4M.fd'
NVRAM = '/var/lib/nova/embed/lib/qemu/nvram/instance-00000001_VARS.fd'

CODE_BLOCKDEVS = (
    "-blockdev '{\"driver\":\"file\",\"filename\":\"%s\",\"node-name\":"
    "\"libvirt-pflash0-storage\",\"auto-read-only\":true,\"discard\":"
    "\"unmap\"}' "
    "-blockdev '{\"node-name\":\"libvirt-pflash0-format\",\"read-only\":"
    "true,\"driver\":\"raw\",\"file\":\"libvirt-pflash0-storage\"}'" % CODE)
NVRAM_BLOCKDEVS = (
    "-blockdev '{\"driver\":\"file\",\"filename\":\"%s\",\"node-name\":"
    "\"libvirt-pflash1-storage\",\"auto-read-only\":true,\"discard\":"
    "\"unmap\"}' "
    "-blockdev '{\"node-name\":\"libvirt-pflash1-format\",\"read-only\":"
    "false,\"driver\":\"raw\",\"file\":\"libvirt-pflash1-storage\"}'" %
    NVRAM)
MACHINE = ('-machine pc-q35-7.2,usb=off,dump-guest-core=off,'
           'memory-backend=pc.ram,pflash0=libvirt-pflash0-format')
DISK_BLOCKDEV = (
    "-blockdev '{\"driver\":\"file\",\"filename\":\"/i/disk\","
    "\"node-name\":\"libvirt-1-storage\"}'")


def command_line(*parts: str) -> str:
    return ' '.join(('LC_ALL=C /usr/bin/qemu-system-x86_64 -name '
                     'guest=instance-00000001,debug-threads=on -S',) +
                    parts + ('-accel tcg -m 256 -msg timestamp=on',))


STATELESS = command_line(CODE_BLOCKDEVS, MACHINE, DISK_BLOCKDEV)
STATEFUL = command_line(CODE_BLOCKDEVS, NVRAM_BLOCKDEVS,
                        MACHINE + ',pflash1=libvirt-pflash1-format',
                        DISK_BLOCKDEV)


class PflashTestCase(test.NoDBTestCase):

    def test_stateless_has_one_read_only_drive(self):
        self.assertEqual(
            [boot_evidence.PflashDrive(unit=0, filename=CODE,
                                       read_only=True)],
            boot_evidence.pflash_drives(STATELESS))

    def test_stateful_has_a_writable_store(self):
        self.assertEqual(
            [boot_evidence.PflashDrive(unit=0, filename=CODE,
                                       read_only=True),
             boot_evidence.PflashDrive(unit=1, filename=NVRAM,
                                       read_only=False)],
            boot_evidence.pflash_drives(STATEFUL))

    def test_bios_guest_has_none(self):
        self.assertEqual([], boot_evidence.pflash_drives(
            command_line(DISK_BLOCKDEV, '-machine pc-q35-7.2')))
        self.assertEqual([], boot_evidence.pflash_arguments(
            command_line(DISK_BLOCKDEV, '-machine pc-q35-7.2')))

    def test_arguments_of_the_flash_drives_only(self):
        arguments = boot_evidence.pflash_arguments(STATEFUL)

        self.assertEqual(5, len(arguments), arguments)
        self.assertEqual(CODE_BLOCKDEVS, ' '.join(arguments[:2]))
        self.assertEqual(NVRAM_BLOCKDEVS, ' '.join(arguments[2:4]))
        self.assertEqual(MACHINE + ',pflash1=libvirt-pflash1-format',
                         arguments[4])
        self.assertNotIn(DISK_BLOCKDEV, arguments)

    def test_stateless_arguments(self):
        arguments = boot_evidence.pflash_arguments(STATELESS)

        self.assertEqual(3, len(arguments), arguments)
        self.assertEqual(CODE_BLOCKDEVS, ' '.join(arguments[:2]))
        self.assertEqual(MACHINE, arguments[2])


class HostFilesTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.root = self.useFixture(fixtures.TempDir()).path
        self.uri = 'qemu:///embed?root=%s' % self.root

    def test_last_start_of_the_domain(self):
        log_dir = boot_evidence.qemu_log_dir(self.uri)
        os.makedirs(log_dir)
        # libvirt appends each start, one argument a line.
        with open(os.path.join(log_dir, 'instance-00000001.log'), 'w') as f:
            for text in (STATEFUL, STATELESS):
                f.write('2026-01-01 00:00:00.000+0000: starting up\n')
                f.write(text.replace(' -', ' \\\n-') + '\n')
                f.write('char device redirected\n')

        line = boot_evidence.last_qemu_command_line(self.uri,
                                                    'instance-00000001')

        self.assertEqual(1, len(boot_evidence.pflash_drives(line)))

    def test_nvram_files_of_one_domain(self):
        nvram_dir = boot_evidence.nvram_dir(self.uri)
        self.assertEqual([], boot_evidence.nvram_files(self.uri, 'x'))
        os.makedirs(nvram_dir)
        for name in ('instance-00000001_VARS.fd',
                     'instance-00000010_VARS.fd'):
            open(os.path.join(nvram_dir, name), 'w').close()

        self.assertEqual(
            [os.path.join(nvram_dir, 'instance-00000001_VARS.fd')],
            boot_evidence.nvram_files(self.uri, 'instance-00000001'))
        self.assertEqual([], boot_evidence.nvram_files(
            self.uri, 'instance-00000002'))

    def test_wait_for_firmware(self):
        console = os.path.join(self.root, 'console.log')
        self.assertIsNone(boot_evidence.wait_for_firmware(console, 0))
        with open(console, 'wb') as f:
            f.write(b'\x1b[2J\x1b[01;01HBdsDxe: loading Boot0001\r\n')

        self.assertEqual('BdsDxe:',
                         boot_evidence.wait_for_firmware(console, 0))

    def test_wait_for_firmware_ends_when_the_guest_stops(self):
        console = os.path.join(self.root, 'console.log')
        asked = []

        def running():
            asked.append(True)
            return len(asked) < 3

        # An hour of timeout; the guest stops at the third look.
        self.assertIsNone(boot_evidence.wait_for_firmware(
            console, 3600, interval=0.01, running=running))
        self.assertEqual(3, len(asked))
