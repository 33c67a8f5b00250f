"""Configuration objects of the libvirt driver.

Each ``LibvirtConfig*`` object models one libvirt XML element: the driver
fills in attributes and calls ``to_xml`` to get the document it passes to
libvirt, and the host layer calls ``parse_str`` on what libvirt reports
(host capabilities, domain capabilities, a live domain's XML) to read it
back as attributes.

The objects format exactly what they are told and choose nothing: which
firmware a guest gets, and in which XML form, is decided by the driver and
the host layer, because the accepted forms differ between libvirt versions.

Parsing reads the elements and attributes modelled here and skips the rest,
since libvirt documents carry many more (addresses, controllers, CPU
models, ...) and gain new ones with every release.
"""

from lxml import etree
from oslo_log import log as logging

from nova import exception
from nova.i18n import _

LOG = logging.getLogger(__name__)

# Bytes per unit of libvirt's memory ``unit`` attribute; a missing unit
# means KiB.
_MEMORY_UNITS = {
    'b': 1, 'bytes': 1,
    'KB': 1000, 'k': 1024, 'KiB': 1024,
    'MB': 1000 ** 2, 'M': 1024 ** 2, 'MiB': 1024 ** 2,
    'GB': 1000 ** 3, 'G': 1024 ** 3, 'GiB': 1024 ** 3,
    'TB': 1000 ** 4, 'T': 1024 ** 4, 'TiB': 1024 ** 4,
}


def _format_yes_no(value: bool) -> str:
    return 'yes' if value else 'no'


def _parse_yes_no(value: str | None) -> bool | None:
    """Read a libvirt yes/no attribute; None when it is absent."""
    if value is None:
        return None
    return value.strip().lower() in ('yes', 'on', 'true', '1')


def _text(node: etree._Element) -> str | None:
    """The stripped text of a node, or None when it holds none."""
    if node.text is None:
        return None
    return node.text.strip() or None


def _children(node: etree._Element):
    """Child elements of a node.

    Comments and processing instructions, whose ``tag`` is not a string,
    are skipped.
    """
    return (c for c in node if isinstance(c.tag, str))


def _parse_memory_kib(node: etree._Element) -> int:
    unit = node.get('unit', 'KiB')
    try:
        factor = _MEMORY_UNITS[unit]
    except KeyError:
        raise exception.InvalidInput(
            reason=_("Unknown memory unit '%s'") % unit)
    return int(node.text.strip()) * factor // 1024


def _parse_enum_values(node: etree._Element) -> list[str]:
    return [_text(v) for v in _children(node)
            if v.tag == 'value' and _text(v) is not None]


class LibvirtConfigObject:
    """Base of all config objects: one XML element, formatted and parsed."""

    def __init__(self, root_name: str, ns_prefix: str | None = None,
                 ns_uri: str | None = None) -> None:
        self.root_name = root_name
        self.ns_prefix = ns_prefix
        self.ns_uri = ns_uri

    def _new_node(self, node_name: str, **attrs) -> etree._Element:
        if self.ns_uri is None:
            node = etree.Element(node_name)
        else:
            node = etree.Element('{%s}%s' % (self.ns_uri, node_name),
                                 nsmap={self.ns_prefix: self.ns_uri})
        for key, value in attrs.items():
            if value is not None:
                node.set(key, str(value))
        return node

    def _text_node(self, node_name: str, value,
                   **attrs) -> etree._Element:
        """A node holding ``value`` as text.

        Attributes whose value is None are left out, so callers can pass
        optional attributes unconditionally.
        """
        node = self._new_node(node_name, **attrs)
        if value is not None:
            node.text = str(value)
        return node

    def format_dom(self) -> etree._Element:
        return self._new_node(self.root_name)

    def parse_dom(self, xmldoc: etree._Element) -> None:
        tag = etree.QName(xmldoc).localname
        if tag != self.root_name:
            raise exception.InvalidInput(
                reason=_("Root element name should be '%(name)s' not "
                         "'%(tag)s'") % {'name': self.root_name, 'tag': tag})

    def to_xml(self, pretty_print: bool = True) -> str:
        return etree.tostring(self.format_dom(), encoding='unicode',
                              pretty_print=pretty_print)

    def parse_str(self, xmlstr: str | bytes) -> None:
        # Bytes let lxml honour an XML declaration with an encoding, which
        # it refuses on str input. Entities and network access are off: the
        # document describes a machine, it has no business fetching
        # anything.
        if isinstance(xmlstr, str):
            xmlstr = xmlstr.encode('utf-8')
        parser = etree.XMLParser(remove_blank_text=True,
                                 remove_comments=True,
                                 resolve_entities=False, no_network=True)
        self.parse_dom(etree.fromstring(xmlstr, parser))


