"""Instances whose stored image properties the API would refuse today.

Nova's ``FlexibleBooleanField`` reads any value that is not a boolean as
false, so a Nova deployment accepted an image with, say,
``hw_firmware_stateless=ture`` and booted it with ordinary (stateful)
firmware. The API here refuses such a value, but an instance built that
way already exists, with the value stashed in its system metadata, and must
keep working: hard reboot, power on and rebuild of its XML read the stored
value as Nova read it, on real QEMU.
"""

from oslo_utils import uuidutils

from nova import objects
from nova.tests.functional.libvirt import base
from nova import utils
from nova.virt.libvirt import driver as libvirt_driver


class StoredPropertiesTestCase(base.LibvirtBootTestCase):

    def instance_created_elsewhere(self, **properties) -> 'objects.Instance':
        """An instance as another Nova created it: its image's properties
        stashed as they came from Glance, with no validation here.
        """
        image = base.make_image()
        image['properties'].update(properties)
        return objects.Instance(
            id=next(base._INSTANCE_IDS), uuid=uuidutils.generate_uuid(),
            display_name='created-elsewhere', image_ref=image['id'],
            flavor=self.flavor, host=base.COMPUTE_HOST,
            node=base.COMPUTE_HOST, vm_state='active', task_state=None,
            system_metadata=utils.get_system_metadata_from_image(image))

    def test_lenient_boolean_keeps_booting_as_it_was_built(self):
        instance = self.instance_created_elsewhere(
            hw_firmware_stateless='ture')
        self.driver.spawn(self.context, instance, instance.image_meta)
        nvram = self.assert_stateful(instance)

        self.driver.reboot(self.context, instance, None,
                           libvirt_driver.REBOOT_HARD)
        self.assert_running(instance)
        # The same guest as before: stateful, with its own variable store.
        self.assertEqual(nvram, self.assert_stateful(instance))
        self.assertIn(
            "Invalid value 'ture' for image property "
            "'hw_firmware_stateless'", self.stdlog.output)
        self.assertIn("stored with instance %s and is read as 'false'" %
                      instance.uuid, self.stdlog.output)

        self.driver.destroy(self.context, instance)
        self.assert_gone(instance)
