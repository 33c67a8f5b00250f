"""aarch64 guests on real QEMU, emulated (TCG) on this x86_64 host.

Debian's ``qemu-system-arm`` and ``qemu-efi-aarch64`` (AAVMF, with its
firmware descriptors ``60-edk2-aarch64.json``, ``50-edk2-aarch64-secure.json``
and ``40-edk2-aarch64-secure-enrolled.json``) give real aarch64 guests, as
an aarch64 compute host under ``virt_type = qemu`` runs them: the driver
takes the image's ``hw_architecture``, Nova's machine type of the
architecture (``virt``), a 64-bit CPU and the AAVMF build the descriptors
name. AAVMF's variable store template is 64 MiB, so a stateful aarch64
guest costs the host 64 MiB of NVRAM that a stateless one does not.
"""

from oslo_utils import units

from nova import exception
from nova.tests.functional.libvirt import base

AAVMF_CODE = '/usr/share/AAVMF/AAVMF_CODE.fd'
AAVMF_VARS_SIZE = 64 * units.Mi


class AArch64BootTestCase(base.LibvirtBootTestCase):

    def image(self, **kwargs) -> dict:
        return base.make_image(architecture='aarch64', machine_type=None,
                               **kwargs)

    def assert_aarch64_virt(self, instance) -> None:
        config = self.live_config(instance)
        self.assertEqual('aarch64', config.os_arch)
        self.assertTrue(config.os_mach_type.startswith('virt'),
                        config.os_mach_type)
        self.assertEqual(AAVMF_CODE, config.os_loader)

    def _boot_stateless(self, firmware_type) -> None:
        instance = self.spawn(self.image(firmware_type=firmware_type,
                                         stateless=True))

        self.assert_aarch64_virt(instance)
        self.assert_stateless(instance)
        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_stateless_with_uefi_named(self):
        self._boot_stateless('uefi')

    def test_stateless_by_the_architectures_default(self):
        # aarch64 guests boot UEFI when the image names no firmware.
        self._boot_stateless(None)

    def test_stateful_gets_its_64_mib_store(self):
        instance = self.spawn(self.image(firmware_type=None, stateless=False))

        self.assert_aarch64_virt(instance)
        self.assert_stateful(instance, store_size=AAVMF_VARS_SIZE)
        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)

    def test_stateless_secure_boot_nothing_enforces_is_refused(self):
        # AAVMF's secure boot builds are the plain executable with keys
        # enrolled in their variable store (AAVMF_CODE.ms.fd links to
        # AAVMF_CODE.fd): without a store nothing would be enforced.
        image = self.image(firmware_type=None, stateless=True)
        image['properties']['os_secure_boot'] = 'required'
        instance = self.create_instance(image)

        self.assertRaises(exception.StatelessSecureBootNotSupported,
                          self.driver.spawn, self.context, instance,
                          instance.image_meta)
        self.assert_gone(instance)