# Host capabilities: virConnect.getCapabilities()


class LibvirtConfigCPU(LibvirtConfigObject):
    """A CPU description as the host capabilities report it."""

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='cpu', **kwargs)
        self.arch: str | None = None
        self.model: str | None = None
        self.vendor: str | None = None
        self.features: list[str] = []

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        for child in _children(xmldoc):
            if child.tag == 'arch':
                self.arch = _text(child)
            elif child.tag == 'model':
                self.model = _text(child)
            elif child.tag == 'vendor':
                self.vendor = _text(child)
            elif child.tag == 'feature' and child.get('name'):
                self.features.append(child.get('name'))

    def format_dom(self) -> etree._Element:
        cpu = super().format_dom()
        for name in ('arch', 'model', 'vendor'):
            value = getattr(self, name)
            if value is not None:
                cpu.append(self._text_node(name, value))
        for feature in self.features:
            cpu.append(self._new_node('feature', name=feature))
        return cpu


class LibvirtConfigCapsHost(LibvirtConfigObject):

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='host', **kwargs)
        self.uuid: str | None = None
        self.cpu: LibvirtConfigCPU | None = None
        #: virt type -> the ``+UID:+GID`` libvirt's DAC security driver
        #: runs its guests' QEMU as (``<secmodel>`` of model ``dac``).
        self.dac_base_labels: dict[str, str] = {}

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        for child in _children(xmldoc):
            if child.tag == 'uuid':
                self.uuid = _text(child)
            elif child.tag == 'cpu':
                cpu = LibvirtConfigCPU()
                cpu.parse_dom(child)
                self.cpu = cpu
            elif child.tag == 'secmodel' and child.findtext('model') == 'dac':
                for label in child.iterfind('baselabel'):
                    self.dac_base_labels[label.get('type')] = _text(label)

    def format_dom(self) -> etree._Element:
        host = super().format_dom()
        if self.uuid is not None:
            host.append(self._text_node('uuid', self.uuid))
        if self.cpu is not None:
            host.append(self.cpu.format_dom())
        if self.dac_base_labels:
            secmodel = self._new_node('secmodel')
            secmodel.append(self._text_node('model', 'dac'))
            for virt_type, label in sorted(self.dac_base_labels.items()):
                secmodel.append(self._text_node('baselabel', label,
                                                type=virt_type))
            host.append(secmodel)
        return host


def _parse_machine(node: etree._Element) -> tuple[str | None, str | None]:
    """Name and canonical name of a capabilities ``<machine>``.

    An alias such as ``q35`` has the versioned machine type it stands for
    as canonical name; other machines have None.
    """
    return _text(node), node.get('canonical')


def _parse_emulator_or_machine(obj, node: etree._Element) -> bool:
    """Read an ``<emulator>`` or ``<machine>`` into ``obj``.

    Both ``<arch>`` and its ``<domain>`` elements carry them.

    :returns: whether ``node`` was one of the two.
    """
    if node.tag == 'emulator':
        obj.emulator = _text(node)
        return True
    if node.tag == 'machine':
        name, canonical = _parse_machine(node)
        if name:
            obj.machines[name] = canonical
        return True
    return False


