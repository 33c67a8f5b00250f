"""Field types of the versioned objects.

Enums list their accepted values in ``ALL``, which validation messages quote,
so that a user reading an error sees exactly what would have been accepted.
"""

from oslo_utils import strutils
from oslo_versionedobjects import fields

# Re-export the generic fields under Nova's names.
BooleanField = fields.BooleanField
DictOfNullableStringsField = fields.DictOfNullableStringsField
DictOfStringsField = fields.DictOfStringsField
IntegerField = fields.IntegerField
NonNegativeIntegerField = fields.NonNegativeIntegerField
ListOfStringsField = fields.ListOfStringsField
ObjectField = fields.ObjectField
StringField = fields.StringField
UUIDField = fields.UUIDField
FlexibleBooleanField = fields.FlexibleBooleanField
Enum = fields.Enum
BaseEnumField = fields.BaseEnumField
Field = fields.Field


class Architecture(Enum):
    """Guest CPU architectures (the subset this tree boots)."""

    AARCH64 = 'aarch64'
    I686 = 'i686'
    X86_64 = 'x86_64'

    ALL = (AARCH64, I686, X86_64)

    def __init__(self) -> None:
        super().__init__(valid_values=Architecture.ALL)

    def coerce(self, obj, attr, value):
        # Accept the names Glance users commonly write and normalise them.
        canonical = {'amd64': self.X86_64, 'x64': self.X86_64,
                     'arm64': self.AARCH64, 'i386': self.I686,
                     'i486': self.I686, 'i586': self.I686}
        value = canonical.get(str(value).lower(), str(value).lower())
        return super().coerce(obj, attr, value)


class FirmwareType(Enum):
    """Guest firmware types (image property ``hw_firmware_type``)."""

    UEFI = 'uefi'
    BIOS = 'bios'

    ALL = (UEFI, BIOS)

    def __init__(self) -> None:
        super().__init__(valid_values=FirmwareType.ALL)


class MemEncryptionModel(Enum):
    """Memory encryption models (image ``hw_mem_encryption_model``)."""

    AMD_SEV = 'amd-sev'
    AMD_SEV_ES = 'amd-sev-es'
    AMD_SEV_SNP = 'amd-sev-snp'
    INTEL_TDX = 'intel-tdx'

    ALL = (AMD_SEV, AMD_SEV_ES, AMD_SEV_SNP, INTEL_TDX)

    #: Models whose guests must boot with stateless firmware: a writable
    #: variable store would be outside the measured, protected boot chain.
    REQUIRE_STATELESS_FIRMWARE = (AMD_SEV_SNP, INTEL_TDX)

    def __init__(self) -> None:
        super().__init__(valid_values=MemEncryptionModel.ALL)


class SecureBoot(Enum):
    """Secure boot policies (``os:secure_boot``, ``os_secure_boot``)."""

    REQUIRED = 'required'
    DISABLED = 'disabled'
    OPTIONAL = 'optional'

    ALL = (REQUIRED, DISABLED, OPTIONAL)

    def __init__(self) -> None:
        super().__init__(valid_values=SecureBoot.ALL)


class ArchitectureField(BaseEnumField):
    AUTO_TYPE = Architecture()


class FirmwareTypeField(BaseEnumField):
    AUTO_TYPE = FirmwareType()


class MemEncryptionModelField(BaseEnumField):
    AUTO_TYPE = MemEncryptionModel()


class SecureBootField(BaseEnumField):
    AUTO_TYPE = SecureBoot()


#: The spellings of true and false that ``FlexibleBooleanField`` reads, as
#: oslo.utils defines them, for error messages.
BOOLEAN_STRINGS = strutils.TRUE_STRINGS + strutils.FALSE_STRINGS
