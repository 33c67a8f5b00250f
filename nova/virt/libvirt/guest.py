"""A running or defined libvirt domain, as the driver manipulates it.

``Guest`` wraps one ``virDomain`` so that the driver speaks in operations
(launch, power off, delete the configuration with or without its NVRAM)
rather than in libvirt flags.
"""

import time
import typing as ty

from oslo_log import log as logging
from oslo_utils import importutils

from nova import exception
from nova.virt.libvirt import config as vconfig

LOG = logging.getLogger(__name__)

libvirt: ty.Any = None


def _libvirt() -> ty.Any:
    global libvirt
    if libvirt is None:
        libvirt = importutils.import_module('libvirt')
    return libvirt


class Guest:
    """A libvirt domain of an instance."""

    def __init__(self, domain: ty.Any) -> None:
        _libvirt()
        self._domain = domain

    @property
    def name(self) -> str:
        return self._domain.name()

    @property
    def uuid(self) -> str:
        return self._domain.UUIDString()

    def is_active(self) -> bool:
        return bool(self._domain.isActive())

    def get_xml_desc(self, dump_inactive: bool = False,
                     dump_migratable: bool = False) -> str:
        """The domain's XML: live, or with ``dump_inactive`` persistent;
        with ``dump_migratable`` as another host must be given it to
        receive the guest, without what libvirt added when it started it.
        """
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE if dump_inactive else 0
        if dump_migratable:
            flags |= libvirt.VIR_DOMAIN_XML_MIGRATABLE
        return self._domain.XMLDesc(flags)

    def get_config(self,
                   dump_inactive: bool = False) -> vconfig.LibvirtConfigGuest:
        """The live (or with ``dump_inactive`` the persistent)
        configuration, parsed into config objects.
        """
        config = vconfig.LibvirtConfigGuest()
        config.parse_str(self.get_xml_desc(dump_inactive))
        return config

    def launch(self, pause: bool = False) -> None:
        """Start the defined domain."""
        flags = libvirt.VIR_DOMAIN_START_PAUSED if pause else 0
        try:
            self._domain.createWithFlags(flags)
        except libvirt.libvirtError:
            LOG.error('Error launching a defined domain %s', self.name)
            raise

    def poweroff(self) -> None:
        """Stop the domain at once (virDomainDestroy); it stays defined."""
        try:
            self._domain.destroy()
        except libvirt.libvirtError as ex:
            # Already off: the goal is reached.
            if ex.get_error_code() != libvirt.VIR_ERR_OPERATION_INVALID:
                raise

    def shutdown(self) -> None:
        """Ask the guest OS to shut down (ACPI power button)."""
        self._domain.shutdown()

    def wait_for_shutoff(self, timeout: float, interval: float = 0.5) -> bool:
        """Wait up to ``timeout`` seconds for the domain to stop."""
        deadline = time.monotonic() + timeout
        while self.is_active():
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True

    def migrate(self, destination_uri: str, destination_xml: str,
                flags: int, migrate_uri: ty.Optional[str] = None,
                listen_address: ty.Optional[str] = None) -> None:
        """Migrate the running domain, defined on the destination from
        ``destination_xml`` (``virDomainMigrateToURI3``).

        :param migrate_uri: where QEMU sends the guest's memory; libvirt
            picks the destination's host name when None.
        :param listen_address: the only address QEMU on the destination
            listens on for it; all of the destination's when None.
        """
        params = {libvirt.VIR_MIGRATE_PARAM_DEST_XML: destination_xml}
        if migrate_uri:
            params[libvirt.VIR_MIGRATE_PARAM_URI] = migrate_uri
        if listen_address:
            params[libvirt.VIR_MIGRATE_PARAM_LISTEN_ADDRESS] = listen_address
        self._domain.migrateToURI3(destination_uri, params, flags)

    def delete_configuration(self, keep_nvram: bool = False) -> None:
        """Undefine the domain.

        :param keep_nvram: keep the UEFI variable store of a stateful guest
            (hard reboot, power cycles, resize, rescue); False removes it
            with the domain, as on delete. A stateless guest has none
            either way.
        """
        flags = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
                 libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
        if keep_nvram:
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM
        else:
            flags |= libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
        try:
            self._domain.undefineFlags(flags)
        except libvirt.libvirtError as ex:
            if ex.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                return
            raise exception.InternalError(
                err='Error undefining domain %s: %s' % (self.name, ex)
            ) from ex
