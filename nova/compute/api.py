"""Validation of server requests at the API boundary.

Everything a user can get wrong in a flavor or an image is refused here,
before anything is scheduled or any host touched, with an error that names
the property and the values it accepts.
"""

import typing as ty
import unicodedata

from oslo_log import log as logging
from oslo_utils import uuidutils

from nova import exception
from nova import objects
from nova import utils
from nova.virt import hardware

LOG = logging.getLogger(__name__)


def validate_flavor_image(
    flavor: 'objects.Flavor',
    image: ty.Mapping[str, ty.Any],
) -> 'objects.ImageMeta':
    """Validate a flavor and a Glance image dict together.

    The one entry point used at server create and rebuild.

    :returns: the image as an ImageMeta, its properties typed.
    :raises nova.exception.Invalid: (a subclass) naming the property and the
        accepted values, for the first problem found.
    """
    image_meta = objects.ImageMeta.from_dict(image)
    _check_machine_type_text(image_meta)
    hardware.get_stateless_firmware_constraint(image_meta)
    hardware.get_secure_boot_constraint(flavor, image_meta)
    hardware.get_mem_encryption_model(flavor, image_meta)
    return image_meta


def _check_machine_type_text(image_meta: 'objects.ImageMeta') -> None:
    """Refuse control characters in ``hw_machine_type``.

    The value goes into the domain XML, which cannot carry them: the
    compute host would fail the build with an error that names no
    property.
    """
    machine_type = image_meta.properties.get('hw_machine_type')
    if machine_type is not None and any(
            unicodedata.category(ch) == 'Cc' for ch in machine_type):
        raise exception.InvalidImagePropertyValue(
            name='hw_machine_type', value=machine_type,
            accepted='machine type names such as q35 or pc-q35-7.2, '
                     'without control characters')


class API:
    """The compute API's server create and rebuild.

    The part that checks the request and prepares what the scheduler and the
    compute get.
    """

    def create(
        self,
        flavor: 'objects.Flavor',
        image: ty.Mapping[str, ty.Any],
        display_name: ty.Optional[str] = None,
        instance_id: int = 1,
    ) -> tuple['objects.Instance', 'objects.RequestSpec']:
        """Validate a server create and build its instance and request spec.

        The image properties are stashed in the instance's system metadata;
        from then on they, not Glance, say how the instance boots.
        """
        image_meta = validate_flavor_image(flavor, image)
        instance = objects.Instance(
            id=instance_id,
            uuid=uuidutils.generate_uuid(),
            display_name=display_name,
            image_ref=image.get('id'),
            flavor=flavor,
            system_metadata=utils.get_system_metadata_from_image(image),
            vm_state='building', task_state='scheduling',
            host=None, node=None)
        request_spec = objects.RequestSpec.from_components(
            instance.uuid, image_meta, flavor)
        LOG.debug('Validated server create for instance %s', instance.uuid)
        return instance, request_spec

    def rebuild(
        self,
        instance: 'objects.Instance',
        image: ty.Mapping[str, ty.Any],
    ) -> 'objects.RequestSpec':
        """Validate a rebuild onto ``image`` and update the instance.

        The instance's stashed image properties are replaced, not merged: a
        property the new image lacks (say ``hw_firmware_stateless``) no
        longer applies.
        """
        image_meta = validate_flavor_image(instance.flavor, image)
        instance.system_metadata = utils.replace_image_system_metadata(
            instance.system_metadata, image)
        instance.image_ref = image.get('id')
        instance.task_state = 'rebuilding'
        return objects.RequestSpec.from_components(
            instance.uuid, image_meta, instance.flavor)
