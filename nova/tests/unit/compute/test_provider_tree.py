"""Tests of the in-memory provider tree the virt driver edits."""

import os_resource_classes as orc
import os_traits

from nova.compute import provider_tree
from nova import test

CN_UUID = 'a1b2c3d4-0000-4000-8000-000000000001'
CN_NAME = 'compute1'
STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
UEFI = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
INVENTORY = {
    orc.VCPU: {'total': 8, 'allocation_ratio': 16.0},
    orc.MEMORY_MB: {'total': 16384, 'reserved': 512},
}


class ProviderTreeTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.tree = provider_tree.ProviderTree()
        self.tree.new_root(CN_NAME, CN_UUID, generation=3)

    def test_new_root_found_by_name_and_uuid(self):
        self.assertTrue(self.tree.exists(CN_NAME))
        self.assertTrue(self.tree.exists(CN_UUID))
        self.assertFalse(self.tree.exists('compute2'))
        data = self.tree.data(CN_NAME)
        self.assertEqual(CN_UUID, data.uuid)
        self.assertEqual(CN_NAME, data.name)
        self.assertEqual(3, data.generation)
        self.assertIsNone(data.parent_uuid)
        self.assertEqual({}, data.inventory)
        self.assertEqual(frozenset(), data.traits)
        self.assertEqual([CN_UUID], self.tree.get_provider_uuids())

    def test_new_root_refuses_duplicates(self):
        self.assertRaises(ValueError, self.tree.new_root, CN_NAME,
                          'a1b2c3d4-0000-4000-8000-000000000002')
        self.assertRaises(ValueError, self.tree.new_root, 'other', CN_UUID)
        self.assertEqual([CN_UUID], self.tree.get_provider_uuids())

    def test_unknown_provider_raises(self):
        for method, args in ((self.tree.data, ()),
                             (self.tree.update_traits, ([],)),
                             (self.tree.update_inventory, ({},)),
                             (self.tree.has_traits, ([],)),
                             (self.tree.remove, ())):
            self.assertRaises(ValueError, method, 'nope', *args)

    def test_remove(self):
        self.tree.remove(CN_NAME)
        self.assertFalse(self.tree.exists(CN_UUID))
        self.assertEqual([], self.tree.get_provider_uuids())

    def test_data_is_a_copy(self):
        self.tree.update_inventory(CN_NAME, INVENTORY)
        data = self.tree.data(CN_NAME)
        data.inventory[orc.VCPU]['total'] = 1
        self.assertEqual(8, self.tree.data(CN_NAME).inventory[orc.VCPU][
            'total'])
        self.assertIsInstance(data.traits, frozenset)

    def test_update_traits_reports_change_and_generation(self):
        self.assertTrue(self.tree.update_traits(CN_NAME, [STATELESS], 4))
        self.assertEqual({STATELESS}, self.tree.data(CN_UUID).traits)
        self.assertEqual(4, self.tree.data(CN_UUID).generation)
        self.assertFalse(self.tree.update_traits(CN_NAME, {STATELESS}))
        # No generation given: the known one stays.
        self.assertEqual(4, self.tree.data(CN_UUID).generation)

    def test_add_and_remove_traits_keep_the_others(self):
        self.tree.update_traits(CN_NAME, ['CUSTOM_OPERATOR', UEFI])
        self.tree.add_traits(CN_NAME, STATELESS)
        self.assertEqual({'CUSTOM_OPERATOR', UEFI, STATELESS},
                         self.tree.data(CN_NAME).traits)
        self.tree.remove_traits(CN_NAME, STATELESS, 'CUSTOM_ABSENT')
        self.assertEqual({'CUSTOM_OPERATOR', UEFI},
                         self.tree.data(CN_NAME).traits)

    def test_has_traits_and_have_traits_changed(self):
        self.tree.update_traits(CN_NAME, [STATELESS, UEFI])
        self.assertTrue(self.tree.has_traits(CN_NAME, [STATELESS]))
        self.assertTrue(self.tree.has_traits(CN_NAME, []))
        self.assertFalse(self.tree.has_traits(CN_NAME, [STATELESS, 'X']))
        self.assertFalse(self.tree.have_traits_changed(
            CN_NAME, [UEFI, STATELESS]))
        self.assertTrue(self.tree.have_traits_changed(CN_NAME, [UEFI]))

    def test_update_inventory(self):
        self.assertTrue(self.tree.update_inventory(CN_NAME, INVENTORY, 7))
        self.assertEqual(INVENTORY, self.tree.data(CN_NAME).inventory)
        self.assertEqual(7, self.tree.data(CN_NAME).generation)
        self.assertFalse(self.tree.update_inventory(CN_NAME, INVENTORY))

    def test_inventory_compared_with_placement_defaults(self):
        # Placement answers with every field filled in; a driver usually
        # gives only some. Equal once defaults are applied means no write.
        as_placement_has_it = {
            orc.VCPU: {'total': 8, 'reserved': 0, 'min_unit': 1,
                       'max_unit': 2147483647, 'step_size': 1,
                       'allocation_ratio': 16.0},
            orc.MEMORY_MB: {'total': 16384, 'reserved': 512, 'min_unit': 1,
                            'max_unit': 2147483647, 'step_size': 1,
                            'allocation_ratio': 1.0},
        }
        self.tree.update_inventory(CN_NAME, as_placement_has_it)
        self.assertFalse(self.tree.has_inventory_changed(CN_NAME, INVENTORY))

    def test_inventory_changes_detected(self):
        self.tree.update_inventory(CN_NAME, INVENTORY)
        more_cpus = {orc.VCPU: {'total': 16, 'allocation_ratio': 16.0},
                     orc.MEMORY_MB: INVENTORY[orc.MEMORY_MB]}
        self.assertTrue(self.tree.has_inventory_changed(CN_NAME, more_cpus))
        # Leaving out 'reserved' resets it to 0 in placement: a change.
        no_reserved = {orc.VCPU: INVENTORY[orc.VCPU],
                       orc.MEMORY_MB: {'total': 16384}}
        self.assertTrue(self.tree.has_inventory_changed(
            CN_NAME, no_reserved))
        with_disk = dict(INVENTORY, **{orc.DISK_GB: {'total': 100}})
        self.assertTrue(self.tree.has_inventory_changed(CN_NAME, with_disk))
        self.assertTrue(self.tree.has_inventory_changed(CN_NAME, {}))
