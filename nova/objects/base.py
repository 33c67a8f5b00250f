"""Nova common internal object model."""

from oslo_versionedobjects import base as ovoo_base

from nova import objects


def _version_tuple(version: str) -> tuple:
    return tuple(int(x) for x in version.split('.'))


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
