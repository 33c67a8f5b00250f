"""Stateless and stateful UEFI guests booted by the driver on real QEMU.

The proof of a stateless boot is what the host shows, not the XML Nova
wrote: OVMF runs (serial console), QEMU got one flash drive and it is
read-only (QEMU command line), and libvirt keeps no variable store for the
guest (NVRAM directory). A stateful guest, for contrast, gets a second,
writable flash drive backed by its own copy of the template.
"""

import os

from nova.tests.functional.libvirt import base


class StatelessBootTestCase(base.LibvirtBootTestCase):

    def test_stateless_uefi_guest_boots_without_nvram(self):
        instance = self.spawn(base.make_image(stateless=True))

        self.assert_running(instance)
        self.assert_stateless(instance)
        config = self.live_config(instance)
        self.assertEqual(
            self.driver.host.stateless_firmware_support().loader.path,
            config.os_loader)
        self.assertTrue(config.os_mach_type.startswith('pc-q35-'))

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_stateful_uefi_guest_gets_its_own_variable_store(self):
        instance = self.spawn(base.make_image(stateless=False))

        self.assert_running(instance)
        nvram = self.assert_stateful(instance)
        self.assertEqual(instance.name + '_VARS.fd', os.path.basename(nvram))
        config = self.live_config(instance)
        # The guest's own store, never the shared template.
        self.assertNotEqual(config.os_nvram_template, nvram)

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)
        self.assertFalse(os.path.exists(nvram))
