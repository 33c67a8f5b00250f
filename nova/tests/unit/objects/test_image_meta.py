import copy

from oslo_versionedobjects import fixture as ovo_fixture

from nova import exception
from nova import objects
from nova.objects import fields
from nova.objects import image_meta as image_meta_obj
from nova import test

IMAGE_ID = 'a2459075-d96c-40d5-893e-577ff92e721c'


class TestImageMetaProps(test.NoDBTestCase):

    def test_stateless_true_from_glance_strings(self):
        image_meta = objects.ImageMeta.from_dict({
            'id': IMAGE_ID,
            'properties': {'hw_firmware_type': 'uefi',
                           'hw_firmware_stateless': 'true'}})
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)
        self.assertEqual('uefi', image_meta.properties.hw_firmware_type)

    def test_every_boolean_spelling(self):
        for value in ('1', 't', 'true', 'on', 'y', 'yes', 'True', 'YES',
                      ' true '):
            props = objects.ImageMetaProps.from_dict(
                {'hw_firmware_stateless': value})
            self.assertIs(True, props.hw_firmware_stateless, value)
        for value in ('0', 'f', 'false', 'off', 'n', 'no', 'False'):
            props = objects.ImageMetaProps.from_dict(
                {'hw_firmware_stateless': value})
            self.assertIs(False, props.hw_firmware_stateless, value)
        for value in (True, False):
            props = objects.ImageMetaProps.from_dict(
                {'hw_firmware_stateless': value})
            self.assertIs(value, props.hw_firmware_stateless)

    def test_misspelt_boolean_is_refused_not_false(self):
        for value in ('ture', 'yes please', '', 'enabled', '2', 'none'):
            ex = self.assertRaises(
                exception.InvalidImagePropertyValue,
                objects.ImageMetaProps.from_dict,
                {'hw_firmware_stateless': value})
            message = ex.format_message()
            self.assertIn("'hw_firmware_stateless'", message)
            self.assertIn("'%s'" % value, message)
            self.assertIn("'true'", message)
            self.assertIn("'false'", message)
            self.assertEqual(400, ex.code)

    def test_bad_enum_values_name_the_accepted_ones(self):
        cases = {
            'hw_firmware_type': ('efi', "'uefi', 'bios'"),
            'os_secure_boot': ('yes', "'required', 'disabled', 'optional'"),
            'hw_mem_encryption_model': (
                'sev', "'amd-sev', 'amd-sev-es', 'amd-sev-snp', 'intel-tdx'"),
            'hw_architecture': ('sparc', "'aarch64', 'i686', 'x86_64'"),
        }
        for name, (value, accepted) in cases.items():
            ex = self.assertRaises(
                exception.InvalidImagePropertyValue,
                objects.ImageMetaProps.from_dict, {name: value})
            self.assertEqual(
                "Invalid value '%s' for image property '%s': accepted "
                "values are %s." % (value, name, accepted),
                ex.format_message())

    def test_unset_reads_as_default(self):
        props = objects.ImageMetaProps.from_dict({})
        self.assertIsNone(props.get('hw_firmware_stateless'))
        self.assertFalse(props.get('hw_firmware_stateless', False))
        self.assertRaises(AttributeError, props.get, 'hw_no_such_thing')

    def test_get_reads_the_value_as_it_is_now(self):
        props = objects.ImageMetaProps.from_dict({'hw_firmware_type': 'uefi'})
        self.assertEqual('uefi', props.get('hw_firmware_type'))
        props.hw_firmware_type = 'bios'
        self.assertEqual('bios', props.get('hw_firmware_type', 'uefi'))
        props.hw_firmware_stateless = False
        self.assertIs(False, props.get('hw_firmware_stateless', True))
        del props.hw_firmware_type
        self.assertEqual('uefi', props.get('hw_firmware_type', 'uefi'))
        self.assertIsNone(props.get('hw_firmware_type'))

    def test_unknown_properties_are_ignored(self):
        props = objects.ImageMetaProps.from_dict(
            {'hw_firmware_type': 'bios', 'os_distro': 'debian'})
        self.assertEqual({'hw_firmware_type'}, set(props.obj_what_changed()))

    def test_legacy_architecture_name(self):
        props = objects.ImageMetaProps.from_dict({'architecture': 'amd64'})
        self.assertEqual(fields.Architecture.X86_64, props.hw_architecture)
        props = objects.ImageMetaProps.from_dict(
            {'architecture': 'x86_64', 'hw_architecture': 'aarch64'})
        self.assertEqual(fields.Architecture.AARCH64, props.hw_architecture)


