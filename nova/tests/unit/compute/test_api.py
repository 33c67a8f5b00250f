from nova.compute import api as compute_api
from nova import exception
from nova import objects
from nova import test

IMAGE_ID = '155d900f-4e14-4e4c-a73d-069cbf4541e6'
OTHER_IMAGE_ID = 'b3c1a5e4-7e55-4c4b-9f7e-0d6d0f7a1c22'


def _flavor(**extra_specs):
    return objects.Flavor(vcpus=1, memory_mb=512, root_gb=1,
                          extra_specs=extra_specs)


def _image(image_id=IMAGE_ID, **props):
    return {'id': image_id, 'disk_format': 'qcow2',
            'container_format': 'bare', 'min_ram': 0, 'min_disk': 0,
            'properties': props}


class TestValidateFlavorImage(test.NoDBTestCase):

    def test_valid_stateless(self):
        image_meta = compute_api.validate_flavor_image(
            _flavor(), _image(hw_firmware_type='uefi',
                              hw_firmware_stateless='true'))
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)

    def test_every_user_error_is_invalid_and_named(self):
        cases = [
            (_flavor(), _image(hw_firmware_stateless='treu'),
             "'hw_firmware_stateless'"),
            (_flavor(), _image(hw_firmware_type='UEFI '),
             "'hw_firmware_type'"),
            (_flavor(), _image(os_secure_boot='on'), "'os_secure_boot'"),
            (_flavor(**{'os:secure_boot': 'yes'}), _image(),
             "'os:secure_boot'"),
            (_flavor(**{'os:secure_boot': 'required'}),
             _image(hw_firmware_type='uefi', os_secure_boot='disabled'),
             "os:secure_boot"),
            (_flavor(), _image(os_secure_boot='required'),
             "'hw_firmware_type'"),
            (_flavor(), _image(hw_mem_encryption='true',
                               hw_mem_encryption_model='intel-tdx',
                               hw_firmware_type='uefi'),
             "'hw_firmware_stateless'"),
            (_flavor(), _image(hw_mem_encryption='yess'),
             "'hw_mem_encryption'"),
            (_flavor(**{'hw:mem_encryption': 'true'}),
             _image(hw_firmware_type='bios'), "'hw_firmware_type'"),
            # It goes into the domain XML, which cannot carry it.
            (_flavor(), _image(hw_machine_type='q35\n'),
             "'hw_machine_type'"),
            (_flavor(), _image(hw_machine_type='q3\x005'),
             "'hw_machine_type'"),
        ]
        for flavor, image, named in cases:
            ex = self.assertRaises(
                exception.Invalid, compute_api.validate_flavor_image,
                flavor, image)
            self.assertIn(named, ex.format_message())
            self.assertEqual(400, ex.code)


class TestAPI(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.api = compute_api.API()

    def test_create_stashes_image_properties(self):
        instance, request_spec = self.api.create(
            _flavor(), _image(hw_firmware_type='uefi',
                              hw_firmware_stateless='true'),
            display_name='vm1')
        self.assertEqual('true', instance.system_metadata[
            'image_hw_firmware_stateless'])
        self.assertEqual('qcow2',
                         instance.system_metadata['image_disk_format'])
        self.assertEqual(IMAGE_ID, instance.image_ref)
        self.assertEqual(instance.uuid, request_spec.instance_uuid)
        self.assertIs(True, request_spec.image.properties.
                      hw_firmware_stateless)
        self.assertIs(True, instance.image_meta.properties.
                      hw_firmware_stateless)

    def test_create_refuses_bad_input_before_building_anything(self):
        self.assertRaises(
            exception.InvalidImagePropertyValue, self.api.create,
            _flavor(), _image(hw_firmware_stateless='maybe'))

    def test_rebuild_replaces_stashed_properties(self):
        instance, _ = self.api.create(
            _flavor(), _image(hw_firmware_type='uefi',
                              hw_firmware_stateless='true'))
        instance.system_metadata['owner_project_name'] = 'demo'
        request_spec = self.api.rebuild(
            instance, _image(OTHER_IMAGE_ID, hw_firmware_type='uefi'))
        self.assertNotIn('image_hw_firmware_stateless',
                         instance.system_metadata)
        self.assertEqual('demo',
                         instance.system_metadata['owner_project_name'])
        self.assertEqual(OTHER_IMAGE_ID, instance.image_ref)
        self.assertIsNone(instance.image_meta.properties.get(
            'hw_firmware_stateless'))
        self.assertIsNone(request_spec.image.properties.get(
            'hw_firmware_stateless'))

    def test_rebuild_refuses_bad_image_and_keeps_instance(self):
        instance, _ = self.api.create(
            _flavor(), _image(hw_firmware_type='uefi',
                              hw_firmware_stateless='true'))
        before = dict(instance.system_metadata)
        self.assertRaises(
            exception.InvalidImagePropertyValue, self.api.rebuild,
            instance, _image(OTHER_IMAGE_ID, hw_firmware_stateless='nah'))
        self.assertEqual(before, instance.system_metadata)
        self.assertEqual(IMAGE_ID, instance.image_ref)
