"""Flavors: the sizes and extra specs a server is built with."""

from nova.objects import base
from nova.objects import fields


@base.NovaObjectRegistry.register
class Flavor(base.NovaObject):
    """A flavor, with only the fields the firmware flow needs."""

    # Version 1.0 - 1.2: Nova's history of this object.
    VERSION = '1.2'

    fields = {
        'id': fields.IntegerField(),
        'name': fields.StringField(nullable=True),
        'flavorid': fields.StringField(),
        'memory_mb': fields.NonNegativeIntegerField(),
        'vcpus': fields.NonNegativeIntegerField(),
        'root_gb': fields.NonNegativeIntegerField(),
        'ephemeral_gb': fields.NonNegativeIntegerField(),
        'swap': fields.NonNegativeIntegerField(),
        'extra_specs': fields.DictOfStringsField(),
    }

    def obj_load_attr(self, attrname: str) -> None:
        # Flavors here are built in memory, never lazy-loaded; unset sizes
        # read as zero and extra specs as empty, as for a new Nova flavor.
        defaults = {'extra_specs': {}, 'swap': 0, 'ephemeral_gb': 0}
        if attrname not in defaults:
            super().obj_load_attr(attrname)
        setattr(self, attrname, defaults[attrname])
        self.obj_reset_changes([attrname])
