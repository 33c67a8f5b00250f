"""Translation of a request spec into a placement query."""

import math
import typing as ty
from urllib import parse

import os_resource_classes as orc
import os_traits
from oslo_log import log as logging

from nova import exception
from nova import objects
from nova.objects import fields
from nova.virt import hardware

LOG = logging.getLogger(__name__)

#: The most allocation candidates placement is asked for, as Nova's
#: ``[scheduler] max_placement_results`` default.
DEFAULT_PLACEMENT_LIMIT = 1000

#: Flavor extra spec prefixes that add to the request, as in Nova.
RESOURCES_PREFIX = 'resources:'
TRAIT_PREFIX = 'trait:'
TRAIT_REQUIRED = 'required'
TRAIT_FORBIDDEN = 'forbidden'


class ResourceRequest:
    """The resources and traits one instance needs from one provider.

    Only the unnumbered (single provider) group is modelled: the compute
    node provider carries both the resources and the firmware traits.
    """

    def __init__(self, limit: ty.Optional[int] = DEFAULT_PLACEMENT_LIMIT):
        self.resources: dict[str, int] = {}
        self.required_traits: set[str] = set()
        self.forbidden_traits: set[str] = set()
        self.limit = limit

    @classmethod
    def from_request_spec(
        cls,
        request_spec: 'objects.RequestSpec',
        limit: ty.Optional[int] = DEFAULT_PLACEMENT_LIMIT,
    ) -> 'ResourceRequest':
        """Build the request of a flavor and an image.

        ``COMPUTE_SECURITY_STATELESS_FIRMWARE`` is required exactly when
        :func:`nova.virt.hardware.get_stateless_firmware_constraint` is true:
        not for an unset property, not for ``false``, not for BIOS. Memory
        encryption asks for a ``MEM_ENCRYPTION_CONTEXT`` and the CPU trait
        of its model (``HW_CPU_X86_AMD_SEV_SNP`` for SEV-SNP, ...).
        """
        res_req = cls(limit=limit)
        flavor = request_spec.flavor
        res_req._add_flavor_resources(flavor, is_bfv=request_spec.is_bfv)
        res_req._add_extra_specs(flavor.extra_specs)

        image_meta = request_spec.image
        if image_meta is None:
            return res_req
        if hardware.get_stateless_firmware_constraint(image_meta):
            res_req.required_traits.add(
                os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE)
        secure_boot = hardware.get_secure_boot_constraint(flavor, image_meta)
        if secure_boot == fields.SecureBoot.REQUIRED:
            res_req.required_traits.add(
                os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT)
        mem_encryption_model = hardware.get_mem_encryption_model(
            flavor, image_meta)
        if mem_encryption_model:
            res_req.resources[orc.MEM_ENCRYPTION_CONTEXT] = 1
            res_req.required_traits.add(
                hardware.MEM_ENCRYPTION_MODEL_TRAITS[mem_encryption_model])
        return res_req

    def _add_flavor_resources(self, flavor: 'objects.Flavor',
                              is_bfv: bool) -> None:
        self.resources[orc.VCPU] = flavor.vcpus
        self.resources[orc.MEMORY_MB] = flavor.memory_mb
        # Swap is in MiB, disks in GiB; a boot-from-volume root disk is not
        # on the host.
        disk_gb = flavor.ephemeral_gb + int(math.ceil(flavor.swap / 1024))
        if not is_bfv:
            disk_gb += flavor.root_gb
        self.resources[orc.DISK_GB] = disk_gb

    def _add_extra_specs(self, extra_specs: ty.Mapping[str, str]) -> None:
        for key, value in extra_specs.items():
            if key.startswith(RESOURCES_PREFIX):
                rc = key[len(RESOURCES_PREFIX):]
                try:
                    amount = int(value)
                except ValueError:
                    amount = -1
                if amount < 0:
                    raise exception.InvalidFlavorExtraSpecValue(
                        name=key, value=value,
                        accepted='a non-negative integer')
                self.resources[rc] = amount
            elif key.startswith(TRAIT_PREFIX):
                trait = key[len(TRAIT_PREFIX):]
                if value == TRAIT_REQUIRED:
                    self.required_traits.add(trait)
                elif value == TRAIT_FORBIDDEN:
                    self.forbidden_traits.add(trait)
                else:
                    raise exception.InvalidFlavorExtraSpecValue(
                        name=key, value=value,
                        accepted="'%s', '%s'" % (TRAIT_REQUIRED,
                                                 TRAIT_FORBIDDEN))
        # A zero amount in an extra spec removes the resource, as in Nova.
        self.resources = {rc: n for rc, n in self.resources.items() if n}

    @property
    def all_required_traits(self) -> frozenset:
        return frozenset(self.required_traits)

    def to_querystring(self) -> str:
        """Render the ``GET /allocation_candidates`` query.

        Forbidden traits need placement microversion 1.22 or later.
        """
        qparams: list[tuple[str, str]] = []
        resources = ','.join(
            '%s:%d' % (rc, amount)
            for rc, amount in sorted(self.resources.items()))
        qparams.append(('resources', resources))
        traits = sorted(self.required_traits) + sorted(
            '!' + t for t in self.forbidden_traits)
        if traits:
            qparams.append(('required', ','.join(traits)))
        if self.limit is not None:
            qparams.append(('limit', str(self.limit)))
        return parse.urlencode(sorted(qparams), safe=',:!')

    def __repr__(self) -> str:
        return '<ResourceRequest %s>' % self.to_querystring()
