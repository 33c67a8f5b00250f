"""Tests for the Glance metadata definitions shipped in etc/glance/metadefs.

Glance loads metadefs with ``glance-manage db load_metadefs`` and Horizon
builds its image property forms from them. Glance has defined
``hw_firmware_stateless`` in its own ``OS::Compute::LibvirtImage``
namespace since 2024.2; the file shipped here adds that one property to the
same namespace of an older Glance (``--merge``), so Horizon never shows the
property twice. A definition that does not follow Glance's format fails to
load; one that names a property Nova does not read, or types it
differently from Nova, offers users a form field that does nothing or
produces values Nova refuses.
"""

import glob
import json
import os

from nova import exception
from nova import objects
from nova.objects import fields
from nova import test

METADEFS_DIR = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, os.pardir,
    'etc', 'glance', 'metadefs')

STATELESS_METADEF = 'compute-libvirt-image-stateless-firmware.json'

#: Glance's namespace of the libvirt driver's image properties
#: (glance/etc/metadefs/compute-libvirt-image.json), and the attributes a
#: merge must not change: ``load_metadefs --merge`` keeps those of the
#: namespace already loaded, but a file loaded first creates the namespace
#: with its own.
GLANCE_NAMESPACE = 'OS::Compute::LibvirtImage'
GLANCE_NAMESPACE_ATTRS = {
    'display_name': 'libvirt Driver Options for Images',
    'visibility': 'public',
    'protected': True,
    'resource_type_associations': [{'name': 'OS::Glance::Image'}],
}
#: How Glance 2024.2 and later define the property: the merged definition
#: must give the same form field.
GLANCE_PROPERTY = {'title': 'Stateless Firmware', 'type': 'boolean'}

# Glance's namespace schema (glance/api/v2/metadef_namespaces.py): the
# attributes a namespace file may have, their JSON types and length limits.
NAMESPACE_ATTRS = {
    'namespace': str,
    'display_name': str,
    'description': str,
    'visibility': str,
    'protected': bool,
    'owner': str,
    'resource_type_associations': list,
    'properties': dict,
    'objects': list,
    'tags': list,
}
NAMESPACE_MAX_LENGTHS = {
    'namespace': 80,
    'display_name': 80,
    'description': 500,
}
VISIBILITIES = ('public', 'private')
RESOURCE_TYPE_ASSOCIATION_ATTRS = ('name', 'prefix', 'properties_target')
IMAGE_RESOURCE_TYPE = 'OS::Glance::Image'

# Glance's property schema: 'title' and 'type' are required.
PROPERTY_REQUIRED_ATTRS = ('title', 'type')
PROPERTY_TYPES = ('array', 'boolean', 'integer', 'number', 'object',
                  'string')

# The JSON schema type a Nova field type must be described with.
FIELD_TYPES = (
    (fields.FlexibleBooleanField, 'boolean'),
    (fields.BooleanField, 'boolean'),
    (fields.IntegerField, 'integer'),
    (fields.BaseEnumField, 'string'),
    (fields.StringField, 'string'),
)


def load_metadef(name: str) -> dict:
    with open(os.path.join(METADEFS_DIR, name), encoding='utf-8') as f:
        return json.load(f)


def expected_json_type(field: fields.Field) -> str:
    for field_class, json_type in FIELD_TYPES:
        if isinstance(field, field_class):
            return json_type
    raise AssertionError('no JSON type known for %r' % field)