class TestImageMetaPropsVersions(test.NoDBTestCase):

    def _props(self):
        return objects.ImageMetaProps.from_dict(
            {'hw_firmware_type': 'uefi', 'hw_firmware_stateless': 'true',
             'hw_machine_type': 'q35'})

    def test_backport_to_1_37_drops_stateless(self):
        primitive = self._props().obj_to_primitive(target_version='1.37')
        data = primitive['nova_object.data']
        self.assertEqual('1.37', primitive['nova_object.version'])
        self.assertNotIn('hw_firmware_stateless', data)
        self.assertEqual('uefi', data['hw_firmware_type'])
        self.assertEqual('q35', data['hw_machine_type'])

    def test_1_38_keeps_stateless(self):
        primitive = self._props().obj_to_primitive(target_version='1.38')
        self.assertIs(
            True, primitive['nova_object.data']['hw_firmware_stateless'])

    def test_image_meta_backport_through_manifest(self):
        image_meta = objects.ImageMeta(
            id=IMAGE_ID, properties=self._props())
        primitive = image_meta.obj_to_primitive(
            version_manifest={'ImageMeta': '1.8', 'ImageMetaProps': '1.37'})
        props = primitive['nova_object.data']['properties']
        self.assertEqual('1.37', props['nova_object.version'])
        self.assertNotIn('hw_firmware_stateless', props['nova_object.data'])

    def _backport(self, target, **props):
        props = objects.ImageMetaProps.from_dict(props)
        primitive = props.obj_to_primitive(target_version=target)
        self.assertEqual(target, primitive['nova_object.version'])
        return primitive['nova_object.data']

    def test_each_field_from_the_version_nova_added_it(self):
        # hw_firmware_stateless came in 1.38, hw_mem_encryption_model in
        # 1.42, as in Nova; 1.39 to 1.41 changed nothing this object has.
        enc = {'hw_firmware_type': 'uefi', 'hw_mem_encryption': 'true',
               'hw_firmware_stateless': 'true',
               'hw_mem_encryption_model': 'amd-sev'}
        cases = (
            ('1.44', set(enc)),
            ('1.42', set(enc)),
            ('1.41', set(enc) - {'hw_mem_encryption_model'}),
            ('1.38', set(enc) - {'hw_mem_encryption_model'}),
            ('1.37', {'hw_firmware_type', 'hw_mem_encryption'}),
        )
        for target, expected in cases:
            data = self._backport(target, **enc)
            self.assertEqual(expected, set(data), target)
            self.assertIs(True, data['hw_mem_encryption'], target)

    def test_models_older_services_cannot_hold_are_refused(self):
        # Dropping the model would make an older service read the request
        # as plain AMD SEV (and below 1.38 also drop the stateless firmware
        # SEV-SNP and TDX need), so the backport is refused.
        cases = (
            ('intel-tdx', '1.44', ('1.43', '1.42', '1.37')),
            ('amd-sev-snp', '1.43', ('1.42', '1.41', '1.38', '1.37')),
            ('amd-sev-es', '1.42', ('1.41', '1.38', '1.37')),
        )
        for model, first, refused in cases:
            props = {'hw_firmware_type': 'uefi', 'hw_mem_encryption': 'true',
                     'hw_firmware_stateless': 'true',
                     'hw_mem_encryption_model': model}
            self.assertEqual(model, self._backport(first, **props)[
                'hw_mem_encryption_model'])
            for target in refused:
                ex = self.assertRaises(
                    exception.ObjectActionError,
                    objects.ImageMetaProps.from_dict(props).obj_to_primitive,
                    target_version=target)
                self.assertIn(
                    'hw_mem_encryption_model=%s not supported in version '
                    '%s' % (model, tuple(int(n) for n in target.split('.'))),
                    ex.format_message())

    def test_refused_inside_a_request_spec_too(self):
        image = objects.ImageMeta.from_dict({'id': IMAGE_ID, 'properties': {
            'hw_firmware_type': 'uefi', 'hw_mem_encryption': 'true',
            'hw_firmware_stateless': 'true',
            'hw_mem_encryption_model': 'amd-sev-snp'}})
        spec = objects.RequestSpec.from_components(
            IMAGE_ID, image, objects.Flavor(vcpus=1, memory_mb=512,
                                            root_gb=1))
        manifest = {'RequestSpec': '1.14', 'ImageMeta': '1.8',
                    'Flavor': '1.2'}
        self.assertRaises(
            exception.ObjectActionError, spec.obj_to_primitive,
            version_manifest=dict(manifest, ImageMetaProps='1.37'))
        primitive = spec.obj_to_primitive(
            version_manifest=dict(manifest, ImageMetaProps='1.43'))
        props = primitive['nova_object.data']['image']['nova_object.data'][
            'properties']
        self.assertEqual('1.43', props['nova_object.version'])
        self.assertEqual('amd-sev-snp', props['nova_object.data'][
            'hw_mem_encryption_model'])

    def test_primitive_from_older_service_is_read(self):
        old = {
            'nova_object.name': 'ImageMetaProps',
            'nova_object.namespace': 'nova',
            'nova_object.version': '1.37',
            'nova_object.data': {'hw_firmware_type': 'uefi'},
        }
        props = objects.ImageMetaProps.obj_from_primitive(old)
        self.assertEqual('uefi', props.hw_firmware_type)
        self.assertIsNone(props.get('hw_firmware_stateless'))

    def test_round_trip_at_current_version(self):
        props = objects.ImageMetaProps.obj_from_primitive(
            self._props().obj_to_primitive())
        self.assertIs(True, props.hw_firmware_stateless)


