"""Validation of server requests at the API boundary.

Everything a user can get wrong in a flavor or an image is refused here,
before anything is scheduled or any host touched, with an error that names
the property and the values it accepts.
"""

import collections
import typing as ty
import unicodedata

from oslo_log import log as logging
from oslo_utils import uuidutils

from nova import exception
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova import utils
from nova.virt import hardware

if ty.TYPE_CHECKING:
    from nova.scheduler.client import report

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

    :param report_client: the placement client with which a rebuild checks
        that the instance's host can honour the new image. Without one
        (a compute API that has no placement, as in tests of the driver
        alone) that check is skipped.
    """

    def __init__(
        self,
        report_client: ty.Optional['report.SchedulerReportClient'] = None,
    ) -> None:
        self.report_client = report_client

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

        A rebuild stays on the instance's host and keeps its allocation, so
        an image that needs a trait the host lacks (say stateless firmware)
        or a resource the allocation lacks is refused here, before the
        instance is touched; otherwise the compute would refuse it only
        after the instance recorded the new image.

        The instance's stashed image properties are replaced, not merged: a
        property the new image lacks (say ``hw_firmware_stateless``) no
        longer applies.

        :raises nova.exception.Invalid: (a subclass) for a bad image, or
            one the instance's host cannot honour; the instance is left as
            it was.
        """
        image_meta = validate_flavor_image(instance.flavor, image)
        request_spec = objects.RequestSpec.from_components(
            instance.uuid, image_meta, instance.flavor)
        self._validate_host_for_rebuild(instance, request_spec,
                                        image.get('id'))
        instance.system_metadata = utils.replace_image_system_metadata(
            instance.system_metadata, image)
        instance.image_ref = image.get('id')
        instance.task_state = 'rebuilding'
        return request_spec

    def _validate_host_for_rebuild(
        self,
        instance: 'objects.Instance',
        request_spec: 'objects.RequestSpec',
        image_id: ty.Optional[str],
    ) -> None:
        """Check what the image adds to the request against the host.

        As Nova's rebuild checks an image's required traits against the
        providers of the instance's allocation, for every trait and
        resource the image (not the flavor, already placed there) asks
        for: placement's current traits of those providers, and the
        allocation itself.
        """
        if self.report_client is None or not instance.host:
            return
        with_image = scheduler_utils.ResourceRequest.from_request_spec(
            request_spec)
        flavor_only = scheduler_utils.ResourceRequest.from_request_spec(
            objects.RequestSpec.from_components(
                instance.uuid, None, instance.flavor))
        traits = with_image.required_traits - flavor_only.required_traits
        resources = {
            rc: amount for rc, amount in with_image.resources.items()
            if amount > flavor_only.resources.get(rc, 0)}
        if not traits and not resources:
            return

        allocations = self.report_client.get_allocations_for_consumer(
            instance.uuid)
        host_traits: set[str] = set()
        allocated: collections.Counter = collections.Counter()
        for rp_uuid, rp_resources in allocations.items():
            host_traits |= self.report_client.get_provider_traits(
                rp_uuid).traits
            allocated.update(rp_resources)
        missing = ['trait %s' % trait
                   for trait in sorted(traits - host_traits)]
        missing += ['resource %s:%d' % (rc, amount)
                    for rc, amount in sorted(resources.items())
                    if allocated[rc] < amount]
        if missing:
            raise exception.RebuildImageNotSupportedByHost(
                instance_uuid=instance.uuid, image_id=image_id,
                host=instance.host, missing=', '.join(missing))