def _format_machines(obj: LibvirtConfigObject, parent: etree._Element,
                     machines: dict[str, str | None]) -> None:
    for name, canonical in machines.items():
        parent.append(obj._text_node('machine', name, canonical=canonical))


class LibvirtConfigCapsGuestDomain(LibvirtConfigObject):
    """One virt type (``qemu``, ``kvm``) a guest architecture offers.

    ``emulator`` and ``machines`` are the effective values: libvirt lists
    them under ``<domain>`` only where they differ from the architecture's
    defaults, and the parent guest fills in the defaults otherwise.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='domain', **kwargs)
        self.domtype: str | None = None
        self.emulator: str | None = None
        self.machines: dict[str, str | None] = {}

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.domtype = xmldoc.get('type')
        for child in _children(xmldoc):
            _parse_emulator_or_machine(self, child)

    def format_dom(self) -> etree._Element:
        domain = super().format_dom()
        if self.domtype is not None:
            domain.set('type', self.domtype)
        if self.emulator is not None:
            domain.append(self._text_node('emulator', self.emulator))
        _format_machines(self, domain, self.machines)
        return domain


class LibvirtConfigCapsGuest(LibvirtConfigObject):
    """One guest architecture and OS type the host can run.

    ``emulator`` and ``machines`` are the defaults libvirt reports under
    ``<arch>``; ``domains`` maps each virt type to its effective values.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='guest', **kwargs)
        self.arch: str | None = None
        self.ostype: str | None = None
        self.emulator: str | None = None
        self.machines: dict[str, str | None] = {}
        self.domains: dict[str, LibvirtConfigCapsGuestDomain] = {}

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        for child in _children(xmldoc):
            if child.tag == 'os_type':
                self.ostype = _text(child)
            elif child.tag == 'arch':
                self._parse_arch(child)

    def _parse_arch(self, arch: etree._Element) -> None:
        self.arch = arch.get('name')
        for child in _children(arch):
            if _parse_emulator_or_machine(self, child):
                continue
            if child.tag == 'domain':
                domain = LibvirtConfigCapsGuestDomain()
                domain.parse_dom(child)
                self.domains[domain.domtype] = domain
        # Defaults are only known once the whole <arch> has been read, as
        # libvirt may list <domain> before some <machine> elements.
        for domain in self.domains.values():
            if domain.emulator is None:
                domain.emulator = self.emulator
            if not domain.machines:
                domain.machines = dict(self.machines)

    def format_dom(self) -> etree._Element:
        guest = super().format_dom()
        if self.ostype is not None:
            guest.append(self._text_node('os_type', self.ostype))
        arch = self._new_node('arch', name=self.arch)
        if self.emulator is not None:
            arch.append(self._text_node('emulator', self.emulator))
        _format_machines(self, arch, self.machines)
        for domain in self.domains.values():
            arch.append(self._format_domain(domain))
        guest.append(arch)
        return guest

    def _format_domain(self, domain: LibvirtConfigCapsGuestDomain
                       ) -> etree._Element:
        # Write only what overrides the <arch> defaults, as libvirt does,
        # so that formatting a parsed document does not grow it.
        node = domain.format_dom()
        for child in list(_children(node)):
            if ((child.tag == 'emulator' and
                 domain.emulator == self.emulator) or
                    (child.tag == 'machine' and
                     domain.machines == self.machines)):
                node.remove(child)
        return node


class LibvirtConfigCaps(LibvirtConfigObject):
    """The host capabilities document."""

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='capabilities', **kwargs)
        self.host: LibvirtConfigCapsHost | None = None
        self.guests: list[LibvirtConfigCapsGuest] = []

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        for child in _children(xmldoc):
            if child.tag == 'host':
                host = LibvirtConfigCapsHost()
                host.parse_dom(child)
                self.host = host
            elif child.tag == 'guest':
                guest = LibvirtConfigCapsGuest()
                guest.parse_dom(child)
                self.guests.append(guest)

    def format_dom(self) -> etree._Element:
        caps = super().format_dom()
        if self.host is not None:
            caps.append(self.host.format_dom())
        for guest in self.guests:
            caps.append(guest.format_dom())
        return caps


