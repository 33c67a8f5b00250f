"""Faults during the lifecycle of UEFI guests, on real libvirt and QEMU.

The failures are real wherever the machine can produce them: libvirt
failing to start a guest whose disk is a directory, a firmware image
deleted from under a running compute service. Mocks only stand in for what
cannot be had on demand here: a lost libvirt connection, made by closing
the real one, and a firmware image outside the system's firmware
directories that libvirt would offer. Every test ends with no domain and
no NVRAM file left.
"""

import json
import os
import shutil

import fixtures

from nova import exception
from nova.tests.functional.libvirt import base
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import host as libvirt_host


class FaultsTestCase(base.LibvirtBootTestCase):

    def _break_disk(self, instance) -> tuple[str, str]:
        """Replace the instance's disk by a directory QEMU cannot open."""
        disk = os.path.join(
            os.path.dirname(self.driver.console_log_path(instance)),
            libvirt_driver.DISK_NAME)
        saved = disk + '.saved'
        if os.path.exists(disk):
            os.rename(disk, saved)
        os.makedirs(disk)
        return disk, saved

    def test_failed_start_of_a_new_guest_leaves_nothing(self):
        # The instance directory already holds a "disk" that is no image:
        # the domain is defined, then its start fails for real.
        instance = self.create_instance(base.make_image(stateless=False))
        disk, _saved = self._break_disk(instance)

        ex = self.assertRaises(libvirt_host.libvirt.libvirtError,
                               self.driver.spawn, self.context, instance,
                               instance.image_meta)

        self.assertIn("'%s': Is a directory" % disk, str(ex))
        self.assert_gone(instance)

    def test_failed_start_at_hard_reboot_keeps_domain_and_store(self):
        instance = self.spawn(base.make_image(stateless=False), wait=False)
        self.driver.power_off(instance)
        [nvram] = self.nvram_files(instance)
        base.write_nvram_marker(nvram)
        disk, saved = self._break_disk(instance)

        self.assertRaises(libvirt_host.libvirt.libvirtError,
                          self.driver.reboot, self.context, instance, None,
                          libvirt_driver.REBOOT_HARD)

        # The guest is down but still defined, with its UEFI variables:
        # the operator repairs the disk and reboots again.
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.driver.get_info(instance))
        self.assertEqual([nvram], self.nvram_files(instance))
        self.assertTrue(base.has_nvram_marker(nvram))
        os.rmdir(disk)
        os.rename(saved, disk)
        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_HARD)
        self.wait_for_firmware(instance)
        self.assertEqual(nvram, self.assert_stateful(instance))
        self.assertTrue(base.has_nvram_marker(nvram))

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_a_domain_of_the_same_name_is_left_alone(self):
        # Two processes on one libvirt daemon can pick the same domain
        # name. The build that loses is refused at define, and neither its
        # clean-up nor a delete may take the other guest down: the domain
        # is the instance's only if it has the instance's UUID.
        other = self.spawn(base.make_image(stateless=True), wait=False)
        instance = self.create_instance(base.make_image(stateless=True))
        instance.id = other.id
        self.assertEqual(other.name, instance.name)

        ex = self.assertRaises(libvirt_host.libvirt.libvirtError,
                               self.driver.spawn, self.context, instance,
                               instance.image_meta)
        self.assertIn('already exists with uuid %s' % other.uuid, str(ex))
        self.driver.destroy(self.context, instance)

        self.assert_running(other)
        self.assertEqual(other.uuid,
                         self.driver.host.get_domain(other.name).UUIDString())
        self.wait_for_firmware(other)
        self.driver.destroy(self.context, other)
        self.assert_gone(other)

    def test_connection_lost_during_spawn(self):
        host = self.driver.host
        define = host.write_instance_config

        def close_then_define(xml):
            host.get_connection().close()
            return define(xml)

        with fixtures.MockPatchObject(host, 'write_instance_config',
                                      side_effect=close_then_define):
            for stateless in (True, False):
                instance = self.create_instance(
                    base.make_image(stateless=stateless))
                self.assertRaises(exception.HypervisorUnavailable,
                                  self.driver.spawn, self.context, instance,
                                  instance.image_meta)
                # The cleanup reconnected to look for a domain to remove.
                self.assert_gone(instance)

        # The driver works again on a new connection.
        instance = self.spawn(base.make_image(stateless=True), wait=False)
        self.assert_stateless(instance)
        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_many_hosts_on_the_embedded_driver(self):
        # Each open of an embedded URI takes one of libvirt's few driver
        # slots for good: about 16 opens per process, then "Too many
        # drivers". Hosts share the connection, so there is no limit on
        # how many are created (one per test, per CLI command).
        hosts = [libvirt_host.Host(self.uri) for _ in range(24)]

        for host in hosts:
            self.assertEqual([], host.list_instance_names())

        self.assertIs(hosts[0].get_connection(), hosts[-1].get_connection())

    def _use_firmware_copy(self) -> str:
        """Restart the driver on a copy of its stateless firmware image.

        The copy is described by a copy of the descriptor that names the
        real image, in a directory of its own, so removing the copy leaves
        the driver no other UEFI firmware to fall back to.
        """
        real = self.driver.host.stateless_firmware_support().loader
        work = self.useFixture(fixtures.TempDir()).path
        code = os.path.join(work, os.path.basename(real.path))
        shutil.copyfile(real.path, code)
        with open(real.descriptor.path, encoding='utf-8') as f:
            document = json.load(f)
        document['mapping']['executable']['filename'] = code
        descriptor_dir = os.path.join(work, 'firmware')
        os.makedirs(descriptor_dir)
        with open(os.path.join(descriptor_dir, real.descriptor.name), 'w',
                  encoding='utf-8') as f:
            json.dump(document, f)
        self.flags(firmware_descriptor_dirs=[descriptor_dir],
                   group='libvirt')

        driver = libvirt_driver.LibvirtDriver()
        # libvirt offers the images of the system's descriptors only; the
        # copy stands for one more firmware package it would offer.
        caps = driver.host.get_domain_capabilities_for(
            driver.host.get_host_arch(), 'q35')
        self.useFixture(fixtures.MockPatchObject(
            caps.os, 'loader_paths', caps.os.loader_paths + [code]))
        driver.init_host(base.COMPUTE_HOST)
        self.assertEqual(
            code, driver.host.stateless_firmware_support().loader.path)
        self.driver = driver
        return code

    def test_firmware_removed_before_hard_reboot(self):
        # nova-compute cannot tell a removed firmware file from one it
        # does not see (libvirt in another container): libvirt's domain
        # capabilities decide, the missing file is only a warning, and the
        # start fails in libvirt, leaving the domain and its NVRAM for a
        # retry once the firmware is back.
        code = self._use_firmware_copy()
        stateless = self.spawn(base.make_image(stateless=True), wait=False)
        stateful = self.spawn(base.make_image(stateless=False), wait=False)
        [nvram] = self.nvram_files(stateful)
        self.assertEqual(code, self.live_config(stateless).os_loader)
        self.assertEqual(code, self.live_config(stateful).os_loader)
        saved = code + '.saved'
        os.rename(code, saved)

        for instance in (stateless, stateful):
            ex = self.assertRaises(
                libvirt_host.libvirt.libvirtError, self.driver.reboot,
                self.context, instance, None, libvirt_driver.REBOOT_HARD)
            self.assertIn(code, str(ex))
            self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                             self.driver.get_info(instance))
        self.assertIn('UEFI firmware file %s, which libvirt offered, is not '
                      'visible to nova-compute' % code, self.stdlog.output)
        self.assertEqual([nvram], self.nvram_files(stateful))
        base.write_nvram_marker(nvram)

        # Recovery: put the firmware back and reboot.
        os.rename(saved, code)
        for instance in (stateless, stateful):
            self.driver.reboot(self.context, instance, None,
                               libvirt_driver.REBOOT_HARD)
        self.wait_for_firmware(stateful)
        self.assert_stateless(stateless)
        self.assertEqual(nvram, self.assert_stateful(stateful))
        self.assertTrue(base.has_nvram_marker(nvram))

        for instance in (stateless, stateful):
            self.driver.destroy(self.context, instance)
            self.assert_gone(instance)

    def test_refused_define_keeps_domain_and_nvram(self):
        # A resize to a flavor libvirt refuses at define: q35 takes at most
        # 288 vCPUs. The old definition stays with its NVRAM, and destroy
        # removes both; nothing is orphaned.
        instance = self.spawn(base.make_image(stateless=False), wait=False)
        self.driver.power_off(instance)
        [nvram] = self.nvram_files(instance)
        base.write_nvram_marker(nvram)
        self.driver.migrate_disk_and_power_off(
            self.context, instance, base.COMPUTE_HOST, self.flavor)
        instance.flavor = base.make_flavor(vcpus=4096, name='huge',
                                           flavor_id=3)

        ex = self.assertRaises(
            libvirt_host.libvirt.libvirtError, self.driver.finish_migration,
            self.context, None, instance, '', None, instance.image_meta,
            resize_instance=False)

        self.assertIn('Maximum CPUs greater than specified machine type '
                      'limit', str(ex))
        self.assertEqual(libvirt_driver.POWER_SHUTDOWN,
                         self.driver.get_info(instance))
        self.assertEqual(1, self.driver._get_guest(instance).get_config(
            dump_inactive=True).vcpus)
        self.assertEqual([nvram], self.nvram_files(instance))
        self.assertTrue(base.has_nvram_marker(nvram))
        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)
        self.assertFalse(os.path.exists(nvram))
