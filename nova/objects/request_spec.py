"""Request specs: what the scheduler is asked to place."""

import typing as ty

from nova import objects
from nova.objects import base
from nova.objects import fields


@base.NovaObjectRegistry.register
class RequestSpec(base.NovaObject):
    """A request spec, with only the fields the firmware flow needs."""

    # Version 1.0 - 1.14: Nova's history of this object.
    VERSION = '1.14'

    fields = {
        'instance_uuid': fields.UUIDField(),
        'num_instances': fields.IntegerField(default=1),
        'is_bfv': fields.BooleanField(default=False),
        'flavor': fields.ObjectField('Flavor'),
        'image': fields.ObjectField('ImageMeta', nullable=True),
    }

    @classmethod
    def from_components(
        cls,
        instance_uuid: str,
        image: ty.Optional['objects.ImageMeta'],
        flavor: 'objects.Flavor',
        num_instances: int = 1,
        is_bfv: bool = False,
    ) -> 'RequestSpec':
        return cls(instance_uuid=instance_uuid, image=image, flavor=flavor,
                   num_instances=num_instances, is_bfv=is_bfv)

    def obj_load_attr(self, attrname: str) -> None:
        if attrname not in ('image', 'is_bfv', 'num_instances'):
            super().obj_load_attr(attrname)
        defaults = {'image': None, 'is_bfv': False, 'num_instances': 1}
        setattr(self, attrname, defaults[attrname])
        self.obj_reset_changes([attrname])
