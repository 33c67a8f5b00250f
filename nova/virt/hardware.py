"""Constraints a flavor and an image put on the virtual hardware.

The helpers here read requests, check that they are consistent and say what
they mean; the API calls them to refuse bad requests before anything is
scheduled, the scheduler to decide which traits to require, and the driver
to build the guest.
"""

import typing as ty

import os_traits
from oslo_log import log as logging
from oslo_utils import strutils

from nova import exception
from nova import objects
from nova.objects import fields

LOG = logging.getLogger(__name__)

#: Architectures whose guests boot UEFI when the image does not say.
UEFI_DEFAULT_ARCHITECTURES = (fields.Architecture.AARCH64,)

#: Machine types on which memory encryption can work (x86 needs q35).
MEM_ENCRYPTION_MACHINE_TYPE_PREFIXES = ('q35', 'pc-q35')

#: The CPU trait a host reports when it can run guests of each memory
#: encryption model; a free MEM_ENCRYPTION_CONTEXT alone does not say which
#: models the host's CPU and firmware support.
MEM_ENCRYPTION_MODEL_TRAITS = {
    fields.MemEncryptionModel.AMD_SEV: os_traits.HW_CPU_X86_AMD_SEV,
    fields.MemEncryptionModel.AMD_SEV_ES: os_traits.HW_CPU_X86_AMD_SEV_ES,
    fields.MemEncryptionModel.AMD_SEV_SNP: os_traits.HW_CPU_X86_AMD_SEV_SNP,
    fields.MemEncryptionModel.INTEL_TDX: os_traits.HW_CPU_X86_INTEL_TDX,
}


def get_firmware_type(image_meta: 'objects.ImageMeta',
                      arch: ty.Optional[str] = None) -> str:
    """Return the firmware a guest of this image boots: 'uefi' or 'bios'.

    ``hw_firmware_type`` when the image sets it, otherwise the default of
    the guest architecture (UEFI for aarch64, BIOS for x86).

    :param arch: the guest architecture, where the caller knows it (the
        compute host: the image's ``hw_architecture``, else its own). By
        default the image's ``hw_architecture``; with neither, BIOS, the
        default of x86.
    """
    props = image_meta.properties
    firmware_type = props.get('hw_firmware_type')
    if firmware_type is not None:
        return firmware_type
    if (arch or props.get('hw_architecture')) in UEFI_DEFAULT_ARCHITECTURES:
        return fields.FirmwareType.UEFI
    return fields.FirmwareType.BIOS


def get_stateless_firmware_constraint(
    image_meta: 'objects.ImageMeta',
    arch: ty.Optional[str] = None,
) -> ty.Optional[bool]:
    """Return whether the image asks for stateless firmware.

    :param arch: the guest architecture where the caller knows it, as for
        :func:`get_firmware_type`. Without it, an image that names neither
        ``hw_firmware_type`` nor ``hw_architecture``, whose firmware the
        host's architecture decides, is taken at its word: it may land on
        a host that boots it UEFI.
    :returns: None when ``hw_firmware_stateless`` is unset, or when the
        guest boots BIOS: BIOS keeps no variable store, so the request is
        satisfied by nature and no host capability is needed (it is logged
        and ignored, rather than failing late on a compute host). Otherwise
        the boolean the image set.
    """
    return get_stateless_firmware_request(image_meta, arch)[0]


def get_stateless_firmware_request(
    image_meta: 'objects.ImageMeta',
    arch: ty.Optional[str] = None,
) -> tuple[ty.Optional[bool], bool]:
    """Return the stateless firmware constraint and who decides the firmware.

    For the scheduler, which needs both from one reading of the image.

    :param arch: as for :func:`get_stateless_firmware_constraint`.
    :returns: a tuple of :func:`get_stateless_firmware_constraint`'s answer
        and whether the guest's firmware is only known once a host is
        chosen: true for an image that sets neither ``hw_firmware_type``
        nor ``hw_architecture`` when ``arch`` is not given (it boots BIOS
        on x86 hosts, UEFI on aarch64 ones). The second is false whenever
        the first is None.
    """
    # The API and the scheduler ask this of every request: each property
    # is read once, and only when the answer depends on it.
    props = image_meta.properties
    stateless = props.get('hw_firmware_stateless')
    if stateless is None:
        return None, False
    firmware_type = props.get('hw_firmware_type')
    if firmware_type is None:
        guest_arch = arch or props.get('hw_architecture')
        if guest_arch is None:
            return stateless, True
        firmware_type = (fields.FirmwareType.UEFI
                         if guest_arch in UEFI_DEFAULT_ARCHITECTURES
                         else fields.FirmwareType.BIOS)
    if firmware_type == fields.FirmwareType.BIOS:
        if stateless:
            LOG.warning(
                "Image property 'hw_firmware_stateless' is ignored for an "
                "image booting BIOS firmware, which has no NVRAM; set "
                "'hw_firmware_type=uefi' to boot stateless UEFI firmware.")
        return None, False
    return stateless, False


def _get_flavor_image_meta(
    key: str,
    flavor: 'objects.Flavor',
    image_meta: 'objects.ImageMeta',
    prefix: str = 'hw',
) -> tuple[ty.Any, ty.Any]:
    """Return flavor extra spec ``prefix:key``, image ``prefix_key``."""
    flavor_value = flavor.extra_specs.get('%s:%s' % (prefix, key))
    image_value = image_meta.properties.get('%s_%s' % (prefix, key))
    return flavor_value, image_value


