"""Property-based tests of image properties at the API boundary.

Any Glance image, whatever its properties, must either be accepted by
``nova.compute.api.validate_flavor_image`` with the meaning the user
documentation gives (``doc/source/user/image-properties.rst``), or be
refused with a ``nova.exception.Invalid`` whose message names a property
the request got wrong. Nothing else may happen: no other exception, and no
value silently read as something else (a misspelt boolean must never turn
into false and quietly give a guest writable firmware).

The expected outcome of each generated image is computed by a small model
of the documented rules below, independently of the code under test, and
compared with what the code does. Examples are derandomized and the
example database is off, so every CI run checks the same inputs.
"""

import typing as ty
import unicodedata

import hypothesis
from hypothesis import strategies as st
import os_resource_classes as orc
import os_traits
from oslo_utils import strutils

from nova.compute import api as compute_api
from nova import exception
from nova import objects
from nova.objects import fields
from nova.scheduler import utils as scheduler_utils
from nova import test
from nova.virt import driver as virt_driver

STATELESS_TRAIT = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
SECURE_BOOT_TRAIT = os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT
#: The CPU trait each memory encryption model requires of a host.
MEM_ENCRYPTION_TRAITS = {
    'amd-sev': os_traits.HW_CPU_X86_AMD_SEV,
    'amd-sev-es': os_traits.HW_CPU_X86_AMD_SEV_ES,
    'amd-sev-snp': os_traits.HW_CPU_X86_AMD_SEV_SNP,
    'intel-tdx': os_traits.HW_CPU_X86_INTEL_TDX,
}

SETTINGS = hypothesis.settings(
    max_examples=300, deadline=None, derandomize=True, database=None,
    suppress_health_check=[hypothesis.HealthCheck.too_slow,
                           hypothesis.HealthCheck.filter_too_much])

# --- the documented rules ----------------------------------------------------

BOOLEANS = ('hw_firmware_stateless', 'hw_mem_encryption')
ENUMS = {
    'hw_firmware_type': fields.FirmwareType.ALL,
    'hw_mem_encryption_model': fields.MemEncryptionModel.ALL,
    'os_secure_boot': fields.SecureBoot.ALL,
}
#: Accepted spellings of an architecture, in any case, and their meaning.
ARCHITECTURES = {
    'aarch64': 'aarch64', 'arm64': 'aarch64',
    'i686': 'i686', 'i386': 'i686', 'i486': 'i686', 'i586': 'i686',
    'x86_64': 'x86_64', 'amd64': 'x86_64', 'x64': 'x86_64',
}
MACHINE_TYPES = ('q35', 'pc-q35-7.2', 'pc', 'pc-i440fx-7.2', 'virt')
#: Property name -> the name it is read as (the legacy ``architecture``).
KNOWN = {
    'architecture': 'hw_architecture',
    'hw_architecture': 'hw_architecture',
    'hw_firmware_stateless': 'hw_firmware_stateless',
    'hw_firmware_type': 'hw_firmware_type',
    'hw_machine_type': 'hw_machine_type',
    'hw_mem_encryption': 'hw_mem_encryption',
    'hw_mem_encryption_model': 'hw_mem_encryption_model',
    'os_secure_boot': 'os_secure_boot',
}


class Refused(Exception):
    """The model's verdict: refused, naming one of ``properties``."""

    def __init__(self, error: type, *properties: str) -> None:
        super().__init__(error.__name__, properties)
        self.error = error
        self.properties = properties


class _NotAccepted(Exception):
    pass


def _read_value(name: str, value: ty.Any) -> ty.Any:
    """A property value as documented, or _NotAccepted."""
    if name in BOOLEANS:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in strutils.TRUE_STRINGS:
            return True
        if text in strutils.FALSE_STRINGS:
            return False
        raise _NotAccepted()
    if name in ENUMS:
        # Exact, lower case values only.
        if isinstance(value, str) and value in ENUMS[name]:
            return value
        raise _NotAccepted()
    if name == 'hw_architecture':
        if value is None or str(value).lower() not in ARCHITECTURES:
            raise _NotAccepted()
        return ARCHITECTURES[str(value).lower()]
    # hw_machine_type: a string; Glance sends strings, a number or a
    # boolean from a hand-written dict is read as its text. It goes into
    # the domain XML, which cannot carry control characters.
    if value is None or not isinstance(value, (str, int)):
        raise _NotAccepted()
    if any(unicodedata.category(ch) == 'Cc' for ch in str(value)):
        raise _NotAccepted()
    return str(value)