class TestImageMeta(test.NoDBTestCase):

    def test_from_dict_glance_nulls(self):
        image_meta = objects.ImageMeta.from_dict({
            'id': IMAGE_ID, 'name': None, 'min_ram': None, 'size': None,
            'disk_format': 'qcow2', 'visibility': 'public'})
        self.assertEqual(0, image_meta.min_ram)
        self.assertEqual(0, image_meta.size)
        self.assertIsNone(image_meta.properties.get('hw_firmware_type'))

    def test_from_dict_leaves_the_image_dict_alone(self):
        image = {'id': IMAGE_ID, 'name': 'bench', 'min_ram': None,
                 'properties': {'architecture': 'amd64',
                                'hw_firmware_stateless': 'yes'}}
        before = copy.deepcopy(image)
        image_meta = objects.ImageMeta.from_dict(image)
        self.assertEqual(before, image)
        # Nor does the object change with the dict afterwards.
        image['name'] = 'other'
        image['properties']['hw_firmware_stateless'] = 'no'
        self.assertEqual('bench', image_meta.name)
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)
        self.assertEqual(fields.Architecture.X86_64,
                         image_meta.properties.hw_architecture)

    def test_from_dict_bad_property(self):
        self.assertRaises(
            exception.InvalidImagePropertyValue,
            objects.ImageMeta.from_dict,
            {'properties': {'hw_firmware_stateless': 'maybe'}})

    def test_from_instance_reads_stashed_properties(self):
        instance = objects.Instance(
            id=1, image_ref=IMAGE_ID,
            system_metadata={
                'image_hw_firmware_type': 'uefi',
                'image_hw_firmware_stateless': 'True',
                'image_min_ram': '0',
                'image_disk_format': 'qcow2',
                'owner_user_name': 'demo',
            })
        image_meta = instance.image_meta
        self.assertEqual(IMAGE_ID, image_meta.id)
        self.assertEqual('qcow2', image_meta.disk_format)
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)

    def test_stored_values_read_as_nova_read_them(self):
        # Stored by a Nova whose API accepted them: FlexibleBooleanField
        # reads any non-boolean as false.
        instance = objects.Instance(
            id=1, uuid=IMAGE_ID, image_ref=IMAGE_ID, system_metadata={
                'image_hw_firmware_type': 'uefi',
                'image_hw_firmware_stateless': 'ture',
                'image_hw_mem_encryption': 'enabled',
                'image_os_secure_boot': 'Required',
                'image_hw_machine_type': 'q35',
            })
        props = instance.image_meta.properties
        self.assertIs(False, props.hw_firmware_stateless)
        self.assertIs(False, props.hw_mem_encryption)
        # No Nova defines this spelling: ignored, as if unset.
        self.assertIsNone(props.get('os_secure_boot'))
        # What was valid is read as it is.
        self.assertEqual('uefi', props.hw_firmware_type)
        self.assertEqual('q35', props.hw_machine_type)

        log = self.stdlog.output
        for name, value, reading in (
                ('hw_firmware_stateless', 'ture', "read as 'false'"),
                ('hw_mem_encryption', 'enabled', "read as 'false'"),
                ('os_secure_boot', 'Required', 'ignored, as if unset')):
            self.assertIn(
                "WARNING nova.objects.image_meta Invalid value '%s' for "
                "image property '%s': accepted values are " % (value, name),
                log)
            self.assertIn(
                'stored with instance %s and is %s' % (IMAGE_ID, reading),
                log)

    def test_accepted_values_for_strings(self):
        self.assertEqual(
            'any string', image_meta_obj.accepted_values('hw_machine_type'))


class TestObjectVersions(test.NoDBTestCase):
    """Any change to the fields of an object must bump its version."""

    expected_fingerprints = {
        'Flavor': '1.2-668135cef26b9f0802653a5341e21dcd',
        'ImageMeta': '1.8-e3fa14d9d5130bf73219a19310cedf0d',
        'ImageMetaProps': '1.44-fc896e4e32c85196f48010bb8268d9d0',
        'Instance': '2.7-c2467906220bc3ea92ece43a8d142ccf',
        'RequestSpec': '1.14-f342f36bb50ccc59437f4e9d0c398dfa',
    }

    def test_versions(self):
        checker = ovo_fixture.ObjectVersionChecker(
            {name: [cls] for name, cls in
             ((n, getattr(objects, n)) for n in self.expected_fingerprints)})
        expected, actual = checker.test_hashes(self.expected_fingerprints)
        self.assertEqual(expected, actual,
                         'Object fields changed: bump the version and '
                         'update the fingerprint')
