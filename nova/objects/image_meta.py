"""Image metadata as Nova reads it from Glance or from an instance."""

import typing as ty

from oslo_log import log as logging
from oslo_utils import strutils
from oslo_utils import versionutils

from nova import exception
from nova import objects
from nova.objects import base
from nova.objects import fields
from nova import utils

LOG = logging.getLogger(__name__)

#: Image properties renamed in the past, old name -> current name.
LEGACY_PROPERTY_NAMES = {
    'architecture': 'hw_architecture',
}


@base.NovaObjectRegistry.register
class ImageMeta(base.NovaObject):
    """A Glance image: its attributes and its (typed) properties."""

    # Version 1.0 - 1.8: Nova's history of this object.
    VERSION = '1.8'

    fields = {
        'id': fields.UUIDField(),
        'name': fields.StringField(nullable=True),
        'status': fields.StringField(),
        'checksum': fields.StringField(nullable=True),
        'container_format': fields.StringField(),
        'disk_format': fields.StringField(),
        'min_disk': fields.IntegerField(),
        'min_ram': fields.IntegerField(),
        'size': fields.IntegerField(),
        'properties': fields.ObjectField('ImageMetaProps'),
    }

    @classmethod
    def from_dict(
        cls,
        image_meta: ty.Mapping[str, ty.Any],
        strict: bool = True,
        instance: ty.Optional['objects.Instance'] = None,
    ) -> 'ImageMeta':
        """Create an ImageMeta from a Glance image dict.

        Property values come from Glance as strings and are coerced to the
        types of ``ImageMetaProps``. Unknown keys are ignored, as Glance
        images carry many that Nova does not model.

        :param strict: True for a request entering Nova: a value that cannot
            be read raises :class:`nova.exception.InvalidImagePropertyValue`.
            False for properties already stored with an instance: such a
            value is read as Nova has always read it, with a warning (see
            :meth:`ImageMetaProps.from_dict`).
        :param instance: the instance the properties are stored with, named
            in those warnings.
        """
        # The dict is only read, and every value is coerced by its field
        # (to a string, a number, a boolean) as it is set: no mutable
        # value of the caller's ends up in the object, so no copy is made.
        image_meta = image_meta or {}
        props = ImageMetaProps.from_dict(image_meta.get('properties') or {},
                                         strict=strict, instance=instance)
        image_meta = {k: v for k, v in image_meta.items()
                      if k in cls.fields and v is not None}
        image_meta['properties'] = props
        # Glance may answer None for these; Nova reads them as 0.
        for key in ('min_disk', 'min_ram', 'size'):
            image_meta.setdefault(key, 0)
        return cls(**image_meta)

    @classmethod
    def from_instance(cls, instance: 'objects.Instance') -> 'ImageMeta':
        """Create an ImageMeta from the ``image_*`` keys an instance stashed.

        After the first boot these, not Glance, are the source of truth.
        They are read tolerantly: the instance may have been created by a
        Nova that accepted values the API here refuses (``hw_*`` booleans
        such as ``ture``), and it must keep booting as it was created.
        """
        sysmeta = instance.system_metadata or {}
        image_meta = utils.get_image_from_system_metadata(sysmeta)
        if instance.obj_attr_is_set('image_ref') and instance.image_ref:
            image_meta.setdefault('id', instance.image_ref)
        return cls.from_dict(image_meta, strict=False, instance=instance)