# Domain capabilities: virConnect.getDomainCapabilities()


def _format_enum(obj: LibvirtConfigObject, name: str,
                 values: list[str]) -> etree._Element:
    node = obj._new_node('enum', name=name)
    for value in values:
        node.append(obj._text_node('value', value))
    return node


class LibvirtConfigDomainCapsOS(LibvirtConfigObject):
    """What the emulator offers for ``<os>``: firmware and loaders."""

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='os', **kwargs)
        self.supported: bool = False
        self.firmware: list[str] = []
        self.loader_supported: bool | None = None
        self.loader_paths: list[str] = []
        self.loader_types: list[str] = []
        self.loader_readonly: list[str] = []
        self.loader_secure: list[str] = []

    @property
    def uefi_supported(self) -> bool:
        """Whether a UEFI guest can boot with this emulator.

        True when firmware autoselection offers ``efi`` or libvirt knows
        at least one loader image.
        """
        return 'efi' in self.firmware or bool(self.loader_paths)

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.supported = bool(_parse_yes_no(xmldoc.get('supported')))
        for child in _children(xmldoc):
            if child.tag == 'enum' and child.get('name') == 'firmware':
                self.firmware = _parse_enum_values(child)
            elif child.tag == 'loader':
                self._parse_loader(child)

    def _parse_loader(self, loader: etree._Element) -> None:
        self.loader_supported = _parse_yes_no(loader.get('supported'))
        enums = {'type': 'loader_types', 'readonly': 'loader_readonly',
                 'secure': 'loader_secure'}
        for child in _children(loader):
            if child.tag == 'value' and _text(child):
                self.loader_paths.append(_text(child))
            elif child.tag == 'enum' and child.get('name') in enums:
                setattr(self, enums[child.get('name')],
                        _parse_enum_values(child))

    def format_dom(self) -> etree._Element:
        os = super().format_dom()
        os.set('supported', _format_yes_no(self.supported))
        if self.firmware:
            os.append(_format_enum(self, 'firmware', self.firmware))
        if self.loader_supported is not None:
            os.append(self._format_loader())
        return os

    def _format_loader(self) -> etree._Element:
        loader = self._new_node(
            'loader', supported=_format_yes_no(self.loader_supported))
        for path in self.loader_paths:
            loader.append(self._text_node('value', path))
        for name, values in (('type', self.loader_types),
                             ('readonly', self.loader_readonly),
                             ('secure', self.loader_secure)):
            if values:
                loader.append(_format_enum(self, name, values))
        return loader


class LibvirtConfigDomainCapsFeature(LibvirtConfigObject):
    """One element of the domain capabilities' ``<features>``.

    For example ``<sev supported='no'/>``. ``enums`` holds its ``<enum>``
    children (e.g. the hyperv features), whatever their names.
    """

    def __init__(self, name: str = 'feature', **kwargs) -> None:
        super().__init__(root_name=name, **kwargs)
        self.supported: bool | None = None
        self.enums: dict[str, list[str]] = {}

    @property
    def name(self) -> str:
        return self.root_name

    def parse_dom(self, xmldoc: etree._Element) -> None:
        # The root name is whatever feature libvirt reports.
        self.root_name = etree.QName(xmldoc).localname
        super().parse_dom(xmldoc)
        self.supported = _parse_yes_no(xmldoc.get('supported'))
        for child in _children(xmldoc):
            if child.tag == 'enum' and child.get('name'):
                self.enums[child.get('name')] = _parse_enum_values(child)

    def format_dom(self) -> etree._Element:
        feature = super().format_dom()
        if self.supported is not None:
            feature.set('supported', _format_yes_no(self.supported))
        for name, values in self.enums.items():
            feature.append(_format_enum(self, name, values))
        return feature