def read_properties(props: ty.Mapping[str, ty.Any]) -> dict:
    """Parse the known properties; raise Refused naming the bad ones."""
    parsed = {}
    bad = []
    for key, value in props.items():
        name = KNOWN.get(key)
        if name is None:
            continue  # Nova ignores the properties it does not model.
        if key == 'architecture' and 'hw_architecture' in props:
            continue  # the legacy name only counts when the new is unset
        try:
            parsed[name] = _read_value(name, value)
        except _NotAccepted:
            bad.append(key)
    if bad:
        raise Refused(exception.InvalidImagePropertyValue, *bad)
    return parsed


def expected_request(props: ty.Mapping[str, ty.Any]) -> dict:
    """What a valid image means; raise Refused for an invalid one."""
    parsed = read_properties(props)
    firmware = parsed.get('hw_firmware_type')
    # Neither firmware nor architecture: the host's architecture decides,
    # so stateless is asked of the hosts that would boot it UEFI.
    host_decides = firmware is None and parsed.get('hw_architecture') is None
    if firmware is None:
        firmware = ('uefi' if parsed.get('hw_architecture') == 'aarch64'
                    else 'bios')
    stateless = parsed.get('hw_firmware_stateless')
    if firmware == 'bios':
        stateless = None  # BIOS keeps no variables: ignored
    if parsed.get('os_secure_boot') == 'required' and firmware != 'uefi':
        raise Refused(exception.SecureBootRequiresUEFI,
                      'os_secure_boot', 'hw_firmware_type')

    encrypted = parsed.get('hw_mem_encryption') is True
    model = parsed.get('hw_mem_encryption_model')
    if not encrypted and model is not None:
        raise Refused(exception.InvalidMemoryEncryptionRequest,
                      'hw_mem_encryption', 'hw_mem_encryption_model')
    if encrypted:
        if firmware != 'uefi':
            raise Refused(exception.InvalidMemoryEncryptionRequest,
                          'hw_firmware_type')
        machine_type = parsed.get('hw_machine_type')
        if machine_type is not None and not machine_type.startswith(
                ('q35', 'pc-q35')):
            raise Refused(exception.InvalidMemoryEncryptionRequest,
                          'hw_machine_type')
        if (model in ('amd-sev-snp', 'intel-tdx') and stateless is not True):
            raise Refused(exception.MemoryEncryptionRequiresStatelessFirmware,
                          'hw_firmware_stateless')
    return {
        'properties': parsed,
        'stateless_if_uefi_host': bool(
            host_decides and parsed.get('hw_firmware_stateless')),
        'stateless_secure_boot': bool(
            stateless and parsed.get('os_secure_boot') == 'required'),
        'stateless': stateless,
        'required_traits': (
            ({STATELESS_TRAIT} if stateless else set()) |
            ({SECURE_BOOT_TRAIT}
             if parsed.get('os_secure_boot') == 'required' else set()) |
            # The model defaults to AMD SEV.
            ({MEM_ENCRYPTION_TRAITS[model or 'amd-sev']}
             if encrypted else set())),
        'mem_encryption_context': 1 if encrypted else None,
    }


# --- generated images --------------------------------------------------------

_ALL_SPELLINGS = sorted(
    set(strutils.TRUE_STRINGS + strutils.FALSE_STRINGS + MACHINE_TYPES) |
    set(ARCHITECTURES) |
    {v for values in ENUMS.values() for v in values})


def _accepted(key: str) -> st.SearchStrategy:
    name = KNOWN[key]
    if name in BOOLEANS:
        return st.sampled_from(
            strutils.TRUE_STRINGS + strutils.FALSE_STRINGS) | st.booleans()
    if name in ENUMS:
        return st.sampled_from(ENUMS[name])
    if name == 'hw_architecture':
        return st.sampled_from(sorted(ARCHITECTURES))
    return st.sampled_from(MACHINE_TYPES)


