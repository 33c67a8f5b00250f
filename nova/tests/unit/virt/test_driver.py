"""Tests of the compute driver base: capabilities and their traits."""

import os_traits

from nova import test
from nova.virt import driver


class _StatelessDriver(driver.ComputeDriver):
    """A driver declaring only some capabilities, as a real one may."""

    capabilities = {
        'supports_stateless_firmware': True,
        'supports_image_type_raw': False,
    }


class CapabilityTraitsMapTestCase(test.NoDBTestCase):

    def test_traits_are_standard_traits(self):
        # A misspelt trait would never be required by the scheduler, which
        # asks for os_traits' names. The one custom trait stands for what
        # os-traits has no name for.
        known = set(os_traits.get_traits())
        for capability, trait in driver.CAPABILITY_TRAITS_MAP.items():
            if capability == 'supports_stateless_secure_boot':
                self.assertTrue(os_traits.is_custom(trait))
                continue
            self.assertIn(trait, known, capability)

    def test_stateless_firmware_trait(self):
        self.assertEqual(
            os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE,
            driver.CAPABILITY_TRAITS_MAP['supports_stateless_firmware'])

    def test_one_trait_per_capability(self):
        traits = list(driver.CAPABILITY_TRAITS_MAP.values())
        self.assertEqual(len(traits), len(set(traits)))

    def test_base_declares_every_mapped_capability(self):
        self.assertEqual(set(driver.CAPABILITY_TRAITS_MAP),
                         set(driver.ComputeDriver.capabilities))
        self.assertFalse(any(driver.ComputeDriver.capabilities.values()))


class ComputeDriverTestCase(test.NoDBTestCase):

    def test_init_host_and_provider_tree_are_abstract(self):
        drv = driver.ComputeDriver()
        self.assertRaises(NotImplementedError, drv.init_host, 'host1')
        self.assertRaises(NotImplementedError, drv.update_provider_tree,
                          None, 'host1')

    def test_capabilities_as_traits_of_base(self):
        traits = driver.ComputeDriver().capabilities_as_traits()
        self.assertEqual(set(driver.CAPABILITY_TRAITS_MAP.values()),
                         set(traits))
        self.assertFalse(any(traits.values()))

    def test_capabilities_as_traits_of_declared_capabilities_only(self):
        self.assertEqual(
            {os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE: True,
             os_traits.COMPUTE_IMAGE_TYPE_RAW: False},
            _StatelessDriver().capabilities_as_traits())

    def test_capabilities_are_per_instance(self):
        # Two computes in one process (a functional test, a host upgrade)
        # must not see each other's capabilities.
        first, second = _StatelessDriver(), _StatelessDriver()
        first.capabilities['supports_stateless_firmware'] = False
        self.assertFalse(first.capabilities_as_traits()[
            os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE])
        self.assertTrue(second.capabilities_as_traits()[
            os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE])
        self.assertTrue(
            _StatelessDriver.capabilities['supports_stateless_firmware'])

    def test_virtapi_kept(self):
        virtapi = object()
        self.assertIs(virtapi, driver.ComputeDriver(virtapi).virtapi)


class MergeCapabilityTraitsTestCase(test.NoDBTestCase):

    STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
    SECURE_BOOT = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
    OTHERS = frozenset({'CUSTOM_GOLD', os_traits.HW_CPU_X86_AVX2})

    def merge(self, traits, capability_traits) -> set:
        return driver.ComputeDriver.merge_capability_traits(
            traits, capability_traits)

    def test_adds_true_and_removes_false(self):
        self.assertEqual(
            set(self.OTHERS) | {self.STATELESS},
            self.merge(self.OTHERS | {self.SECURE_BOOT},
                       {self.STATELESS: True, self.SECURE_BOOT: False}))

    def test_keeps_traits_it_does_not_own(self):
        self.assertEqual(set(self.OTHERS), self.merge(
            self.OTHERS, {self.STATELESS: False}))
        self.assertEqual(set(self.OTHERS), self.merge(self.OTHERS, {}))

    def test_idempotent(self):
        capability_traits = {self.STATELESS: True, self.SECURE_BOOT: False}
        once = self.merge(self.OTHERS, capability_traits)
        self.assertEqual(once, self.merge(once, capability_traits))

    def test_input_not_modified(self):
        traits = set(self.OTHERS)
        merged = self.merge(traits, {self.STATELESS: True})
        self.assertEqual(set(self.OTHERS), traits)
        self.assertIsNot(traits, merged)

    def test_accepts_any_iterable(self):
        self.assertEqual(
            {'CUSTOM_GOLD', self.STATELESS},
            self.merge(iter(['CUSTOM_GOLD']), {self.STATELESS: True}))
