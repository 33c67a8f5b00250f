"""Base class of the functional tests that boot guests on real libvirt.

Each test gets a ``LibvirtDriver`` on the process's embedded QEMU driver
(``qemu:///embed``, ``virt_type = qemu``: TCG boots OVMF everywhere, nested
hosts included), its own ``state_path`` and ``instances_path`` in a temp
dir, and helpers that create instances through the compute API, exactly as
a server create would, and that read the evidence of how each guest really
booted through ``nova.virt.libvirt.boot_evidence``: the serial console, the
QEMU command line libvirt ran and the NVRAM directory. The XML Nova wrote
is never taken as proof on its own.

Booting costs seconds under TCG on two cores, so tests boot few guests,
stop each as soon as it has been looked at, and wait only for the first
firmware marker on the console.
"""

import itertools
import os

from oslo_utils import uuidutils

from nova.compute import api as compute_api
import nova.conf
from nova import objects
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt_embed
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF

#: The compute host name the tests' driver runs as.
COMPUTE_HOST = 'compute1'

#: Seconds to wait for the firmware on the serial console. OVMF prints its
#: boot manager's first line in about 3 s under TCG; the margin covers two
#: cores shared by parallel test workers and concurrently booting guests.
FIRMWARE_TIMEOUT = 60

#: Size of an OVMF_VARS_4M.fd variable store, the template on Debian 12.
VARS_4M_SIZE = 540672

#: Written over the last bytes of a variable store while its guest is off,
#: to tell that very store apart from a new copy of the template. In an
#: OVMF_VARS_4M.fd the variables take the first 256 KiB; the last bytes lie
#: in the spare area of OVMF's fault tolerant writes, used only to reclaim
#: a full store, so a boot to the firmware leaves them as they are.
NVRAM_MARKER = b'NOVA-NVRAM-MARK!'

# Domain names derive from instance ids; all tests of a process share one
# embedded libvirt, so ids must never repeat within the process.
_INSTANCE_IDS = itertools.count(1)


make_flavor = compute_fixture.make_flavor


def make_image(firmware_type: str | None = 'uefi',
               stateless: bool | None = None,
               machine_type: str | None = 'q35',
               architecture: str | None = None) -> dict:
    """A Glance image dict with the firmware properties given; a property
    given as None is not set.
    """
    properties = {}
    if machine_type is not None:
        properties['hw_machine_type'] = machine_type
    if architecture is not None:
        properties['hw_architecture'] = architecture
    if firmware_type is not None:
        properties['hw_firmware_type'] = firmware_type
    if stateless is not None:
        properties['hw_firmware_stateless'] = str(stateless).lower()
    return {
        'id': uuidutils.generate_uuid(),
        'name': 'uefi-%s' % ('stateless' if stateless else 'stateful'),
        'status': 'active',
        'disk_format': 'qcow2',
        'container_format': 'bare',
        'min_disk': 0,
        'min_ram': 0,
        'size': 0,
        'properties': properties,
    }


def write_nvram_marker(path: str) -> None:
    with open(path, 'r+b') as f:
        f.seek(-len(NVRAM_MARKER), os.SEEK_END)
        f.write(NVRAM_MARKER)


def has_nvram_marker(path: str) -> bool:
    with open(path, 'rb') as f:
        f.seek(-len(NVRAM_MARKER), os.SEEK_END)
        return f.read() == NVRAM_MARKER