@base.NovaObjectRegistry.register
class ImageMetaProps(base.NovaObject):
    """The image properties this tree reads.

    Nova's ImageMetaProps carries many more; the ones here are those the
    firmware flow touches, with Nova's names, types and version numbers.
    """

    # Version 1.0 - 1.37: Nova's history; of its fields this object carries
    #                     hw_architecture, hw_firmware_type, hw_machine_type,
    #                     hw_mem_encryption and os_secure_boot.
    # Version 1.38: Added 'hw_firmware_stateless' field
    # Version 1.39 - 1.41: Nova's history (hw_vif_model 'igb',
    #                      hw_sound_model, hw_usb_model and
    #                      hw_redirected_usb_ports), not carried here.
    # Version 1.42: Added 'hw_mem_encryption_model' field
    # Version 1.43: Added 'amd-sev-snp' as an option to
    #               hw_mem_encryption_model
    # Version 1.44: Added 'intel-tdx' as an option to hw_mem_encryption_model
    VERSION = '1.44'

    fields = {
        'hw_architecture': fields.ArchitectureField(),
        'hw_firmware_stateless': fields.FlexibleBooleanField(),
        'hw_firmware_type': fields.FirmwareTypeField(),
        'hw_machine_type': fields.StringField(),
        'hw_mem_encryption': fields.FlexibleBooleanField(),
        'hw_mem_encryption_model': fields.MemEncryptionModelField(),
        'os_secure_boot': fields.SecureBootField(),
    }

    def obj_make_compatible(self, primitive: dict,
                            target_version: str) -> None:
        """Backport to ``target_version``, as Nova's own object does.

        A field the target does not have is dropped when the older service
        then reads the request the same way; a value it cannot hold is
        refused with ``ObjectActionError``, since dropping it would quietly
        give the guest less protection than it asked for.
        """
        super().obj_make_compatible(primitive, target_version)
        target = versionutils.convert_version_to_tuple(target_version)
        model = fields.MemEncryptionModel
        if target < (1, 44):
            base.raise_on_too_new_values(
                target, primitive, 'hw_mem_encryption_model',
                (model.INTEL_TDX,))
        if target < (1, 43):
            # Dropped, the model would read as plain SEV on the older
            # service (and below 1.38 without the stateless firmware
            # SEV-SNP needs): refuse instead.
            base.raise_on_too_new_values(
                target, primitive, 'hw_mem_encryption_model',
                (model.AMD_SEV_SNP,))
        if target < (1, 42):
            # Before 1.42 memory encryption always meant AMD SEV. Nova
            # drops any model here; SEV-ES would then become plain SEV on
            # the older service, so only the model it assumes anyway goes.
            base.raise_on_too_new_values(
                target, primitive, 'hw_mem_encryption_model',
                (model.AMD_SEV_ES,))
            primitive.pop('hw_mem_encryption_model', None)
        if target < (1, 38):
            # An older service cannot boot stateless firmware; it must not
            # see the field rather than misread it.
            primitive.pop('hw_firmware_stateless', None)

    def get(self, name: str, defvalue: ty.Any = None) -> ty.Any:
        """Get the value of a property, or ``defvalue`` when it is unset.

        :raises AttributeError: if ``name`` is not a known property.
        """
        # One lookup of the field's storage: ``obj_attr_is_set`` and the
        # field's property would each look it up again, and the API, the
        # scheduler and the driver read properties many times per request.
        try:
            attrname = _STORAGE[name]
        except KeyError:
            raise AttributeError(
                "'%s' object has no attribute '%s'" % (
                    self.obj_name(), name)) from None
        return getattr(self, attrname, defvalue)

    @classmethod
    def from_dict(
        cls,
        image_props: ty.Mapping[str, ty.Any],
        strict: bool = True,
        instance: ty.Optional['objects.Instance'] = None,
    ) -> 'ImageMetaProps':
        """Create an ImageMetaProps from Glance image properties.

        :param strict: where a request enters Nova (server create, rebuild)
            booleans are strict: a misspelt ``hw_firmware_stateless`` must
            not be read as false and quietly give writable firmware. For
            properties stored with an instance (``strict=False``) a boolean
            that is not one is read as false, as Nova's
            ``FlexibleBooleanField`` reads it and so as the instance was
            built by a Nova that accepted it; any other value that cannot be
            read is ignored, as if unset. Both are logged as warnings.
        :param instance: the instance the properties are stored with, for
            the warnings.
        :raises nova.exception.InvalidImagePropertyValue: naming the property
            and the accepted values, for any value that cannot be read, if
            ``strict``.
        """
        obj = cls()
        props = dict(image_props or {})
        # The name each property is read from: an error must name the
        # property as the image spells it, legacy name included.
        sources = {name: name for name in cls.fields}
        for legacy, current in LEGACY_PROPERTY_NAMES.items():
            if legacy in props and current not in props:
                props[current] = props[legacy]
                sources[current] = legacy
        for name in cls.fields:
            if name not in props:
                continue
            value = props[name]
            try:
                if name in _BOOLEANS:
                    obj._set_boolean(name, value)
                else:
                    setattr(obj, name, value)
            except (ValueError, TypeError):
                error = exception.InvalidImagePropertyValue(
                    name=sources[name], value=value,
                    accepted=accepted_values(name))
                if strict:
                    raise error from None
                obj._set_stored(name, value, error, instance)
        return obj

    def _set_boolean(self, name: str, value: ty.Any) -> None:
        """Set a boolean property, read strictly.

        The field would read the value again, leniently, on ``setattr``:
        the boolean read here is stored as the field stores it.
        """
        if not isinstance(value, bool):
            value = strutils.bool_from_string(value, strict=True)
        setattr(self, _STORAGE[name], value)
        self._changed_fields.add(name)

    def _set_stored(self, name: str, value: ty.Any,
                    error: exception.InvalidImagePropertyValue,
                    instance: ty.Optional['objects.Instance']) -> None:
        """Read a stored value the strict parser refused, as Nova would."""
        if isinstance(self.fields[name], fields.FlexibleBooleanField):
            setattr(self, name,
                    strutils.bool_from_string(value, strict=False))
            reading = "read as '%s', as Nova has always read it" % (
                str(getattr(self, name)).lower())
        else:
            reading = 'ignored, as if unset'
        LOG.warning(
            '%(error)s The value is stored with instance %(uuid)s and is '
            '%(reading)s. Rebuild the instance onto an image with a valid '
            'value to silence this warning.',
            {'error': error.format_message(), 'reading': reading,
             'uuid': (instance.uuid if instance is not None and
                      instance.obj_attr_is_set('uuid') else '(unknown)')})


#: Where each image property is stored on ImageMetaProps, by its name.
_STORAGE = {name: base.get_attrname(name) for name in ImageMetaProps.fields}
#: The image properties that are booleans.
_BOOLEANS = frozenset(
    name for name, field in ImageMetaProps.fields.items()
    if isinstance(field, fields.FlexibleBooleanField))


def accepted_values(name: str) -> str:
    """Describe the values an image property accepts, for error messages."""
    field = ImageMetaProps.fields[name]
    if isinstance(field, fields.FlexibleBooleanField):
        values: ty.Iterable[str] = fields.BOOLEAN_STRINGS
    elif isinstance(field, fields.BaseEnumField):
        values = field._type.valid_values
    else:
        return 'any string'
    return ', '.join("'%s'" % v for v in values)
