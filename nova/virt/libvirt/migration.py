"""Utility methods to manage guests migration."""

import dataclasses
import typing as ty

from lxml import etree
from oslo_utils import netutils

import nova.conf

CONF = nova.conf.CONF


@dataclasses.dataclass
class LibvirtLiveMigrateData:
    """What the destination of a live migration tells the source.

    Only the firmware part of Nova's object of the same name.
    """

    dst_supports_stateless_firmware: bool = False
    #: The loader image the destination would use (explicit XML form), or
    #: None for BIOS or firmware autoselection.
    dst_os_loader: ty.Optional[str] = None
    #: ``efi`` when the destination autoselects the firmware.
    dst_os_firmware: ty.Optional[str] = None
    #: Whether the destination's explicit loader enforces secure boot.
    dst_os_loader_secure: ty.Optional[bool] = None
    #: The firmware features the destination's autoselection asks for
    #: (name -> enabled).
    dst_os_firmware_features: dict[str, bool] = dataclasses.field(
        default_factory=dict)
    #: Where the destination receives the guest's memory (its
    #: ``[libvirt] live_migration_inbound_addr``), or None to leave it to
    #: libvirt.
    target_connect_addr: ty.Optional[str] = None


#: The libvirt URI of a live migration's destination host unless
#: ``[libvirt] live_migration_uri`` names another.
DESTINATION_URI = 'qemu+tcp://%s/system'


def destination_uri(dest: str) -> str:
    """The URI the source's libvirt migrates to, peer to peer.

    :param dest: the destination's inbound address or host name, which
        replaces any ``%s`` of ``[libvirt] live_migration_uri``.
    """
    template = CONF.libvirt.live_migration_uri or DESTINATION_URI
    # Not the % operator: a URI may hold percent-encoded characters, and
    # one that names a UNIX socket needs no host at all.
    return template.replace('%s', netutils.escape_ipv6(dest))


def migrate_uri(address: str) -> str:
    """The URI QEMU sends the guest's memory to, at ``address``."""
    return 'tcp://%s' % netutils.escape_ipv6(address)


def get_updated_guest_xml(guest_xml: str,
                          migrate_data: LibvirtLiveMigrateData) -> str:
    """Return the domain XML as it must be defined on the destination.

    A stateless guest is written in the destination's XML form, whatever
    the source's: an explicit read-only loader at the destination's path,
    or ``<os firmware='efi'>`` with a pathless stateless loader where the
    destination autoselects; the two hosts' libvirt may each accept only
    its own. The guest keeps its mode: a stateless guest stays stateless
    and gains no ``<nvram>``. A stateful guest keeps its loader and
    variable store, the loader at the destination's path.
    """
    root = etree.fromstring(guest_xml)
    _update_loader(root, migrate_data)
    return etree.tostring(root, encoding='unicode')


def _update_loader(root: etree._Element,
                   migrate_data: LibvirtLiveMigrateData) -> None:
    os_node = root.find('os')
    if os_node is None:
        return
    loader = os_node.find('loader')
    if loader is None:
        return
    if loader.get('stateless') != 'yes':
        if migrate_data.dst_os_loader and loader.text:
            loader.text = migrate_data.dst_os_loader
        return
    if migrate_data.dst_os_firmware == 'efi':
        _to_autoselection(os_node, loader, migrate_data)
    elif migrate_data.dst_os_loader:
        _to_explicit_loader(os_node, loader, migrate_data)
    # Never give a stateless guest a variable store, whatever the source
    # definition carried.
    for nvram in os_node.findall('nvram'):
        os_node.remove(nvram)


def _remove_firmware_features(os_node: etree._Element) -> None:
    for node in os_node.findall('firmware'):
        os_node.remove(node)


def _to_autoselection(os_node: etree._Element, loader: etree._Element,
                      migrate_data: LibvirtLiveMigrateData) -> None:
    # A live source that autoselected shows the image libvirt resolved;
    # the destination resolves its own, and libvirt rejects loader
    # attributes other than 'stateless' beside autoselection.
    os_node.set('firmware', 'efi')
    loader.attrib.clear()
    loader.set('stateless', 'yes')
    loader.text = None
    _remove_firmware_features(os_node)
    if migrate_data.dst_os_firmware_features:
        node = etree.Element('firmware')
        for name, enabled in migrate_data.dst_os_firmware_features.items():
            etree.SubElement(node, 'feature', enabled='yes' if enabled
                             else 'no', name=name)
        os_node.find('type').addnext(node)


def _to_explicit_loader(os_node: etree._Element, loader: etree._Element,
                        migrate_data: LibvirtLiveMigrateData) -> None:
    os_node.attrib.pop('firmware', None)
    _remove_firmware_features(os_node)
    loader.attrib.clear()
    loader.set('readonly', 'yes')
    if migrate_data.dst_os_loader_secure:
        loader.set('secure', 'yes')
    loader.set('type', 'pflash')
    loader.set('stateless', 'yes')
    loader.text = migrate_data.dst_os_loader
