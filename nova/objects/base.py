"""Nova common internal object model."""

import typing as ty

from oslo_versionedobjects import base as ovoo_base

from nova import exception
from nova import objects


def _version_tuple(version: str) -> tuple:
    return tuple(int(x) for x in version.split('.'))


def get_attrname(name: str) -> str:
    """Return the name of the attribute that stores field ``name``.

    oslo.versionedobjects keeps a field's value in this attribute and
    leaves it unset while the field is unset, so reading it with a default
    tells both in one lookup (Nova's objects use the same name).
    """
    return '_obj_' + name


def raise_on_too_new_values(version: tuple, primitive: dict, field: str,
                            new_values: ty.Iterable[str]) -> None:
    """Refuse to backport a value the target version does not define.

    Dropping the field instead would change what the object means: an enum
    value added in a later version (e.g. a memory encryption model) must
    not turn into the default an older service assumes.

    :raises nova.exception.ObjectActionError: if ``primitive[field]`` is
        one of ``new_values``.
    """
    value = primitive.get(field)
    if value in new_values:
        raise exception.ObjectActionError(
            action='obj_make_compatible',
            reason='%s=%s not supported in version %s' % (
                field, value, version))


class NovaObjectRegistry(ovoo_base.VersionedObjectRegistry):

    def registration_hook(self, cls, index):
        # Expose the newest registered version of each object as
        # ``nova.objects.<Name>`` so callers never import the module.
        current = getattr(objects, cls.obj_name(), None)
        if (current is None or
                _version_tuple(cls.VERSION) >=
                _version_tuple(current.VERSION)):
            setattr(objects, cls.obj_name(), cls)


class NovaObject(ovoo_base.VersionedObject):
    """Base class and object factory.

    Objects are namespaced ``nova`` on the wire, as in Nova, so that a
    primitive made here can be read by a Nova service and the other way
    round.
    """

    OBJ_SERIAL_NAMESPACE = 'nova_object'
    OBJ_PROJECT_NAMESPACE = 'nova'
