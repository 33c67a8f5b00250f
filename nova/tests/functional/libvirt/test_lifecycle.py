"""A guest's firmware mode across the instance lifecycle, on real QEMU.

Every operation that rebuilds the domain XML (reboots, power on, rebuild,
rescue, resize, unshelve) must give a stateless guest no variable store and
give a stateful guest back the store it had: the same file, with what was
written into it, not a fresh copy of the template. A marker written into
the store while the guest is off tells the two apart; an inode number would
not, since a deleted file's inode is commonly reused by the next one.
"""

import os

import fixtures

import nova.conf
from nova import objects
from nova.tests.functional.libvirt import base
from nova.virt.libvirt import driver as libvirt_driver

CONF = nova.conf.CONF


class LifecycleTestCase(base.LibvirtBootTestCase):

    def setUp(self):
        super().setUp()
        # OVMF sitting at its shell ignores the ACPI power button, so a
        # soft reboot falls back to a hard one; do not wait long for it.
        self.flags(wait_soft_reboot_seconds=1, group='libvirt')

    def _power_off_and_mark(self, instance) -> str:
        self.driver.power_off(instance)
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.driver.get_info(instance))
        [nvram] = self.nvram_files(instance)
        base.write_nvram_marker(nvram)
        return nvram

    def _assert_same_store(self, instance, nvram: str) -> None:
        self.assertEqual(nvram, self.assert_stateful(instance))
        self.assertTrue(base.has_nvram_marker(nvram),
                        'the variable store was replaced')

    def test_stateless_reboots_and_shelve_stay_stateless(self):
        instance = self.spawn(base.make_image(stateless=True))
        self.assert_stateless(instance)

        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self.assert_stateless(instance)

        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_SOFT)
        self.assertIn('rebooting it hard', self.stdlog.output)
        self.wait_for_firmware(instance)
        self.assert_running(instance)
        self.assert_stateless(instance)

        # Shelve offload: the driver powers off and destroys the guest;
        # unshelve spawns it again from the stashed image properties.
        self.driver.power_off(instance, timeout=0)
        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)
        self.driver.spawn(self.context, instance, instance.image_meta)
        self.assert_running(instance)
        self.assert_stateless(instance)

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_stateful_power_cycles_and_reboots_keep_the_store(self):
        instance = self.spawn(base.make_image(stateless=False), wait=False)
        first = self.assert_stateful(instance)
        nvram = self._power_off_and_mark(instance)
        self.assertEqual(first, nvram)

        self.driver.power_on(self.context, instance)
        self.assert_running(instance)
        self._assert_same_store(instance, nvram)

        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        self._assert_same_store(instance, nvram)

        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_SOFT)
        self.assertIn('rebooting it hard', self.stdlog.output)
        # The firmware ran on this store and left the marker alone.
        self.wait_for_firmware(instance)
        self.assert_running(instance)
        self._assert_same_store(instance, nvram)

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_rebuild_flips_the_firmware_mode(self):
        instance = self.spawn(base.make_image(stateless=False), wait=False)
        self.assert_stateful(instance)
        old_nvram = self._power_off_and_mark(instance)

        # stateful -> stateless: the old store goes with the old guest.
        image = base.make_image(stateless=True)
        self.compute_api.rebuild(instance, image)
        self.driver.rebuild(self.context, instance, instance.image_meta)
        self.assert_running(instance)
        self.assert_stateless(instance)
        self.assertFalse(os.path.exists(old_nvram))

        # stateless -> stateful: a new store, made from the template.
        image = base.make_image(stateless=False)
        self.compute_api.rebuild(instance, image)
        self.driver.rebuild(self.context, instance, instance.image_meta)
        self.wait_for_firmware(instance)
        nvram = self.assert_stateful(instance)
        self.assertFalse(base.has_nvram_marker(nvram))

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_rescue_keeps_the_firmware_mode(self):
        stateless = self.spawn(base.make_image(stateless=True), wait=False)
        stateful = self.spawn(base.make_image(stateless=False), wait=False)
        nvram = self._power_off_and_mark(stateful)
        # A BIOS rescue image: the rescued guest keeps the firmware of the
        # instance's own image, not the rescue image's.
        rescue_image = objects.ImageMeta.from_dict(
            base.make_image(firmware_type=None))

        for instance in (stateless, stateful):
            own_disks = self.disk_paths(self.live_config(instance))
            self.driver.rescue(self.context, instance, None, rescue_image)
            if instance is stateless:
                # The firmware runs from a rescue disk too.
                self.wait_for_firmware(instance)
            self.assert_running(instance)
            rescued = self.disk_paths(self.live_config(instance))
            self.assertEqual(2, len(rescued))
            self.assertEqual(libvirt_driver.RESCUE_DISK_NAME,
                             os.path.basename(rescued[0]))
            self.assertEqual(own_disks, rescued[1:])
            self._assert_mode(instance, nvram)

            self.driver.unrescue(self.context, instance)
            self.assert_running(instance)
            self.assertEqual(own_disks,
                             self.disk_paths(self.live_config(instance)))
            self._assert_mode(instance, nvram)
            self.driver.power_off(instance)

        for instance in (stateless, stateful):
            self.driver.destroy(self.context, instance)
            self.assert_gone(instance)

    def _assert_mode(self, instance, nvram: str) -> None:
        if instance.image_meta.properties.hw_firmware_stateless:
            self.assert_stateless(instance)
        else:
            self._assert_same_store(instance, nvram)

    def test_resize_and_revert_keep_the_mode_and_store(self):
        old_flavor = self.flavor
        new_flavor = base.make_flavor(name='bigger', memory_mb=384, root_gb=2,
                                      flavor_id=2)
        stateless = self.spawn(base.make_image(stateless=True), wait=False)
        stateful = self.spawn(base.make_image(stateless=False), wait=False)
        nvram = self._power_off_and_mark(stateful)

        for instance in (stateless, stateful):
            self.driver.migrate_disk_and_power_off(
                self.context, instance, base.COMPUTE_HOST, new_flavor)
            self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                             self.driver.get_info(instance))

            # The compute manager switches the flavor before each call.
            instance.flavor = new_flavor
            self.driver.finish_migration(
                self.context, None, instance, '', None, instance.image_meta,
                resize_instance=True)
            self.assert_running(instance)
            self.assertEqual(384 * 1024, self.live_config(instance).memory)
            self._assert_mode(instance, nvram)

            instance.flavor = old_flavor
            self.driver.finish_revert_migration(self.context, instance, None)
            self.assert_running(instance)
            self.assertEqual(256 * 1024, self.live_config(instance).memory)
            self._assert_mode(instance, nvram)
            self.driver.power_off(instance)

        self.driver.power_on(self.context, stateful)
        self.wait_for_firmware(stateful)
        self._assert_same_store(stateful, nvram)
        for instance in (stateless, stateful):
            self.driver.destroy(self.context, instance)
            self.assert_gone(instance)

    def test_stateful_guest_keeps_its_loader_after_a_descriptor_change(self):
        instance = self.spawn(base.make_image(stateless=False), wait=False)
        created = self.live_config(instance).os_loader
        self.assertEqual('/usr/share/OVMF/OVMF_CODE_4M.fd', created)
        nvram = self._power_off_and_mark(instance)

        # The plain build's descriptor masked and the service restarted:
        # a new stateful guest would now get the secure boot build.
        mask = self.useFixture(fixtures.TempDir()).path
        with open(os.path.join(mask, '60-edk2-x86_64.json'), 'w'):
            pass
        self.flags(firmware_descriptor_dirs=list(
            CONF.libvirt.firmware_descriptor_dirs) + [mask],
            group='libvirt')
        self.driver = self.start_driver()
        fresh = self.driver._get_guest_config(
            self.create_instance(base.make_image(stateless=False)),
            instance.image_meta)
        self.assertEqual('/usr/share/OVMF/OVMF_CODE_4M.secboot.fd',
                         fresh.os_loader)

        # The existing guest keeps the build its variables were made by.
        self.driver.power_on(self.context, instance)
        self.wait_for_firmware(instance)
        self._assert_same_store(instance, nvram)
        self.assertEqual(created, self.pflash(instance)[0].filename)
        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_HARD)
        self._assert_same_store(instance, nvram)
        self.assertEqual(created, self.pflash(instance)[0].filename)
        new_flavor = base.make_flavor(name='bigger', memory_mb=384,
                                      flavor_id=2)
        self.driver.migrate_disk_and_power_off(
            self.context, instance, base.COMPUTE_HOST, new_flavor)
        instance.flavor = new_flavor
        self.driver.finish_migration(
            self.context, None, instance, '', None, instance.image_meta,
            resize_instance=False)
        self._assert_same_store(instance, nvram)
        self.assertEqual(created, self.pflash(instance)[0].filename)

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)