class LibvirtConfigDomainCaps(LibvirtConfigObject):
    """Domain capabilities of one emulator, arch, machine and virt type.

    ``machine_type`` is what libvirt reports (always a versioned type such
    as ``pc-q35-7.2``); ``machine_type_alias`` is left for the caller to
    record the alias (``q35``) it asked for, which libvirt does not echo.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='domainCapabilities', **kwargs)
        self.path: str | None = None
        self.virt_type: str | None = None
        self.machine_type: str | None = None
        self.machine_type_alias: str | None = None
        self.arch: str | None = None
        self.os: LibvirtConfigDomainCapsOS | None = None
        self.features: list[LibvirtConfigDomainCapsFeature] = []

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        simple = {'path': 'path', 'domain': 'virt_type',
                  'machine': 'machine_type', 'arch': 'arch'}
        for child in _children(xmldoc):
            if child.tag in simple:
                setattr(self, simple[child.tag], _text(child))
            elif child.tag == 'os':
                os = LibvirtConfigDomainCapsOS()
                os.parse_dom(child)
                self.os = os
            elif child.tag == 'features':
                for node in _children(child):
                    feature = LibvirtConfigDomainCapsFeature()
                    feature.parse_dom(node)
                    self.features.append(feature)

    def format_dom(self) -> etree._Element:
        caps = super().format_dom()
        for tag, attr in (('path', 'path'), ('domain', 'virt_type'),
                          ('machine', 'machine_type'), ('arch', 'arch')):
            value = getattr(self, attr)
            if value is not None:
                caps.append(self._text_node(tag, value))
        if self.os is not None:
            caps.append(self.os.format_dom())
        if self.features:
            features = self._new_node('features')
            for feature in self.features:
                features.append(feature.format_dom())
            caps.append(features)
        return caps


# Guest domain


class LibvirtConfigGuestFeature(LibvirtConfigObject):
    """A flag of the guest's ``<features>``, written as an empty element."""

    def __init__(self, name: str, **kwargs) -> None:
        super().__init__(root_name=name, **kwargs)


class LibvirtConfigGuestFeatureACPI(LibvirtConfigGuestFeature):

    def __init__(self, **kwargs) -> None:
        super().__init__('acpi', **kwargs)


class LibvirtConfigGuestFeatureAPIC(LibvirtConfigGuestFeature):

    def __init__(self, **kwargs) -> None:
        super().__init__('apic', **kwargs)


class LibvirtConfigGuestFeatureSMM(LibvirtConfigGuestFeature):
    """System Management Mode.

    OVMF builds with secure boot need it, so that only firmware code can
    write the variable store.
    """

    def __init__(self, state: bool = True, **kwargs) -> None:
        super().__init__('smm', **kwargs)
        self.state = state

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        # libvirt treats a bare <smm/> as on.
        self.state = xmldoc.get('state', 'on') == 'on'

    def format_dom(self) -> etree._Element:
        smm = super().format_dom()
        smm.set('state', 'on' if self.state else 'off')
        return smm


_GUEST_FEATURE_CLASSES = {
    'acpi': LibvirtConfigGuestFeatureACPI,
    'apic': LibvirtConfigGuestFeatureAPIC,
    'smm': LibvirtConfigGuestFeatureSMM,
}


def _parse_guest_feature(node: etree._Element
                         ) -> LibvirtConfigGuestFeature | None:
    cls = _GUEST_FEATURE_CLASSES.get(node.tag)
    if cls is not None:
        feature = cls()
    elif len(node.attrib) or len(node):
        # A feature with settings this module does not model would be
        # written back as a bare flag, which means something else; skip it.
        LOG.debug('Skipping unmodelled guest feature <%s>', node.tag)
        return None
    else:
        feature = LibvirtConfigGuestFeature(node.tag)
    feature.parse_dom(node)
    return feature


