"""Utility methods to manage guests migration."""

import dataclasses
import typing as ty

from lxml import etree


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


def get_updated_guest_xml(guest_xml: str,
                          migrate_data: LibvirtLiveMigrateData) -> str:
    """Return the domain XML as it must be defined on the destination.

    The firmware image may live at another path there; the guest keeps its
    mode: a stateless guest stays stateless and gains no ``<nvram>``.
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
    if migrate_data.dst_os_loader and loader.text:
        loader.text = migrate_data.dst_os_loader
    if loader.get('stateless') == 'yes':
        # Never give a stateless guest a variable store, whatever the
        # source definition carried.
        for nvram in os_node.findall('nvram'):
            os_node.remove(nvram)