def _parse_flavor_enum(name: str, value: str, accepted: ty.Sequence[str]):
    if value not in accepted:
        raise exception.InvalidFlavorExtraSpecValue(
            name=name, value=value,
            accepted=', '.join("'%s'" % v for v in accepted))
    return value


def _parse_flavor_bool(name: str, value: ty.Optional[str]):
    if value is None:
        return None
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError:
        raise exception.InvalidFlavorExtraSpecValue(
            name=name, value=value,
            accepted=', '.join("'%s'" % v for v in fields.BOOLEAN_STRINGS))


def get_secure_boot_constraint(
    flavor: 'objects.Flavor',
    image_meta: 'objects.ImageMeta',
    arch: ty.Optional[str] = None,
) -> ty.Optional[str]:
    """Return the secure boot policy of a request, or None when unset.

    The flavor (``os:secure_boot``) and the image (``os_secure_boot``) may
    both set a policy; when they disagree the request is refused, since
    neither can be assumed to win over the other.

    :raises nova.exception.InvalidFlavorExtraSpecValue: for a policy that is
        not one of ``fields.SecureBoot.ALL``.
    :raises nova.exception.FlavorImageConflict: when they disagree.
    :raises nova.exception.SecureBootRequiresUEFI: secure boot required for
        a BIOS guest.
    """
    flavor_policy, image_policy = _get_flavor_image_meta(
        'secure_boot', flavor, image_meta, prefix='os')
    if flavor_policy is not None:
        _parse_flavor_enum('os:secure_boot', flavor_policy,
                           fields.SecureBoot.ALL)
    if (flavor_policy is not None and image_policy is not None and
            flavor_policy != image_policy):
        raise exception.FlavorImageConflict(
            what='secure boot', flavor_key='os:secure_boot',
            flavor_value=flavor_policy, image_key='os_secure_boot',
            image_value=image_policy)
    policy = flavor_policy or image_policy
    firmware_type = get_firmware_type(image_meta, arch)
    if (policy == fields.SecureBoot.REQUIRED and
            firmware_type != fields.FirmwareType.UEFI):
        raise exception.SecureBootRequiresUEFI(firmware_type=firmware_type)
    return policy


def get_mem_encryption_model(
    flavor: 'objects.Flavor',
    image_meta: 'objects.ImageMeta',
) -> ty.Optional[str]:
    """Return the memory encryption model a request asks for, or None.

    Memory encryption is requested by ``hw:mem_encryption`` (flavor) or
    ``hw_mem_encryption`` (image); the model defaults to ``amd-sev``. The
    models in ``MemEncryptionModel.REQUIRE_STATELESS_FIRMWARE`` (SEV-SNP,
    TDX) measure the whole boot chain and so need stateless firmware.

    :raises nova.exception.Invalid: subclasses naming the property, for any
        inconsistent request.
    """
    flavor_enc, image_enc = _get_flavor_image_meta(
        'mem_encryption', flavor, image_meta)
    flavor_enc = _parse_flavor_bool('hw:mem_encryption', flavor_enc)
    flavor_model, image_model = _get_flavor_image_meta(
        'mem_encryption_model', flavor, image_meta)
    if flavor_model is not None:
        _parse_flavor_enum('hw:mem_encryption_model', flavor_model,
                           fields.MemEncryptionModel.ALL)
    if (flavor_enc is not None and image_enc is not None and
            flavor_enc != image_enc):
        raise exception.FlavorImageConflict(
            what='memory encryption', flavor_key='hw:mem_encryption',
            flavor_value=flavor_enc, image_key='hw_mem_encryption',
            image_value=image_enc)
    if (flavor_model is not None and image_model is not None and
            flavor_model != image_model):
        raise exception.FlavorImageConflict(
            what='memory encryption model',
            flavor_key='hw:mem_encryption_model', flavor_value=flavor_model,
            image_key='hw_mem_encryption_model', image_value=image_model)

    requested = bool(flavor_enc or image_enc)
    model = flavor_model or image_model
    if not requested:
        if model is not None:
            # A model alone would otherwise be silently ignored and the
            # guest would run unencrypted while its owner believes not.
            raise exception.InvalidMemoryEncryptionRequest(
                reason="a memory encryption model ('%s') is set but memory "
                       "encryption is not requested: set "
                       "'hw_mem_encryption' to 'true'" % model)
        return None

    model = model or fields.MemEncryptionModel.AMD_SEV
    if get_firmware_type(image_meta) != fields.FirmwareType.UEFI:
        raise exception.InvalidMemoryEncryptionRequest(
            reason="memory encryption requires UEFI firmware: set image "
                   "property 'hw_firmware_type' to 'uefi'")
    machine_type = image_meta.properties.get('hw_machine_type')
    if machine_type is not None and not machine_type.startswith(
            MEM_ENCRYPTION_MACHINE_TYPE_PREFIXES):
        raise exception.InvalidMemoryEncryptionRequest(
            reason="memory encryption requires the q35 machine type, not "
                   "'%s' (image property 'hw_machine_type')" % machine_type)
    if model in fields.MemEncryptionModel.REQUIRE_STATELESS_FIRMWARE:
        stateless = get_stateless_firmware_constraint(image_meta)
        if not stateless:
            raise exception.MemoryEncryptionRequiresStatelessFirmware(
                model=model,
                value=("unset" if stateless is None else "'false'"))
    return model
