"""Nova base exception handling.

Every error a user or an operator can cause has a class here with a message
that names what was wrong and, where there is a fixed set, what is accepted.
Messages are formatted from keyword arguments so that callers never build
user-facing text by hand.
"""

from oslo_log import log as logging

from nova.i18n import _

LOG = logging.getLogger(__name__)


class NovaException(Exception):
    """Base Nova Exception.

    Subclasses define ``msg_fmt``, formatted with the keyword arguments given
    to the constructor, and ``code``, the HTTP status an API would answer.
    """
    msg_fmt = _("An unknown exception occurred.")
    code = 500

    def __init__(self, message: str | None = None, **kwargs) -> None:
        self.kwargs = kwargs
        self.kwargs.setdefault('code', self.code)
        if not message:
            try:
                message = self.msg_fmt % kwargs
            except (KeyError, TypeError):
                # A missing keyword is a programming error; keep the format
                # string rather than losing the original exception.
                LOG.exception('Exception in string format operation: %s',
                              kwargs)
                message = self.msg_fmt
        self.message = message
        super().__init__(message)

    def format_message(self) -> str:
        return self.args[0]


class Invalid(NovaException):
    msg_fmt = _("Bad Request - Invalid Parameters")
    code = 400


class NotFound(NovaException):
    msg_fmt = _("Resource could not be found.")
    code = 404


class Conflict(NovaException):
    msg_fmt = _("Conflict.")
    code = 409


class ObjectActionError(NovaException):
    msg_fmt = _("Object action %(action)s failed because: %(reason)s")


# --- image properties and flavor extra specs (API boundary) ---------------

class InvalidImagePropertyValue(Invalid):
    msg_fmt = _("Invalid value '%(value)s' for image property '%(name)s': "
                "accepted values are %(accepted)s.")


class InvalidFlavorExtraSpecValue(Invalid):
    msg_fmt = _("Invalid value '%(value)s' for flavor extra spec "
                "'%(name)s': accepted values are %(accepted)s.")


class FlavorImageConflict(Invalid):
    msg_fmt = _("Conflicting values for %(what)s: the flavor requests "
                "'%(flavor_value)s' (%(flavor_key)s) and the image requests "
                "'%(image_value)s' (%(image_key)s).")


class MemoryEncryptionRequiresStatelessFirmware(Invalid):
    msg_fmt = _("Memory encryption model '%(model)s' requires stateless "
                "firmware: set image property 'hw_firmware_stateless' to "
                "'true' (it is %(value)s).")


class InvalidMemoryEncryptionRequest(Invalid):
    msg_fmt = _("Invalid memory encryption request: %(reason)s")


class SecureBootRequiresUEFI(Invalid):
    msg_fmt = _("Secure boot policy 'required' needs UEFI firmware: set "
                "image property 'hw_firmware_type' to 'uefi' (the image "
                "boots '%(firmware_type)s').")


class RebuildImageNotSupportedByHost(Invalid):
    msg_fmt = _("Instance %(instance_uuid)s cannot be rebuilt onto image "
                "%(image_id)s: the image requires %(missing)s, which its "
                "host %(host)s does not provide. Rebuild onto another "
                "image, or create a new server from this one.")


class SecureBootNotSupported(Invalid):
    msg_fmt = _("Secure boot is not supported by host.")


class UEFINotSupported(Invalid):
    msg_fmt = _("UEFI is not supported.")


class StatelessFirmwareNotSupported(Invalid):
    msg_fmt = _("Stateless firmware is not supported by this host: "
                "%(reason)s")


class StatelessSecureBootNotSupported(Invalid):
    msg_fmt = _("Secure boot with stateless firmware was required, but no "
                "firmware on this host enforces secure boot without a "
                "variable store (a descriptor of mode 'stateless' with the "
                "features 'secure-boot' and 'enrolled-keys').")


# --- libvirt host and firmware ---------------------------------------------

class HypervisorUnavailable(NovaException):
    msg_fmt = _("Connection to the hypervisor is broken on host: %(host)s")


class InternalError(NovaException):
    msg_fmt = "%(err)s"


class UEFILoaderNotFound(NovaException):
    msg_fmt = _("No UEFI loader on this host matches architecture %(arch)s, "
                "machine type %(machine_type)s, secure boot %(secure)s, "
                "stateless %(stateless)s.")


class InstanceNotFound(NotFound):
    msg_fmt = _("Instance %(instance_id)s could not be found.")


class InstanceInvalidState(Invalid):
    msg_fmt = _("Instance %(instance_uuid)s in %(attr)s %(state)s. Cannot "
                "%(method)s while the instance is in this state.")


class MigrationPreCheckError(NovaException):
    msg_fmt = _("Migration pre-check error: %(reason)s")


class InstanceRescueFailure(NovaException):
    msg_fmt = _("Failed to move instance to rescue mode: %(reason)s")


# --- placement ---------------------------------------------------------------

class PlacementAPIConnectFailure(NovaException):
    msg_fmt = _("Unable to communicate with the Placement API: %(reason)s")


class ResourceProviderRetrievalFailed(NovaException):
    msg_fmt = _("Failed to get resource provider with UUID %(uuid)s")


class ResourceProviderCreationFailed(NovaException):
    msg_fmt = _("Failed to create resource provider %(name)s")


class ResourceProviderUpdateFailed(NovaException):
    msg_fmt = _("Failed to update resource provider via URL %(url)s: "
                "%(error)s")


class ResourceProviderUpdateConflict(Conflict):
    msg_fmt = _("A conflict was encountered attempting to update resource "
                "provider %(uuid)s (generation %(generation)d): %(error)s")


class ResourceProviderTraitRetrievalFailed(NovaException):
    msg_fmt = _("Failed to get traits for resource provider with UUID "
                "%(uuid)s")


class AllocationCandidatesRetrievalFailed(NovaException):
    msg_fmt = _("Failed to get allocation candidates: %(error)s")


class NoValidHost(NovaException):
    msg_fmt = _("No valid host was found. %(reason)s")


class InvalidInput(Invalid):
    msg_fmt = _("Invalid input received: %(reason)s")


class ResourceProviderNotFound(NotFound):
    msg_fmt = _("No such resource provider %(name_or_uuid)s.")


class TraitCreationFailed(NovaException):
    msg_fmt = _("Failed to create trait %(name)s: %(error)s")


class EmbeddedPlacementAlreadyRunning(NovaException):
    msg_fmt = _("An embedded placement service is already running in this "
                "process; stop it before starting another one.")


class TraitRetrievalFailed(NovaException):
    msg_fmt = _("Failed to get traits: %(error)s")


class LibvirtEmbedUnavailable(HypervisorUnavailable):
    msg_fmt = _("Cannot use the embedded libvirt QEMU driver %(uri)s: "
                "%(reason)s")


class EmbeddedPlacementStartFailed(NovaException):
    msg_fmt = _("The embedded placement service failed to start (check "
                "[placement] embedded_connection): %(reason)s")


class UEFILoaderFileNotFound(UEFILoaderNotFound):
    msg_fmt = _("UEFI firmware file %(path)s, named by firmware descriptor "
                "%(descriptor)s, does not exist: the firmware was removed "
                "or replaced after nova-compute started. Reinstall it, or "
                "restart nova-compute to choose among the firmware now "
                "installed.")
