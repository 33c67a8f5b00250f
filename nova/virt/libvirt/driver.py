"""A connection to a hypervisor through libvirt.

Supports KVM and QEMU (TCG). This driver carries the part of Nova's libvirt
driver that decides a guest's firmware: it reports whether the host can boot
UEFI guests with stateless firmware (read-only image, no NVRAM), writes the
guest XML for stateless and stateful UEFI and for BIOS, and keeps each
guest's firmware mode, and its NVRAM or absence of one, across the instance
lifecycle.

The stashed image properties of an instance (``instance.image_meta``, read
from its ``image_*`` system metadata) are the source of truth for its
firmware after the first boot: every operation that rebuilds the domain XML
reads them again.
"""

import os
import shutil
import subprocess
import tempfile
import typing as ty

import os_resource_classes as orc
import os_traits
from oslo_log import log as logging
from oslo_utils import importutils
from oslo_utils import units

import nova.conf
from nova import exception
from nova.objects import fields
from nova.virt import driver
from nova.virt import hardware
from nova.virt.libvirt import config as vconfig
from nova.virt.libvirt import firmware
from nova.virt.libvirt import guest as libvirt_guest
from nova.virt.libvirt import host as libvirt_host
from nova.virt.libvirt import migration

if ty.TYPE_CHECKING:
    from nova.compute import provider_tree as provider_tree_mod
    from nova import objects

CONF = nova.conf.CONF
LOG = logging.getLogger(__name__)

libvirt: ty.Any = None

#: Oldest libvirt and QEMU this driver runs on (Nova 2024.2's minimums).
MIN_LIBVIRT_VERSION = (7, 0, 0)
MIN_QEMU_VERSION = (5, 2, 0)
#: Oldest libvirt that understands ``<loader stateless='yes'>``.
MIN_LIBVIRT_STATELESS_FIRMWARE = libvirt_host.MIN_LIBVIRT_STATELESS_FIRMWARE

#: Guest architectures that have an APIC (``<features><apic/>``).
X86_ARCHITECTURES = (fields.Architecture.X86_64, fields.Architecture.I686)
#: ``<cpu mode='maximum'>``: every feature the emulator has (QEMU's
#: ``-cpu max``), libvirt 7.1.0 and later.
CPU_MODE_MAXIMUM = 'maximum'

#: Reboot types, as Nova's compute API names them.
REBOOT_SOFT = 'SOFT'
REBOOT_HARD = 'HARD'

#: Power states reported by ``get_info`` (Nova's ``power_state``).
POWER_NOSTATE = 0x00
POWER_RUNNING = 0x01
POWER_SHUTDOWN = 0x04

#: Name of the disk image files in an instance's directory.
DISK_NAME = 'disk'
RESCUE_DISK_NAME = 'disk.rescue'
CONSOLE_LOG_NAME = 'console.log'
UNRESCUE_XML_NAME = 'unrescue.xml'

#: Host resources reserved for the host itself and the allocation ratios
#: placement applies, as Nova's defaults.
RESERVED_HOST_MEMORY_MB = 512
CPU_ALLOCATION_RATIO = 4.0
RAM_ALLOCATION_RATIO = 1.0
DISK_ALLOCATION_RATIO = 1.0