def _variants(text: str) -> st.SearchStrategy:
    """The same word in other cases and with whitespace around it."""
    case = st.sampled_from((str.upper, str.title, str.swapcase, str.lower))
    pad = st.sampled_from(('', ' ', '\t', '\n', '  '))
    return st.builds(lambda f, a, b: a + f(text) + b, case, pad, pad)


def _value(key: str) -> st.SearchStrategy:
    accepted = _accepted(key)
    return st.one_of(
        accepted,
        accepted.filter(lambda v: isinstance(v, str)).flatmap(_variants),
        st.sampled_from(_ALL_SPELLINGS),
        st.text(max_size=12),
        st.integers(min_value=-2, max_value=3),
        st.integers(),
        st.none(),
        st.booleans(),
    )


_junk_keys = st.one_of(
    st.text(min_size=1, max_size=16),
    st.sampled_from(('hw_firmware_statless', 'HW_FIRMWARE_STATELESS',
                     'hw_firmware_stateless ', 'hw-firmware-stateless',
                     'os_distro', 'img_config_drive', 'hw_disk_bus')),
).filter(lambda key: key not in KNOWN)

_junk_values = st.one_of(st.text(max_size=8), st.integers(), st.none(),
                         st.sampled_from(_ALL_SPELLINGS))

image_properties = st.builds(
    lambda known, junk: dict(junk, **known),
    st.fixed_dictionaries({}, optional={k: _value(k) for k in KNOWN}),
    st.dictionaries(_junk_keys, _junk_values, max_size=3))


#: Images whose every value is an accepted spelling or a variant of one:
#: most are valid, so the meaning of valid images is checked often.
plausible_image_properties = st.builds(
    lambda known, junk: dict(junk, **known),
    st.fixed_dictionaries({}, optional={
        k: _accepted(k) | _accepted(k).filter(
            lambda v: isinstance(v, str)).flatmap(_variants)
        for k in KNOWN}),
    st.dictionaries(_junk_keys, _junk_values, max_size=2))


def _image(props: dict) -> dict:
    return {'id': 'c2a9fd7e-5a43-4a5c-8bb3-0b5b6f1e9f10', 'status': 'active',
            'disk_format': 'qcow2', 'container_format': 'bare',
            'properties': props}


def _flavor() -> 'objects.Flavor':
    return objects.Flavor(id=1, name='small', flavorid='small',
                          memory_mb=512, vcpus=1, root_gb=1,
                          ephemeral_gb=0, swap=0, extra_specs={})