class LibvirtBootTestCase(test.NoDBTestCase):
    """Boots real guests through ``LibvirtDriver`` and checks the result."""

    def setUp(self) -> None:
        super().setUp()
        self.embed = self.useFixture(libvirt_embed.EmbeddedLibvirtFixture())
        self.uri = self.embed.uri
        self.useFixture(compute_fixture.ComputeStateFixture(self.uri))
        self.flags(host=COMPUTE_HOST)
        self.compute_api = compute_api.API()
        self.context = None
        self.flavor = make_flavor()
        self.driver = self.start_driver()

    def start_driver(self) -> libvirt_driver.LibvirtDriver:
        """A driver on the embedded libvirt, through init_host."""
        driver = libvirt_driver.LibvirtDriver()
        driver.init_host(COMPUTE_HOST)
        return driver

    # --- instances

    def create_instance(self, image: dict,
                        flavor: 'objects.Flavor | None' = None
                        ) -> 'objects.Instance':
        """An instance as the compute API builds it, scheduled here."""
        instance, _spec = self.compute_api.create(
            flavor or self.flavor, image, display_name=image['name'],
            instance_id=next(_INSTANCE_IDS))
        instance.host = COMPUTE_HOST
        instance.node = COMPUTE_HOST
        instance.vm_state = 'active'
        instance.task_state = None
        return instance

    def spawn(self, image: dict, wait: bool = True,
              flavor: 'objects.Flavor | None' = None,
              ) -> 'objects.Instance':
        """Create and spawn an instance; wait for its firmware if asked."""
        instance = self.create_instance(image, flavor)
        self.driver.spawn(self.context, instance, instance.image_meta)
        if wait:
            self.wait_for_firmware(instance)
        return instance

    def wait_for_firmware(self, instance: 'objects.Instance') -> str:
        """Wait until the guest's console shows the firmware running."""
        console = self.driver.console_log_path(instance)
        marker = boot_evidence.wait_for_firmware(console,
                                                 timeout=FIRMWARE_TIMEOUT)
        if marker is None:
            try:
                with open(console, 'rb') as f:
                    tail = f.read()[-2000:].decode('utf-8', 'replace')
            except FileNotFoundError:
                tail = '(no console file)'
            self.fail('the firmware of %s did not show on its console in '
                      '%d s; console: %s' % (instance.name, FIRMWARE_TIMEOUT,
                                             tail))
        return marker

    # --- evidence

    def live_config(self, instance: 'objects.Instance'
                    ) -> vconfig.LibvirtConfigGuest:
        """The domain as libvirt runs it (live XML, parsed)."""
        return self.driver._get_guest(instance).get_config()

    def pflash(self, instance: 'objects.Instance'
               ) -> list[boot_evidence.PflashDrive]:
        """The flash drives QEMU got at the guest's last start."""
        return boot_evidence.pflash_drives(
            boot_evidence.last_qemu_command_line(self.uri, instance.name))

    def nvram_files(self, instance: 'objects.Instance') -> list[str]:
        return boot_evidence.nvram_files(self.uri, instance.name)

    def disk_paths(self, config: vconfig.LibvirtConfigGuest) -> list[str]:
        return [dev.source_path for dev in config.devices
                if isinstance(dev, vconfig.LibvirtConfigGuestDisk)]

    def assert_running(self, instance: 'objects.Instance') -> None:
        self.assertEqual(libvirt_driver.POWER_RUNNING,
                         self.driver.get_info(instance))

    def assert_stateless(self, instance: 'objects.Instance') -> None:
        """The running guest has one read-only firmware image and no
        variable store, by its live XML, QEMU's command line and the NVRAM
        directory.
        """
        config = self.live_config(instance)
        self.assertTrue(config.os_loader_stateless)
        self.assertTrue(config.os_loader_readonly)
        self.assertEqual('pflash', config.os_loader_type)
        self.assertIsNone(config.os_nvram)
        self.assertIsNone(config.os_nvram_template)
        self.assertEqual([], self.nvram_files(instance))
        drives = self.pflash(instance)
        self.assertEqual(1, len(drives), drives)
        self.assertEqual(0, drives[0].unit)
        self.assertTrue(drives[0].read_only, drives)
        self.assertEqual(config.os_loader, drives[0].filename)

    def assert_stateful(self, instance: 'objects.Instance',
                        store_size: int = VARS_4M_SIZE) -> str:
        """The running guest has a read-only firmware image and its own
        writable variable store of ``store_size`` bytes, made from the
        template.

        :returns: the path of the variable store.
        """
        config = self.live_config(instance)
        self.assertFalse(config.os_loader_stateless)
        self.assertTrue(config.os_loader_readonly)
        self.assertIsNotNone(config.os_nvram_template)
        self.assertTrue(os.path.isfile(config.os_nvram_template))
        files = self.nvram_files(instance)
        self.assertEqual([config.os_nvram], files)
        self.assertEqual(boot_evidence.nvram_dir(self.uri),
                         os.path.dirname(config.os_nvram))
        self.assertEqual(store_size, os.path.getsize(config.os_nvram))
        drives = self.pflash(instance)
        self.assertEqual([0, 1], [d.unit for d in drives], drives)
        self.assertTrue(drives[0].read_only, drives)
        self.assertEqual(config.os_loader, drives[0].filename)
        self.assertFalse(drives[1].read_only, drives)
        self.assertEqual(config.os_nvram, drives[1].filename)
        return config.os_nvram

    def assert_gone(self, instance: 'objects.Instance') -> None:
        """Nothing of the instance is left: domain, NVRAM, files."""
        self.assertNotIn(instance.name, self.driver.list_instances())
        self.assertEqual([], self.nvram_files(instance))
        self.assertFalse(os.path.exists(
            os.path.dirname(self.driver.console_log_path(instance))))