class LibvirtConfigGuestDevice(LibvirtConfigObject):
    """Base of the elements of ``<devices>``."""


class LibvirtConfigGuestDisk(LibvirtConfigGuestDevice):
    """A disk backed by a file, e.g. the root disk or a config drive."""

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='disk', **kwargs)
        self.source_type: str = 'file'
        self.source_device: str = 'disk'
        self.driver_name: str | None = None
        self.driver_format: str | None = None
        self.source_path: str | None = None
        self.target_dev: str | None = None
        self.target_bus: str | None = None
        self.readonly: bool = False

    # Nova calls the disk/cdrom choice ``source_device``; callers reading
    # it as the device type get the same value.
    @property
    def device_type(self) -> str:
        return self.source_device

    @device_type.setter
    def device_type(self, value: str) -> None:
        self.source_device = value

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.source_type = xmldoc.get('type', self.source_type)
        self.source_device = xmldoc.get('device', self.source_device)
        for child in _children(xmldoc):
            if child.tag == 'driver':
                self.driver_name = child.get('name')
                self.driver_format = child.get('type')
            elif child.tag == 'source':
                self.source_path = child.get('file', child.get('dev'))
            elif child.tag == 'target':
                self.target_dev = child.get('dev')
                self.target_bus = child.get('bus')
            elif child.tag == 'readonly':
                self.readonly = True

    def format_dom(self) -> etree._Element:
        disk = super().format_dom()
        disk.set('type', self.source_type)
        disk.set('device', self.source_device)
        if self.driver_name is not None or self.driver_format is not None:
            disk.append(self._new_node('driver', name=self.driver_name,
                                       type=self.driver_format))
        if self.source_path is not None:
            attr = 'dev' if self.source_type == 'block' else 'file'
            disk.append(self._new_node('source',
                                       **{attr: self.source_path}))
        if self.target_dev is not None:
            disk.append(self._new_node('target', dev=self.target_dev,
                                       bus=self.target_bus))
        if self.readonly:
            disk.append(self._new_node('readonly'))
        return disk


class LibvirtConfigGuestCharBase(LibvirtConfigGuestDevice):
    """A character device.

    ``type`` is ``pty`` or ``file``; for ``file``, ``source_path`` names
    the file the guest's output goes to.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.type: str = 'pty'
        self.source_path: str | None = None
        self.target_port: int | None = None

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.type = xmldoc.get('type', self.type)
        for child in _children(xmldoc):
            if child.tag == 'source':
                self.source_path = child.get('path')
            elif child.tag == 'target':
                self._parse_target(child)

    def _parse_target(self, target: etree._Element) -> None:
        port = target.get('port')
        self.target_port = int(port) if port is not None else None

    def format_dom(self) -> etree._Element:
        dev = super().format_dom()
        dev.set('type', self.type)
        if self.source_path is not None:
            dev.append(self._new_node('source', path=self.source_path))
        target = self._format_target()
        if target is not None:
            dev.append(target)
        return dev

    def _format_target(self) -> etree._Element | None:
        if self.target_port is None:
            return None
        return self._new_node('target', port=self.target_port)


class LibvirtConfigGuestSerial(LibvirtConfigGuestCharBase):

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='serial', **kwargs)


class LibvirtConfigGuestConsole(LibvirtConfigGuestCharBase):
    """A console.

    ``target_type`` ``serial`` makes it the first serial port, which
    libvirt adds by itself when a serial device exists.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='console', **kwargs)
        self.target_type: str | None = None

    def _parse_target(self, target: etree._Element) -> None:
        super()._parse_target(target)
        self.target_type = target.get('type')

    def _format_target(self) -> etree._Element | None:
        if self.target_type is None and self.target_port is None:
            return None
        return self._new_node('target', type=self.target_type,
                              port=self.target_port)