class LibvirtDriver(driver.ComputeDriver):
    """The libvirt compute driver."""

    capabilities = {
        'supports_image_type_qcow2': True,
        'supports_image_type_raw': True,
        # Both are decided from the host at init_host.
        'supports_secure_boot': False,
        'supports_stateless_firmware': False,
        'supports_stateless_secure_boot': False,
    }

    def __init__(self, virtapi: ty.Any = None,
                 read_only: bool = False) -> None:
        super().__init__(virtapi)
        global libvirt
        if libvirt is None:
            libvirt = importutils.import_module('libvirt')
        self._host = libvirt_host.Host(
            libvirt_host.Host.default_uri(), read_only)
        #: The compute node this driver serves, from init_host.
        self._nodename: ty.Optional[str] = None

    # --- host and capabilities

    @property
    def host(self) -> libvirt_host.Host:
        return self._host

    def init_host(self, host: str) -> None:
        """Connect to libvirt, check versions and learn capabilities.

        :raises nova.exception.InternalError: libvirt or QEMU too old.
        :raises nova.exception.HypervisorUnavailable: libvirt unreachable.
        """
        self._nodename = host
        self._host.initialize()
        if not self._host.has_min_version(lv_ver=MIN_LIBVIRT_VERSION):
            raise exception.InternalError(
                err='Nova requires libvirt version %s or greater.' %
                    '.'.join(map(str, MIN_LIBVIRT_VERSION)))
        if (CONF.libvirt.virt_type in libvirt_host.QEMU_VIRT_TYPES and
                not self._host.has_min_version(hv_ver=MIN_QEMU_VERSION)):
            raise exception.InternalError(err=self._qemu_version_error())
        self._update_capabilities()

    def _qemu_version_error(self) -> str:
        # has_min_version() also says no when libvirt cannot tell the
        # version at all (it failed to probe QEMU: a full disk, a broken
        # binary); what libvirt said is then the error to act on.
        try:
            version = self._host.get_hypervisor_version()
        except libvirt.libvirtError as ex:
            return 'libvirt cannot tell the QEMU version of this host: %s' % ex
        return ('Nova requires QEMU version %s or greater; this host has '
                '%s.' % ('.'.join(map(str, MIN_QEMU_VERSION)),
                         '.'.join(map(str, version))))

    def _update_capabilities(self) -> None:
        """Learn the firmware capabilities of the host.

        Called at init_host and again at every provider tree update: what
        the host answered is kept by ``Host``, so this costs no libvirt
        call, while a question libvirt failed to answer (a transient error
        at service start) is asked again instead of hiding the capability
        until the next restart.
        """
        support = self._host.stateless_firmware_support()
        self.capabilities['supports_stateless_firmware'] = support.supported
        try:
            secure_boot = self._host.supports_secure_boot
            stateless_secure_boot = (
                self._host.supports_stateless_secure_boot())
        except libvirt.libvirtError as ex:
            LOG.warning('Cannot tell whether this host supports secure boot,'
                        ' libvirt failed to answer: %s; asking again at the '
                        'next update', ex)
            secure_boot = stateless_secure_boot = False
        self.capabilities['supports_secure_boot'] = secure_boot
        self.capabilities['supports_stateless_secure_boot'] = (
            stateless_secure_boot)

    def update_provider_tree(
        self,
        provider_tree: 'provider_tree_mod.ProviderTree',
        nodename: str,
        allocations: ty.Optional[dict] = None,
    ) -> None:
        """Set this host's inventory and capability traits on its provider.

        Capability traits that are true are added and those that are false
        removed; every other trait on the provider (an operator's
        ``CUSTOM_*`` trait, a trait another service set) is left alone.
        """
        self._update_capabilities()
        provider_tree.update_inventory(nodename, self._get_inventory())
        traits = self.merge_capability_traits(
            provider_tree.data(nodename).traits,
            self.capabilities_as_traits())
        # The host's architecture, which decides the firmware of images
        # that name neither firmware nor architecture: the scheduler asks
        # for it to tell hosts that boot them BIOS from those that boot
        # them UEFI.
        arch_trait = getattr(os_traits, 'HW_ARCH_%s' %
                             self._host.get_host_arch().upper(), None)
        if arch_trait is not None:
            traits.add(arch_trait)
        provider_tree.update_traits(nodename, traits)

    def _get_inventory(self) -> dict:
        _model, memory_mb, cpus = self._host.get_info()[:3]
        disk = shutil.disk_usage(self._instances_base())
        disk_gb = disk.total // units.Gi
        inventory = {
            orc.VCPU: {
                'total': cpus, 'reserved': 0, 'min_unit': 1,
                'max_unit': cpus, 'step_size': 1,
                'allocation_ratio': CPU_ALLOCATION_RATIO,
            },
            orc.MEMORY_MB: {
                'total': memory_mb,
                'reserved': min(RESERVED_HOST_MEMORY_MB, memory_mb - 1),
                'min_unit': 1, 'max_unit': memory_mb, 'step_size': 1,
                'allocation_ratio': RAM_ALLOCATION_RATIO,
            },
        }
        # As Nova: an instances path on a filesystem under 1 GiB has no
        # disk to offer, and placement refuses an inventory of total 0.
        if disk_gb:
            inventory[orc.DISK_GB] = {
                'total': disk_gb, 'reserved': 0, 'min_unit': 1,
                'max_unit': disk_gb, 'step_size': 1,
                'allocation_ratio': DISK_ALLOCATION_RATIO,
            }
        return inventory

    # --- guest configuration

    def _get_guest_arch(self, image_meta: 'objects.ImageMeta') -> str:
        return (image_meta.properties.get('hw_architecture') or
                self._host.get_host_arch())

    def _get_machine_type(self, image_meta: 'objects.ImageMeta',
                          arch: str) -> ty.Optional[str]:
        return (image_meta.properties.get('hw_machine_type') or
                self._host.get_default_machine_type(arch))

    def _get_guest_config(
        self,
        instance: 'objects.Instance',
        image_meta: 'objects.ImageMeta',
        rescue: bool = False,
        existing: ty.Optional[vconfig.LibvirtConfigGuest] = None,
    ) -> vconfig.LibvirtConfigGuest:
        """Build the domain configuration of an instance.

        Nothing is defined or written here, so a request this host cannot
        honour fails before anything exists for the instance.

        :param existing: the instance's current definition on this host,
            when the domain is being redefined (hard reboot, power on,
            resize, revert, rescue): a stateful guest keeps its loader.
        """
        flavor = instance.flavor
        arch = self._get_guest_arch(image_meta)
        guest = vconfig.LibvirtConfigGuest()
        guest.virt_type = CONF.libvirt.virt_type
        guest.name = instance.name
        guest.uuid = instance.uuid
        guest.memory = flavor.memory_mb * units.Ki
        guest.vcpus = flavor.vcpus
        guest.os_type = 'hvm'
        guest.os_arch = arch
        guest.os_mach_type = self._get_machine_type(image_meta, arch)
        guest.add_feature(vconfig.LibvirtConfigGuestFeatureACPI())
        if arch in X86_ARCHITECTURES:
            guest.add_feature(vconfig.LibvirtConfigGuestFeatureAPIC())
        if (guest.virt_type == 'qemu' and
                arch == fields.Architecture.AARCH64):
            # QEMU emulates a 32-bit Cortex-A15 on the virt machine unless
            # told otherwise, which cannot run 64-bit UEFI firmware. (An
            # older libvirt than 7.1.0 refuses the mode: such a guest
            # could not boot there anyway.)
            guest.cpu_mode = CPU_MODE_MAXIMUM
        self._set_guest_firmware(guest, flavor, image_meta, arch, existing)
        self._add_guest_devices(guest, instance, rescue)
        return guest

    def _set_guest_firmware(
        self,
        guest: vconfig.LibvirtConfigGuest,
        flavor: 'objects.Flavor',
        image_meta: 'objects.ImageMeta',
        arch: str,
        existing: ty.Optional[vconfig.LibvirtConfigGuest] = None,
    ) -> None:
        # Read first: it refuses secure boot 'required' for a BIOS guest,
        # which must not boot without it if it slipped past the API.
        # ``arch`` is the guest's, the image's or else this host's: an
        # image that does not say boots the host arch's default firmware.
        policy = hardware.get_secure_boot_constraint(flavor, image_meta,
                                                     arch)
        if (hardware.get_firmware_type(image_meta, arch) !=
                fields.FirmwareType.UEFI):
            # BIOS: QEMU's built-in SeaBIOS, no loader and nothing to keep.
            return
        stateless = bool(hardware.get_stateless_firmware_constraint(
            image_meta, arch))
        if not stateless and self._keep_stateful_loader(guest, existing,
                                                        policy):
            return
        if stateless:
            support = self._host.stateless_firmware_support()
            if not support.supported:
                if support.probe_failed and self._keep_stateless_loader(
                        guest, existing):
                    return
                raise exception.StatelessFirmwareNotSupported(
                    reason='; '.join(support.reasons))
            if support.xml_form == libvirt_host.XML_FORM_AUTOSELECT:
                self._set_autoselected_stateless_firmware(guest, policy,
                                                          arch)
                return
        loader = self._choose_loader(arch, guest.os_mach_type, policy,
                                     stateless)
        self._warn_unseen_loader_files(loader.path, loader.nvram_template)
        guest.os_loader = loader.path
        guest.os_loader_type = loader.loader_type
        guest.os_loader_readonly = loader.readonly
        if loader.secure_boot:
            guest.os_loader_secure = True
        if stateless:
            guest.os_loader_stateless = True
        else:
            guest.os_nvram_template = loader.nvram_template
        if loader.requires_smm or loader.secure_boot:
            guest.add_feature(vconfig.LibvirtConfigGuestFeatureSMM())

    @staticmethod
    def _warn_unseen_loader_files(*paths: ty.Optional[str]) -> None:
        """Warn about firmware files this process cannot see.

        libvirt's domain capabilities, which offered the loader, are the
        truth: nova-compute and libvirt may run in separate containers, so
        a file missing here may well be there. A firmware package removed
        since libvirt was probed shows up as a failed start instead, which
        leaves the domain defined with its NVRAM for a retry.
        """
        for path in paths:
            if path is not None and not os.path.isfile(path):
                LOG.warning(
                    'UEFI firmware file %s, which libvirt offered, is not '
                    'visible to nova-compute; going ahead, as libvirt may '
                    'see another filesystem (containers). If both share '
                    'one, the firmware was removed since nova-compute '
                    'started and the guest will fail to start.', path)

    def _keep_stateless_loader(
        self,
        guest: vconfig.LibvirtConfigGuest,
        existing: ty.Optional[vconfig.LibvirtConfigGuest],
    ) -> bool:
        """Start an existing stateless guest on the loader it has.

        Only when libvirt just failed to tell what this host supports: an
        existing guest then keeps running on what it ran on, rather than
        being refused on a failure that has nothing to do with it.

        :returns: True when ``guest`` got the existing loader.
        """
        if existing is None or not existing.os_loader_stateless:
            return False
        LOG.warning('Starting stateless guest %s on the loader of its '
                    'definition, since libvirt failed to answer for this '
                    'host', guest.name)
        self._copy_loader(guest, existing)
        guest.os_firmware = existing.os_firmware
        guest.os_firmware_features = dict(existing.os_firmware_features)
        return True

    @staticmethod
    def _copy_loader(guest: vconfig.LibvirtConfigGuest,
                     existing: vconfig.LibvirtConfigGuest) -> None:
        """Give ``guest`` the loader, NVRAM and SMM of ``existing``."""
        for name in ('os_loader', 'os_loader_type', 'os_loader_readonly',
                     'os_loader_secure', 'os_loader_stateless', 'os_nvram',
                     'os_nvram_template'):
            setattr(guest, name, getattr(existing, name))
        for feature in existing.features:
            if isinstance(feature, vconfig.LibvirtConfigGuestFeatureSMM):
                guest.add_feature(vconfig.LibvirtConfigGuestFeatureSMM(
                    state=feature.state))

    def _keep_stateful_loader(
        self,
        guest: vconfig.LibvirtConfigGuest,
        existing: ty.Optional[vconfig.LibvirtConfigGuest],
        policy: ty.Optional[str],
    ) -> bool:
        """Reuse the loader a stateful guest already has, if it fits.

        Its variable store was made from that build's template and has
        been written by that build: a descriptor change since (a new
        firmware package, a masked descriptor) must not pair another
        executable with it. The kept loader must still satisfy the secure
        boot policy, which a resize to another flavor may change.

        :returns: True when ``guest`` got the existing loader.
        """
        if (existing is None or existing.os_firmware is not None or
                not existing.os_loader or existing.os_loader_stateless or
                existing.os_loader_type != firmware.LOADER_TYPE_PFLASH):
            return False
        secure = bool(existing.os_loader_secure)
        if policy == fields.SecureBoot.REQUIRED and not secure:
            return False
        if policy in (None, fields.SecureBoot.DISABLED) and secure:
            return False
        self._copy_loader(guest, existing)
        self._warn_unseen_loader_files(guest.os_loader)
        LOG.debug('Keeping the loader %s of stateful guest %s',
                  guest.os_loader, guest.name)
        return True

    def _choose_loader(self, arch: str, machine_type: ty.Optional[str],
                       policy: ty.Optional[str],
                       stateless: bool) -> firmware.UEFILoader:
        """Pick the loader for a secure boot policy.

        ``required`` is satisfied only by a loader that enforces secure
        boot; ``optional`` falls back to one without. A guest never claims
        secure boot that it does not enforce.
        """
        if policy in (fields.SecureBoot.REQUIRED, fields.SecureBoot.OPTIONAL):
            try:
                return self._host.get_loader(
                    arch, machine_type, secure_boot=True, stateless=stateless)
            except exception.UEFILoaderNotFound:
                if policy == fields.SecureBoot.REQUIRED:
                    if stateless:
                        raise exception.StatelessSecureBootNotSupported()
                    raise exception.SecureBootNotSupported()
                LOG.info('Secure boot is optional and no loader on this '
                         'host enforces it for this guest; booting without.')
        return self._host.get_loader(arch, machine_type, secure_boot=False,
                                     stateless=stateless)

    def _set_autoselected_stateless_firmware(
        self,
        guest: vconfig.LibvirtConfigGuest,
        policy: ty.Optional[str],
        arch: str,
    ) -> None:
        # Where libvirt can satisfy <os firmware='efi'> with a stateless
        # descriptor, let it choose; secure boot is then a firmware feature
        # request libvirt enforces, never a loader attribute (which it
        # rejects together with autoselection).
        guest.os_firmware = 'efi'
        guest.os_loader_stateless = True
        if policy == fields.SecureBoot.REQUIRED:
            self._check_stateless_secure_boot(arch, guest.os_mach_type)
            guest.os_firmware_features = {
                firmware.FEATURE_SECURE_BOOT: True,
                firmware.FEATURE_ENROLLED_KEYS: True}
        elif policy in (None, fields.SecureBoot.DISABLED):
            guest.os_firmware_features = {firmware.FEATURE_SECURE_BOOT: False}
        # 'optional': either kind of firmware will do.

    def _check_stateless_secure_boot(self, arch: str,
                                     machine_type: ty.Optional[str]) -> None:
        # libvirt looks for a firmware with the requested features only at
        # start, once the domain is defined; refuse here instead when no
        # stateless build that enforces secure boot is installed.
        if not self._host.supports_stateless_secure_boot(arch,
                                                         machine_type):
            raise exception.StatelessSecureBootNotSupported()

    def _add_guest_devices(self, guest: vconfig.LibvirtConfigGuest,
                           instance: 'objects.Instance',
                           rescue: bool) -> None:
        instance_dir = self._instance_dir(instance)
        disk_names = [DISK_NAME]
        if rescue:
            # The rescue disk boots first; the instance's own disk is
            # attached second so the rescuer can repair it.
            disk_names = [RESCUE_DISK_NAME, DISK_NAME]
        for index, name in enumerate(disk_names):
            disk = vconfig.LibvirtConfigGuestDisk()
            disk.source_type = 'file'
            disk.source_device = 'disk'
            disk.driver_name = 'qemu'
            disk.driver_format = 'qcow2'
            disk.source_path = os.path.join(instance_dir, name)
            disk.target_bus = 'virtio'
            disk.target_dev = 'vd' + chr(ord('a') + index)
            guest.add_device(disk)
        serial = vconfig.LibvirtConfigGuestSerial()
        serial.type = 'file'
        serial.source_path = self.console_log_path(instance)
        guest.add_device(serial)
        balloon = vconfig.LibvirtConfigMemoryBalloon()
        balloon.model = 'none'
        guest.add_device(balloon)

    def _get_guest_xml(
        self, instance: 'objects.Instance',
        image_meta: 'objects.ImageMeta', rescue: bool = False,
        existing: ty.Optional[vconfig.LibvirtConfigGuest] = None,
    ) -> str:
        xml = self._get_guest_config(instance, image_meta, rescue,
                                     existing).to_xml()
        LOG.debug('End _get_guest_xml xml=%s', xml)
        return xml

    # --- instance files

    @staticmethod
    def _instances_base() -> str:
        path = CONF.instances_path
        os.makedirs(path, exist_ok=True)
        return path

    def _instance_dir(self, instance: 'objects.Instance') -> str:
        return os.path.join(CONF.instances_path, instance.uuid)

    def console_log_path(self, instance: 'objects.Instance') -> str:
        """The file the guest's serial console is written to."""
        return os.path.join(self._instance_dir(instance), CONSOLE_LOG_NAME)

    def _create_disk(self, instance: 'objects.Instance', name: str,
                     size_gb: int) -> None:
        path = os.path.join(self._instance_dir(instance), name)
        if os.path.exists(path):
            return
        # A sparse qcow2 image: it costs a few hundred KiB whatever its
        # virtual size.
        subprocess.run(
            ['qemu-img', 'create', '-q', '-f', 'qcow2', path,
             '%dG' % max(size_gb, 1)],
            check=True, capture_output=True)

    def _create_instance_files(self, instance: 'objects.Instance') -> None:
        os.makedirs(self._instance_dir(instance), exist_ok=True)
        self._create_disk(instance, DISK_NAME, instance.flavor.root_gb)

    def _remove_instance_files(self, instance: 'objects.Instance') -> None:
        shutil.rmtree(self._instance_dir(instance), ignore_errors=True)

    # --- domains

    def _lookup_guest(
        self, instance: 'objects.Instance',
    ) -> ty.Optional[libvirt_guest.Guest]:
        try:
            return libvirt_guest.Guest(
                self._host.get_instance_domain(instance))
        except exception.InstanceNotFound:
            return None

    def _get_guest(self, instance: 'objects.Instance') -> libvirt_guest.Guest:
        guest = self._lookup_guest(instance)
        if guest is None:
            raise exception.InstanceNotFound(instance_id=instance.uuid)
        return guest

    def _existing_config(
        self, instance: 'objects.Instance',
    ) -> ty.Optional[vconfig.LibvirtConfigGuest]:
        """The instance's persistent definition on this host, if any."""
        guest = self._lookup_guest(instance)
        if guest is None:
            return None
        return guest.get_config(dump_inactive=True)

    def _create_guest(self, xml: str,
                      power_on: bool = True) -> libvirt_guest.Guest:
        """Define the domain and start it.

        When the start fails the domain stays defined, NVRAM included: a
        guest that failed to come back from a hard reboot keeps its UEFI
        variables for the next try, and spawn removes what it created
        itself. A start that failed because the connection to libvirt was
        lost raises ``HypervisorUnavailable``.
        """
        guest = libvirt_guest.Guest(self._host.write_instance_config(xml))
        if power_on:
            try:
                guest.launch()
            except libvirt.libvirtError as ex:
                self._host.raise_if_connection_lost(ex, 'createWithFlags')
                raise
        return guest

    def _remove_domain(self, instance: 'objects.Instance',
                       keep_nvram: bool) -> None:
        guest = self._lookup_guest(instance)
        if guest is None:
            return
        guest.poweroff()
        guest.delete_configuration(keep_nvram=keep_nvram)

    def _redefine_and_start(self, instance: 'objects.Instance', xml: str,
                            power_on: bool = True) -> None:
        """Replace a domain's definition, keeping its NVRAM.

        The new XML is built by the caller before anything is touched: if
        it cannot be built the guest is left as it was. The new definition
        is written over the old one rather than after an undefine: when
        libvirt refuses it, the old definition stays, and with it the
        NVRAM file, which destroy then removes with the domain. After an
        undefine that keeps the NVRAM, a refused define would leave that
        file to nobody.
        """
        guest = self._lookup_guest(instance)
        if guest is not None:
            guest.poweroff()
        self._create_guest(xml, power_on=power_on)

    def list_instances(self) -> list[str]:
        return self._host.list_instance_names()

    def get_info(self, instance: 'objects.Instance') -> int:
        """Return the power state of an instance."""
        guest = self._lookup_guest(instance)
        if guest is None:
            return POWER_NOSTATE
        return POWER_RUNNING if guest.is_active() else POWER_SHUTDOWN

    # --- lifecycle

    def spawn(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        image_meta: 'objects.ImageMeta',
        injected_files: ty.Optional[list] = None,
        admin_password: ty.Optional[str] = None,
        allocations: ty.Optional[dict] = None,
        network_info: ty.Any = None,
        block_device_info: ty.Any = None,
        power_on: bool = True,
    ) -> None:
        """Create and start a new guest for ``instance``.

        Any failure, from a request this host cannot honour to a start that
        fails half way, leaves no domain defined, no NVRAM file and no
        instance files.
        """
        xml = self._get_guest_xml(instance, image_meta)
        try:
            self._create_instance_files(instance)
            self._create_guest(xml, power_on=power_on)
        except Exception:
            self._cleanup_failed_spawn(instance)
            raise
        LOG.info('Instance %(uuid)s spawned as domain %(name)s',
                 {'uuid': instance.uuid, 'name': instance.name})

    def _cleanup_failed_spawn(self, instance: 'objects.Instance') -> None:
        try:
            self._remove_domain(instance, keep_nvram=False)
        except Exception:
            # The connection may be what failed; the instance files go
            # regardless and destroy() can be retried by the operator.
            LOG.exception('Could not undefine %s after a failed spawn',
                          instance.name)
        self._remove_instance_files(instance)

    def destroy(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        network_info: ty.Any = None,
        block_device_info: ty.Any = None,
        destroy_disks: bool = True,
    ) -> None:
        """Stop and undefine the guest, removing its NVRAM with it."""
        self._remove_domain(instance, keep_nvram=False)
        if destroy_disks:
            self._remove_instance_files(instance)

    def reboot(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        network_info: ty.Any,
        reboot_type: str,
        block_device_info: ty.Any = None,
        bad_volumes_callback: ty.Any = None,
        accel_info: ty.Any = None,
    ) -> None:
        """Reboot an instance.

        A soft reboot asks the guest to shut down and starts the same
        domain again; when the guest does not stop in
        ``[libvirt] wait_soft_reboot_seconds`` it becomes a hard reboot,
        which rebuilds the XML from the instance's stashed image
        properties and keeps a stateful guest's NVRAM.
        """
        if reboot_type == REBOOT_SOFT and self._soft_reboot(instance):
            return
        self._hard_reboot(context, instance)

    def _soft_reboot(self, instance: 'objects.Instance') -> bool:
        guest = self._get_guest(instance)
        if not guest.is_active():
            return False
        try:
            guest.shutdown()
        except libvirt.libvirtError as ex:
            LOG.warning('Soft reboot of %s failed to ask for a shutdown: %s',
                        instance.name, ex)
            return False
        if not guest.wait_for_shutoff(CONF.libvirt.wait_soft_reboot_seconds):
            LOG.warning('Instance %s did not shut down in %d seconds; '
                        'rebooting it hard', instance.name,
                        CONF.libvirt.wait_soft_reboot_seconds)
            return False
        guest.launch()
        return True

    def _hard_reboot(self, context: ty.Any,
                     instance: 'objects.Instance') -> None:
        xml = self._get_guest_xml(instance, instance.image_meta,
                                  existing=self._existing_config(instance))
        self._create_instance_files(instance)
        self._redefine_and_start(instance, xml)

    def power_off(self, instance: 'objects.Instance', timeout: int = 0,
                  retry_interval: int = 0) -> None:
        """Power off; the domain stays defined with its NVRAM."""
        guest = self._get_guest(instance)
        if timeout and guest.is_active():
            try:
                guest.shutdown()
            except libvirt.libvirtError:
                pass
            else:
                if guest.wait_for_shutoff(timeout, retry_interval or 0.5):
                    return
        guest.poweroff()

    def power_on(self, context: ty.Any, instance: 'objects.Instance',
                 network_info: ty.Any = None, block_device_info: ty.Any = None,
                 accel_info: ty.Any = None) -> None:
        """Power on, rebuilding the XML as a hard reboot does (as Nova)."""
        self._hard_reboot(context, instance)

    def rebuild(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        image_meta: 'objects.ImageMeta',
        **kwargs: ty.Any,
    ) -> None:
        """Rebuild the instance onto ``image_meta`` on this host.

        As Nova's default rebuild: the old guest goes, NVRAM included, and a
        new one is spawned. So stateful -> stateless leaves no NVRAM behind
        and stateless -> stateful starts from a fresh variable store. The
        new XML is built first, so an image this host cannot boot leaves
        the old guest untouched.
        """
        self._get_guest_config(instance, image_meta)
        self.destroy(context, instance, destroy_disks=True)
        self.spawn(context, instance, image_meta)

    def rescue(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        network_info: ty.Any,
        image_meta: 'objects.ImageMeta',
        rescue_password: ty.Optional[str] = None,
        block_device_info: ty.Any = None,
    ) -> None:
        """Boot the instance from a rescue disk.

        The rescue guest keeps the instance's own firmware mode (read from
        its stashed image properties, not from the rescue image): a
        stateless instance is rescued stateless, and a stateful one keeps
        its NVRAM.
        """
        guest = self._get_guest(instance)
        unrescue_xml = guest.get_xml_desc(dump_inactive=True)
        try:
            xml = self._get_guest_xml(
                instance, instance.image_meta, rescue=True,
                existing=guest.get_config(dump_inactive=True))
        except Exception as ex:
            raise exception.InstanceRescueFailure(reason=str(ex)) from ex
        unrescue_path = os.path.join(self._instance_dir(instance),
                                     UNRESCUE_XML_NAME)
        with open(unrescue_path, 'w') as f:
            f.write(unrescue_xml)
        self._create_disk(instance, RESCUE_DISK_NAME, 1)
        self._redefine_and_start(instance, xml)

    def unrescue(self, context: ty.Any,
                 instance: 'objects.Instance') -> None:
        """Return the instance to the domain it had before rescue."""
        instance_dir = self._instance_dir(instance)
        unrescue_path = os.path.join(instance_dir, UNRESCUE_XML_NAME)
        with open(unrescue_path) as f:
            xml = f.read()
        self._redefine_and_start(instance, xml)
        os.unlink(unrescue_path)
        rescue_disk = os.path.join(instance_dir, RESCUE_DISK_NAME)
        if os.path.exists(rescue_disk):
            os.unlink(rescue_disk)

    # --- cold migration and resize (driver side)

    def migrate_disk_and_power_off(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        dest: str,
        flavor: 'objects.Flavor',
        network_info: ty.Any = None,
        block_device_info: ty.Any = None,
        timeout: int = 0,
        retry_interval: int = 0,
        shared_storage: bool = False,
    ) -> str:
        """Power the instance off ahead of a resize or cold migration.

        The domain stays defined, NVRAM included, until the move is
        confirmed (``confirm_migration`` removes it from a source host) or
        reverted (``finish_revert_migration`` starts it again).

        :param shared_storage: whether ``dest`` shares this host's instance
            directory, as the compute manager finds out with
            ``check_instance_shared_storage_*``. A move to another host
            needs it: copying the disks is not implemented here.
        :raises MigrationPreCheckError: for another host without shared
            storage, before anything is touched.
        """
        if not self._is_this_host(dest) and not shared_storage:
            raise exception.MigrationPreCheckError(
                reason='cold migration of %s to %s needs shared instance '
                       'storage; copying the disks is not implemented' %
                       (instance.uuid, dest))
        self.power_off(instance, timeout, retry_interval)
        return ''

    def _is_this_host(self, name: ty.Optional[str]) -> bool:
        if self._nodename is not None:
            return name == self._nodename
        return name in (CONF.host, self._host.get_hostname())

    # Nova's names: the manager creates a file on one host and looks for it
    # from the other, through the compute RPC API.

    def check_instance_shared_storage_local(
            self, context: ty.Any, instance: 'objects.Instance') -> dict:
        """Create a test file in the instance directory base."""
        fd, path = tempfile.mkstemp(dir=self._instances_base(),
                                    prefix='.shared-storage-')
        os.close(fd)
        return {'filename': os.path.basename(path)}

    def check_instance_shared_storage_remote(self, context: ty.Any,
                                             data: dict) -> bool:
        """Whether the other host's test file is visible here."""
        return os.path.exists(os.path.join(self._instances_base(),
                                           data['filename']))

    def check_instance_shared_storage_cleanup(self, context: ty.Any,
                                              data: dict) -> None:
        try:
            os.unlink(os.path.join(self._instances_base(), data['filename']))
        except FileNotFoundError:
            pass

    def finish_migration(
        self,
        context: ty.Any,
        migration_obj: ty.Any,
        instance: 'objects.Instance',
        disk_info: str,
        network_info: ty.Any,
        image_meta: 'objects.ImageMeta',
        resize_instance: bool,
        allocations: ty.Optional[dict] = None,
        block_device_info: ty.Any = None,
        power_on: bool = True,
    ) -> None:
        """Start the instance with its new flavor (``instance.flavor``)."""
        xml = self._get_guest_xml(instance, image_meta,
                                  existing=self._existing_config(instance))
        if resize_instance:
            subprocess.run(
                ['qemu-img', 'resize', '-q',
                 os.path.join(self._instance_dir(instance), DISK_NAME),
                 '%dG' % max(instance.flavor.root_gb, 1)],
                check=True, capture_output=True)
        self._redefine_and_start(instance, xml, power_on=power_on)

    def finish_revert_migration(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        network_info: ty.Any,
        migration_obj: ty.Any = None,
        block_device_info: ty.Any = None,
        power_on: bool = True,
    ) -> None:
        """Start the instance again with its old flavor."""
        xml = self._get_guest_xml(instance, instance.image_meta,
                                  existing=self._existing_config(instance))
        self._redefine_and_start(instance, xml, power_on=power_on)

    def confirm_migration(self, context: ty.Any, migration_obj: ty.Any,
                          instance: 'objects.Instance',
                          network_info: ty.Any = None) -> None:
        """Clean up the source after a confirmed move.

        After a resize on this host nothing is left. After a move to
        another host (``instance.host`` is already the destination) the
        domain still defined here goes, with its NVRAM; the disks, on
        shared storage, are the destination's now.
        """
        if instance.host is None or self._is_this_host(instance.host):
            return
        self._remove_domain(instance, keep_nvram=False)

    # --- live migration (checks and XML)

    def check_can_live_migrate_destination(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        src_compute_info: ty.Any = None,
        dst_compute_info: ty.Any = None,
        block_migration: bool = False,
        disk_over_commit: bool = False,
    ) -> migration.LibvirtLiveMigrateData:
        """Check on the destination that it can run the instance's firmware.

        A stateless instance needs a destination that reports the
        capability, and a loader for its machine type must exist here;
        otherwise the migration is refused before anything moves.
        """
        image_meta = instance.image_meta
        arch = self._get_guest_arch(image_meta)
        stateless = bool(
            hardware.get_stateless_firmware_constraint(image_meta, arch))
        self._update_capabilities()
        if stateless and not self.capabilities['supports_stateless_firmware']:
            raise exception.MigrationPreCheckError(
                reason='instance %s uses stateless firmware and the '
                       'destination host does not support it: %s' % (
                           instance.uuid, '; '.join(
                               self._host.stateless_firmware_support()
                               .reasons)))
        migrate_data = migration.LibvirtLiveMigrateData(
            dst_supports_stateless_firmware=self.capabilities[
                'supports_stateless_firmware'],
            target_connect_addr=CONF.libvirt.live_migration_inbound_addr)
        if (hardware.get_firmware_type(image_meta, arch) ==
                fields.FirmwareType.UEFI):
            try:
                config = self._get_guest_config(instance, image_meta)
            except exception.NovaException as ex:
                raise exception.MigrationPreCheckError(
                    reason='the destination cannot build the firmware of '
                           'instance %s: %s' % (instance.uuid,
                                                ex.format_message())
                ) from ex
            migrate_data.dst_os_loader = config.os_loader
            migrate_data.dst_os_firmware = config.os_firmware
            migrate_data.dst_os_loader_secure = config.os_loader_secure
            migrate_data.dst_os_firmware_features = dict(
                config.os_firmware_features)
        return migrate_data

    def check_can_live_migrate_source(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        dest_check_data: migration.LibvirtLiveMigrateData,
        block_device_info: ty.Any = None,
    ) -> migration.LibvirtLiveMigrateData:
        """Check on the source what the destination reported."""
        stateless = hardware.get_stateless_firmware_constraint(
            instance.image_meta, self._get_guest_arch(instance.image_meta))
        if stateless and not dest_check_data.dst_supports_stateless_firmware:
            raise exception.MigrationPreCheckError(
                reason='instance %s uses stateless firmware and the '
                       'destination host does not support it' %
                       instance.uuid)
        return dest_check_data

    def get_updated_guest_xml(
        self,
        instance: 'objects.Instance',
        migrate_data: migration.LibvirtLiveMigrateData,
    ) -> str:
        """The source domain's XML, updated for the destination."""
        guest = self._get_guest(instance)
        return migration.get_updated_guest_xml(
            guest.get_xml_desc(dump_migratable=True), migrate_data)

    def live_migration(
        self,
        context: ty.Any,
        instance: 'objects.Instance',
        dest: str,
        post_method: ty.Callable,
        recover_method: ty.Callable,
        block_migration: bool = False,
        migrate_data: ty.Optional[migration.LibvirtLiveMigrateData] = None,
    ) -> None:
        """Live-migrate the instance to ``dest``, peer to peer.

        The domain is defined on the destination from the source's live
        XML rewritten for it (``get_updated_guest_xml``): a stateless guest
        in the destination's XML form and with no NVRAM. Instance storage
        must be shared; block migration is not implemented here.
        This host's libvirt reaches the destination's at
        ``[libvirt] live_migration_uri``; the guest's memory goes to the
        destination's ``live_migration_inbound_addr`` when it reported one.
        ``post_method`` runs once the guest runs on the destination,
        ``recover_method`` when the migration failed and the guest still
        runs here.
        """
        if block_migration:
            raise NotImplementedError(
                'Block live migration is not implemented here; instance '
                'storage must be shared.')
        migrate_data = migrate_data or migration.LibvirtLiveMigrateData()
        guest = self._get_guest(instance)
        xml = migration.get_updated_guest_xml(
            guest.get_xml_desc(dump_migratable=True), migrate_data)
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER |
                 libvirt.VIR_MIGRATE_PERSIST_DEST |
                 libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        address = migrate_data.target_connect_addr
        migrate_uri = migration.migrate_uri(address) if address else None
        try:
            guest.migrate(migration.destination_uri(address or dest), xml,
                          flags, migrate_uri=migrate_uri,
                          listen_address=address)
        except libvirt.libvirtError as ex:
            LOG.error('Live migration of %(uuid)s to %(dest)s failed: '
                      '%(err)s', {'uuid': instance.uuid, 'dest': dest,
                                  'err': ex})
            recover_method(context, instance, dest, migrate_data)
            raise
        post_method(context, instance, dest, block_migration, migrate_data)
