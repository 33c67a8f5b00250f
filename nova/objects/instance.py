"""Instances: a server as the compute driver sees it."""

from nova import objects
from nova.objects import base
from nova.objects import fields

#: Nova's default ``instance_name_template``: the libvirt domain name.
INSTANCE_NAME_TEMPLATE = 'instance-%08x'


@base.NovaObjectRegistry.register
class Instance(base.NovaObject):
    """An instance, with only the fields the firmware flow needs."""

    # Version 1.0 - 2.7: Nova's history of this object.
    VERSION = '2.7'

    fields = {
        'id': fields.IntegerField(),
        'uuid': fields.UUIDField(),
        'display_name': fields.StringField(nullable=True),
        'image_ref': fields.StringField(nullable=True),
        'host': fields.StringField(nullable=True),
        'node': fields.StringField(nullable=True),
        'vm_state': fields.StringField(nullable=True),
        'task_state': fields.StringField(nullable=True),
        'flavor': fields.ObjectField('Flavor'),
        'system_metadata': fields.DictOfNullableStringsField(),
    }

    @property
    def name(self) -> str:
        """The hypervisor's name of the instance (libvirt domain name)."""
        return INSTANCE_NAME_TEMPLATE % self.id

    @property
    def image_meta(self) -> 'objects.ImageMeta':
        """The image as the instance stashed it at build or rebuild."""
        return objects.ImageMeta.from_instance(self)

    def obj_load_attr(self, attrname: str) -> None:
        if attrname != 'system_metadata':
            super().obj_load_attr(attrname)
        self.system_metadata = {}
        self.obj_reset_changes(['system_metadata'])