class LibvirtConfigMemoryBalloon(LibvirtConfigGuestDevice):
    """The memory balloon; model ``none`` keeps libvirt from adding one."""

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='memballoon', **kwargs)
        self.model: str | None = None

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.model = xmldoc.get('model')

    def format_dom(self) -> etree._Element:
        balloon = super().format_dom()
        if self.model is not None:
            balloon.set('model', self.model)
        return balloon


#: Another name for the memory balloon, as the balloon of a guest.
LibvirtConfigGuestMemBalloon = LibvirtConfigMemoryBalloon

_GUEST_DEVICE_CLASSES = {
    'disk': LibvirtConfigGuestDisk,
    'serial': LibvirtConfigGuestSerial,
    'console': LibvirtConfigGuestConsole,
    'memballoon': LibvirtConfigMemoryBalloon,
}


class LibvirtConfigGuest(LibvirtConfigObject):
    """A guest domain: what ``defineXML`` gets and ``XMLDesc`` returns.

    The firmware part of ``<os>``, in the order libvirt writes it:

    * ``os_firmware``: None, or ``efi`` for firmware autoselection, where
      libvirt picks the loader from the firmware descriptors;
      ``os_firmware_features`` (name -> bool) constrains that choice.
    * ``os_loader`` (path) and ``os_loader_type``, ``os_loader_readonly``,
      ``os_loader_secure``, ``os_loader_stateless`` (None writes nothing,
      True/False write yes/no): a ``<loader>`` is written when any is set.
    * ``os_nvram`` (path) and ``os_nvram_template``: an ``<nvram>`` is
      written only when one is set, because a stateless guest must have
      none.

    ``cpu_mode`` writes ``<cpu mode=...>`` when set (e.g. ``maximum``,
    every feature the emulator has); None leaves the CPU to libvirt.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(root_name='domain', **kwargs)
        self.virt_type: str | None = None
        self.name: str | None = None
        self.uuid: str | None = None
        self.memory: int = 500 * 1024
        self.vcpus: int = 1
        self.metadata: list[LibvirtConfigObject] = []
        self.os_type: str | None = None
        self.os_arch: str | None = None
        self.os_mach_type: str | None = None
        self.os_firmware: str | None = None
        self.os_firmware_features: dict[str, bool] = {}
        self.os_loader: str | None = None
        self.os_loader_type: str | None = None
        self.os_loader_readonly: bool | None = None
        self.os_loader_secure: bool | None = None
        self.os_loader_stateless: bool | None = None
        self.os_nvram: str | None = None
        self.os_nvram_template: str | None = None
        self.os_boot_dev: list[str] = []
        self.features: list[LibvirtConfigGuestFeature] = []
        self.cpu_mode: str | None = None
        self.devices: list[LibvirtConfigGuestDevice] = []

    def add_feature(self, feature: LibvirtConfigGuestFeature) -> None:
        self.features.append(feature)

    def add_device(self, device: LibvirtConfigGuestDevice) -> None:
        self.devices.append(device)

    # Formatting

    def format_dom(self) -> etree._Element:
        root = super().format_dom()
        if self.virt_type is not None:
            root.set('type', self.virt_type)
        for tag, value in (('name', self.name), ('uuid', self.uuid)):
            if value is not None:
                root.append(self._text_node(tag, value))
        if self.metadata:
            metadata = self._new_node('metadata')
            for item in self.metadata:
                metadata.append(item.format_dom())
            root.append(metadata)
        root.append(self._text_node('memory', self.memory, unit='KiB'))
        root.append(self._text_node('vcpu', self.vcpus))
        root.append(self._format_os())
        if self.features:
            features = self._new_node('features')
            for feature in self.features:
                features.append(feature.format_dom())
            root.append(features)
        if self.cpu_mode is not None:
            root.append(self._new_node('cpu', mode=self.cpu_mode))
        if self.devices:
            devices = self._new_node('devices')
            for device in self.devices:
                devices.append(device.format_dom())
            root.append(devices)
        return root

    def _format_os(self) -> etree._Element:
        os = self._new_node('os', firmware=self.os_firmware)
        if self.os_type is not None:
            os.append(self._text_node('type', self.os_type,
                                      arch=self.os_arch,
                                      machine=self.os_mach_type))
        if self.os_firmware_features:
            firmware = self._new_node('firmware')
            for name, enabled in self.os_firmware_features.items():
                firmware.append(self._new_node(
                    'feature', enabled=_format_yes_no(enabled), name=name))
            os.append(firmware)
        loader = self._format_loader()
        if loader is not None:
            os.append(loader)
        if self.os_nvram is not None or self.os_nvram_template is not None:
            os.append(self._text_node('nvram', self.os_nvram,
                                      template=self.os_nvram_template))
        for dev in self.os_boot_dev:
            os.append(self._new_node('boot', dev=dev))
        return os

    def _format_loader(self) -> etree._Element | None:
        flags = {'readonly': self.os_loader_readonly,
                 'secure': self.os_loader_secure,
                 'stateless': self.os_loader_stateless}
        if (self.os_loader is None and self.os_loader_type is None and
                all(v is None for v in flags.values())):
            return None
        # Attribute order follows libvirt's own output.
        attrs = {'readonly': flags['readonly'], 'secure': flags['secure'],
                 'type': self.os_loader_type,
                 'stateless': flags['stateless']}
        attrs = {k: (_format_yes_no(v) if isinstance(v, bool) else v)
                 for k, v in attrs.items()}
        return self._text_node('loader', self.os_loader, **attrs)

    # Parsing

    def parse_dom(self, xmldoc: etree._Element) -> None:
        super().parse_dom(xmldoc)
        self.virt_type = xmldoc.get('type')
        for child in _children(xmldoc):
            if child.tag == 'name':
                self.name = _text(child)
            elif child.tag == 'uuid':
                self.uuid = _text(child)
            elif child.tag == 'memory':
                self.memory = _parse_memory_kib(child)
            elif child.tag == 'vcpu':
                self.vcpus = int(_text(child))
            elif child.tag == 'os':
                self._parse_os(child)
            elif child.tag == 'features':
                self._parse_features(child)
            elif child.tag == 'cpu':
                self.cpu_mode = child.get('mode')
            elif child.tag == 'devices':
                self._parse_devices(child)
            # <metadata> is not read back: its content is in the namespace
            # of whoever wrote it, and only the writer knows its classes.

    def _parse_os(self, os: etree._Element) -> None:
        self.os_firmware = os.get('firmware')
        for child in _children(os):
            if child.tag == 'type':
                self.os_type = _text(child)
                self.os_arch = child.get('arch')
                self.os_mach_type = child.get('machine')
            elif child.tag == 'firmware':
                self.os_firmware_features = {
                    f.get('name'): bool(_parse_yes_no(f.get('enabled')))
                    for f in _children(child)
                    if f.tag == 'feature' and f.get('name')}
            elif child.tag == 'loader':
                self.os_loader = _text(child)
                self.os_loader_type = child.get('type')
                self.os_loader_readonly = _parse_yes_no(child.get('readonly'))
                self.os_loader_secure = _parse_yes_no(child.get('secure'))
                self.os_loader_stateless = _parse_yes_no(
                    child.get('stateless'))
            elif child.tag == 'nvram':
                self.os_nvram = _text(child)
                self.os_nvram_template = child.get('template')
            elif child.tag == 'boot' and child.get('dev'):
                self.os_boot_dev.append(child.get('dev'))

    def _parse_features(self, features: etree._Element) -> None:
        for child in _children(features):
            feature = _parse_guest_feature(child)
            if feature is not None:
                self.features.append(feature)

    def _parse_devices(self, devices: etree._Element) -> None:
        for child in _children(devices):
            cls = _GUEST_DEVICE_CLASSES.get(child.tag)
            if cls is None:
                continue
            device = cls()
            device.parse_dom(child)
            self.devices.append(device)