class ImagePropertiesPropertyTestCase(test.NoDBTestCase):

    def _check_refused(self, refused: Refused, ex: exception.Invalid,
                       props: dict) -> None:
        self.assertIsInstance(ex, refused.error, props)
        self.assertEqual(400, ex.code)
        message = ex.format_message()
        named = [p for p in refused.properties if "'%s'" % p in message]
        self.assertTrue(
            named, 'message %r names none of %s (image properties %r)' % (
                message, refused.properties, props))

    def _check_accepted(self, expected: dict, image_meta, props: dict
                        ) -> None:
        got = {name: getattr(image_meta.properties, name)
               for name in image_meta.properties.obj_fields
               if image_meta.properties.obj_attr_is_set(name)}
        self.assertEqual(expected['properties'], got, props)

        spec = objects.RequestSpec.from_components(
            'd9a1d3a0-1f1c-4d3e-9a36-77b5e2c8a001', image_meta, _flavor())
        request = scheduler_utils.ResourceRequest.from_request_spec(spec)
        self.assertEqual(
            expected['required_traits'] |
            ({virt_driver.STATELESS_SECURE_BOOT_TRAIT}
             if expected['stateless_secure_boot'] else set()),
            request.required_traits, props)
        self.assertEqual(expected['mem_encryption_context'],
                         request.resources.get(orc.MEM_ENCRYPTION_CONTEXT),
                         props)
        self.assertEqual(expected['stateless_if_uefi_host'],
                         any(STATELESS_TRAIT in group
                             for group in request.required_any_traits),
                         props)
        self.assertEqual(STATELESS_TRAIT in expected['required_traits'] or
                         expected['stateless_if_uefi_host'],
                         STATELESS_TRAIT in request.to_querystring())

    def _check_image(self, props: dict) -> None:
        try:
            expected = expected_request(props)
        except Refused as refused:
            ex = self.assertRaises(
                exception.Invalid, compute_api.validate_flavor_image,
                _flavor(), _image(props))
            self._check_refused(refused, ex, props)
            return
        image_meta = compute_api.validate_flavor_image(
            _flavor(), _image(props))
        self._check_accepted(expected, image_meta, props)

    @SETTINGS
    @hypothesis.given(image_properties)
    @hypothesis.example({'architecture': 'sparc'})
    @hypothesis.example({'hw_firmware_type': 'uefi',
                         'hw_firmware_stateless': 'ture'})
    @hypothesis.example({'hw_mem_encryption': 'true',
                         'hw_mem_encryption_model': 'amd-sev-snp',
                         'hw_firmware_type': 'uefi'})
    def test_any_image_validated_to_its_meaning_or_refused_by_name(
            self, props):
        self._check_image(props)

    @SETTINGS
    @hypothesis.given(plausible_image_properties)
    def test_plausible_image_validated_to_its_meaning_or_refused_by_name(
            self, props):
        self._check_image(props)

    @SETTINGS
    @hypothesis.given(plausible_image_properties)
    def test_instance_keeps_the_meaning_it_was_created_with(self, props):
        # After create, the stashed properties (not Glance) decide how the
        # instance boots; reading them back must mean the same thing.
        try:
            expected = expected_request(props)
        except Refused:
            hypothesis.assume(False)
        instance, spec = compute_api.API().create(_flavor(), _image(props))
        self._check_accepted(expected, instance.image_meta, props)
        self.assertEqual(
            scheduler_utils.ResourceRequest.from_request_spec(
                spec).to_querystring(),
            scheduler_utils.ResourceRequest.from_request_spec(
                objects.RequestSpec.from_components(
                    instance.uuid, instance.image_meta, _flavor())
            ).to_querystring())

    @SETTINGS
    @hypothesis.given(
        st.sampled_from(strutils.TRUE_STRINGS).flatmap(_variants),
        st.sampled_from(('uefi', None)),
        st.sampled_from((None, 'x86_64', 'aarch64', 'amd64', 'ARM64')))
    def test_true_spellings_require_the_trait_for_uefi(
            self, value, firmware_type, arch):
        props = {'hw_firmware_stateless': value}
        if firmware_type:
            props['hw_firmware_type'] = firmware_type
        if arch:
            props['hw_architecture'] = arch
        image_meta = compute_api.validate_flavor_image(
            _flavor(), _image(props))
        self.assertIs(True, image_meta.properties.hw_firmware_stateless)
        spec = objects.RequestSpec.from_components(
            'd9a1d3a0-1f1c-4d3e-9a36-77b5e2c8a001', image_meta, _flavor())
        request = scheduler_utils.ResourceRequest.from_request_spec(spec)
        uefi = firmware_type == 'uefi' or (arch or '').lower() in (
            'aarch64', 'arm64')
        self.assertEqual(uefi, STATELESS_TRAIT in request.required_traits)

    @SETTINGS
    @hypothesis.given(st.text(max_size=20).filter(
        lambda v: v.strip().lower() not in
        strutils.TRUE_STRINGS + strutils.FALSE_STRINGS))
    def test_non_boolean_text_is_refused_never_false(self, value):
        ex = self.assertRaises(
            exception.InvalidImagePropertyValue,
            compute_api.validate_flavor_image, _flavor(),
            _image({'hw_firmware_type': 'uefi',
                    'hw_firmware_stateless': value}))
        self.assertIn("'hw_firmware_stateless'", ex.format_message())
        self.assertIn("'true'", ex.format_message())