class TestMetadefFormat(test.NoDBTestCase):
    """Every shipped metadef follows Glance's namespace format."""

    def _metadefs(self) -> list[str]:
        names = sorted(os.path.basename(p) for p in
                       glob.glob(os.path.join(METADEFS_DIR, '*.json')))
        self.assertIn(STATELESS_METADEF, names)
        return names

    def test_namespace_attributes(self):
        for name in self._metadefs():
            metadef = load_metadef(name)
            self.assertIn('namespace', metadef, name)
            for attr, value in metadef.items():
                self.assertIn(attr, NAMESPACE_ATTRS,
                              '%s: unknown attribute %r' % (name, attr))
                self.assertIsInstance(value, NAMESPACE_ATTRS[attr],
                                      '%s: %s' % (name, attr))
            for attr, limit in NAMESPACE_MAX_LENGTHS.items():
                self.assertLessEqual(len(metadef.get(attr, '')), limit,
                                     '%s: %s is too long' % (name, attr))
            self.assertIn(metadef.get('visibility', 'public'), VISIBILITIES,
                          name)

    def test_associated_with_images(self):
        for name in self._metadefs():
            associations = load_metadef(name)['resource_type_associations']
            for association in associations:
                self.assertIsInstance(association, dict, name)
                self.assertEqual(
                    set(), set(association) - set(
                        RESOURCE_TYPE_ASSOCIATION_ATTRS), name)
            self.assertIn(IMAGE_RESOURCE_TYPE,
                          [a['name'] for a in associations], name)

    def test_property_definitions(self):
        for name in self._metadefs():
            for prop, definition in load_metadef(name)['properties'].items():
                where = '%s: %s' % (name, prop)
                for attr in PROPERTY_REQUIRED_ATTRS:
                    self.assertIn(attr, definition, where)
                    self.assertIsInstance(definition[attr], str, where)
                self.assertIn(definition['type'], PROPERTY_TYPES, where)
                self.assertIsInstance(definition.get('description', ''), str,
                                      where)


class TestMetadefMatchesNova(test.NoDBTestCase):
    """The properties a metadef offers are the ones Nova reads, typed as
    Nova types them.
    """

    def test_properties_are_image_meta_props_fields(self):
        props = load_metadef(STATELESS_METADEF)['properties']
        self.assertEqual(['hw_firmware_stateless'], sorted(props))
        for prop in props:
            self.assertIn(prop, objects.ImageMetaProps.fields)

    def test_types_match_fields(self):
        for prop, definition in load_metadef(
                STATELESS_METADEF)['properties'].items():
            field = objects.ImageMetaProps.fields[prop]
            self.assertEqual(expected_json_type(field), definition['type'],
                             prop)

    def test_glance_boolean_values_are_read(self):
        # Glance stores image properties as strings, and Horizon writes a
        # boolean metadef property as 'true' or 'false'.
        for value, expected in (('true', True), ('false', False),
                                ('True', True), ('False', False)):
            props = objects.ImageMetaProps.from_dict(
                {'hw_firmware_stateless': value})
            self.assertIs(expected, props.hw_firmware_stateless, value)

    def test_value_outside_the_boolean_type_is_refused(self):
        # What the metadef's boolean type rules out, Nova refuses rather
        # than reading it as false.
        ex = self.assertRaises(
            exception.InvalidImagePropertyValue,
            objects.ImageMetaProps.from_dict,
            {'hw_firmware_stateless': 'enabled'})
        self.assertIn("'hw_firmware_stateless'", str(ex))

    def test_description_says_it_needs_uefi(self):
        # The form text users read must not contradict Nova: stateless
        # firmware only applies to UEFI guests.
        description = load_metadef(STATELESS_METADEF)['properties'][
            'hw_firmware_stateless']['description']
        self.assertIn('UEFI', description)
        self.assertIn('hw_firmware_type', description)


class TestMetadefExtendsGlance(test.NoDBTestCase):
    """The property goes into Glance's own namespace, defined as Glance
    defines it, so that a merge adds it to an older Glance and changes
    nothing on a newer one.
    """

    def test_glances_namespace_not_a_new_one(self):
        for name in glob.glob(os.path.join(METADEFS_DIR, '*.json')):
            self.assertEqual(GLANCE_NAMESPACE,
                             load_metadef(name)['namespace'], name)

    def test_namespace_attributes_are_glances(self):
        metadef = load_metadef(STATELESS_METADEF)
        for attr, value in GLANCE_NAMESPACE_ATTRS.items():
            self.assertEqual(value, metadef[attr], attr)

    def test_property_defined_as_glance_defines_it(self):
        definition = load_metadef(STATELESS_METADEF)['properties'][
            'hw_firmware_stateless']
        for attr, value in GLANCE_PROPERTY.items():
            self.assertEqual(value, definition[attr], attr)
