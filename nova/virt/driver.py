"""Driver base class for the compute hypervisors.

Only the part of Nova's ``ComputeDriver`` interface that the firmware flow
uses is declared here; a driver raises ``NotImplementedError`` for what it
does not support, as in Nova.
"""

import typing as ty

import os_traits
from oslo_log import log as logging

if ty.TYPE_CHECKING:
    from nova.compute import provider_tree as provider_tree_mod

LOG = logging.getLogger(__name__)

#: The host can boot a guest with stateless firmware *and* enforce secure
#: boot: a firmware of mode 'stateless' with enrolled keys. Neither standard
#: trait implies it (Debian's OVMF gives both and not this), and os-traits
#: has none for it, so it is a custom trait the driver creates.
STATELESS_SECURE_BOOT_TRAIT = (
    'CUSTOM_SECURITY_STATELESS_FIRMWARE_SECURE_BOOT')

#: Driver capabilities that are reported to placement as traits on the
#: compute node resource provider: capability name -> trait.
CAPABILITY_TRAITS_MAP = {
    'supports_image_type_qcow2': os_traits.COMPUTE_IMAGE_TYPE_QCOW2,
    'supports_image_type_raw': os_traits.COMPUTE_IMAGE_TYPE_RAW,
    'supports_secure_boot': os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT,
    'supports_stateless_firmware':
        os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE,
    'supports_stateless_secure_boot': STATELESS_SECURE_BOOT_TRAIT,
}


class ComputeDriver:
    """Base class for compute drivers."""

    #: What this driver can do; a subclass updates its own copy at
    #: ``init_host`` once it knows its host.
    capabilities: dict[str, bool] = {
        'supports_image_type_qcow2': False,
        'supports_image_type_raw': False,
        'supports_secure_boot': False,
        'supports_stateless_firmware': False,
        'supports_stateless_secure_boot': False,
    }

    def __init__(self, virtapi: ty.Any = None) -> None:
        self.virtapi = virtapi
        # Each driver instance has its own view: two drivers in one process
        # (two computes in a functional test) must not share it.
        self.capabilities = dict(self.capabilities)

    def init_host(self, host: str) -> None:
        """Initialize anything that is necessary for the driver to function.
        """
        raise NotImplementedError()

    def capabilities_as_traits(self) -> dict[str, bool]:
        """Map the capabilities this driver knows to traits.

        :returns: trait name -> whether this host has it, for every
            capability in ``CAPABILITY_TRAITS_MAP`` the driver declares.
        """
        return {
            trait: bool(self.capabilities[capability])
            for capability, trait in CAPABILITY_TRAITS_MAP.items()
            if capability in self.capabilities
        }

    def update_provider_tree(
        self,
        provider_tree: 'provider_tree_mod.ProviderTree',
        nodename: str,
        allocations: ty.Optional[dict] = None,
    ) -> None:
        """Update a ProviderTree with current inventory and traits."""
        raise NotImplementedError()

    @staticmethod
    def merge_capability_traits(
        traits: ty.Iterable[str],
        capability_traits: ty.Mapping[str, bool],
    ) -> set[str]:
        """Return ``traits`` with the capability traits made true or false.

        Traits that are not capability traits (operators' ``CUSTOM_*``
        traits, traits other services set) are kept as they are.
        """
        merged = set(traits)
        for trait, supported in capability_traits.items():
            if supported:
                merged.add(trait)
            else:
                merged.discard(trait)
        return merged
