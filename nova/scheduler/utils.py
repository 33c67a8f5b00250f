"""Translation of a request spec into a placement query."""

import math
import re
import typing as ty
from urllib import parse

import os_resource_classes as orc
import os_traits
from oslo_log import log as logging

from nova import exception
from nova import objects
from nova.objects import fields
from nova.virt import driver as virt_driver
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
#: Prefix of the traits naming a host's CPU architecture.
ARCH_TRAIT_PREFIX = 'HW_ARCH_'

#: A query whose names and values need no encoding: the characters no URL
#: encoding changes, the separators placement reads, and those of the
#: query itself (``to_querystring``).
_QUERY_SAFE = re.compile(r'[A-Za-z0-9_.~,:!=&-]*')

#: The traits of which a host needs one for a stateless request whose
#: firmware its architecture decides: the stateless firmware trait, or the
#: architecture trait of a host whose guests boot BIOS by default. The
#: traits os-traits defines do not change while the process runs.
_STATELESS_OR_BIOS_HOST_TRAITS = frozenset(
    [os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE] +
    [trait for trait in os_traits.get_traits(prefix=ARCH_TRAIT_PREFIX)
     if trait[len(ARCH_TRAIT_PREFIX):].lower() not in
     hardware.UEFI_DEFAULT_ARCHITECTURES])


class ResourceRequest:
    """The resources and traits one instance needs from one provider.

    Only the unnumbered (single provider) group is modelled: the compute
    node provider carries both the resources and the firmware traits.
    """

    def __init__(self, limit: ty.Optional[int] = DEFAULT_PLACEMENT_LIMIT):
        self.resources: dict[str, int] = {}
        self.required_traits: set[str] = set()
        #: Groups of traits of which the provider needs at least one each
        #: (placement's ``required=in:A,B``).
        self.required_any_traits: list[frozenset[str]] = []
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
        not for an unset property, not for ``false``, not for BIOS; for an
        image whose firmware the host's architecture decides, either the
        trait or the architecture trait of a BIOS host. Memory
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
        stateless, host_decides = hardware.get_stateless_firmware_request(
            image_meta)
        if stateless:
            if host_decides:
                # The guest boots the default firmware of the host's
                # architecture: UEFI on aarch64, where stateless firmware
                # must be supported, BIOS elsewhere, where the request is
                # met by nature. So: a host with the trait, or one whose
                # architecture trait says it boots BIOS.
                res_req.required_any_traits.append(
                    _STATELESS_OR_BIOS_HOST_TRAITS)
            else:
                res_req.required_traits.add(
                    os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE)
        secure_boot = hardware.get_secure_boot_constraint(flavor, image_meta)
        if secure_boot == fields.SecureBoot.REQUIRED:
            res_req.required_traits.add(
                os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT)
            # Both traits together do not make it: the host needs a
            # stateless firmware with enrolled keys.
            if os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE in (
                    res_req.required_traits):
                res_req.required_traits.add(
                    virt_driver.STATELESS_SECURE_BOOT_TRAIT)
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

        Forbidden traits need placement microversion 1.22 or later, a
        ``required=in:`` group 1.39.
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
        for any_of in self.required_any_traits:
            qparams.append(('required', 'in:' + ','.join(sorted(any_of))))
        if self.limit is not None:
            qparams.append(('limit', str(self.limit)))
        qparams.sort()
        # As parse.urlencode(qparams, safe=',:!') writes it. The names are
        # plain words and a value of letters, digits and the separators
        # placement reads (every standard trait and resource class, the
        # amounts) is its own encoding: such a query is checked whole, in
        # one pass, rather than value by value. One '=' per parameter and
        # one '&' between two say that no value holds either.
        query = '&'.join(map('='.join, qparams))
        if (_QUERY_SAFE.fullmatch(query) and
                query.count('=') == len(qparams) and
                query.count('&') == len(qparams) - 1):
            return query
        return parse.urlencode(qparams, safe=',:!')

    def __repr__(self) -> str:
        return '<ResourceRequest %s>' % self.to_querystring()
