import os_resource_classes as orc
import os_traits

from nova import exception
from nova import objects
from nova.scheduler import utils
from nova import test
from nova.virt import driver as virt_driver

INSTANCE_UUID = 'ad0b3a05-7f3c-4c2a-8f1b-0d8bd1b9d2e4'


def _request_spec(props=None, is_bfv=False, **flavor_kw):
    flavor_kw.setdefault('vcpus', 2)
    flavor_kw.setdefault('memory_mb', 2048)
    flavor_kw.setdefault('root_gb', 10)
    flavor = objects.Flavor(**flavor_kw)
    image = None
    if props is not None:
        image = objects.ImageMeta.from_dict({'properties': props})
    return objects.RequestSpec.from_components(
        INSTANCE_UUID, image, flavor, is_bfv=is_bfv)


class TestResourceRequest(test.NoDBTestCase):

    def _request(self, *args, **kwargs):
        return utils.ResourceRequest.from_request_spec(
            _request_spec(*args, **kwargs))

    def test_stateless_uefi_requires_trait(self):
        req = self._request({'hw_firmware_type': 'uefi',
                             'hw_firmware_stateless': 'true'})
        self.assertEqual({os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE},
                         req.required_traits)
        self.assertEqual(
            'limit=1000&required=COMPUTE_SECURITY_STATELESS_FIRMWARE&'
            'resources=DISK_GB:10,MEMORY_MB:2048,VCPU:2',
            req.to_querystring())

    def test_no_trait_when_unset_false_or_bios(self):
        for props in ({}, {'hw_firmware_type': 'uefi'},
                      {'hw_firmware_type': 'uefi',
                       'hw_firmware_stateless': 'false'},
                      {'hw_firmware_type': 'bios',
                       'hw_firmware_stateless': 'true'},
                      {'hw_architecture': 'x86_64',
                       'hw_firmware_stateless': 'true'}):
            req = self._request(props)
            self.assertEqual(set(), req.required_traits, props)
            self.assertNotIn('required=', req.to_querystring())

    def test_stateless_when_the_host_arch_decides(self):
        # Neither firmware nor architecture: the guest boots UEFI on an
        # aarch64 host and BIOS on an x86 one. The host needs the trait,
        # or an architecture whose default firmware is BIOS.
        req = self._request({'hw_firmware_stateless': 'true'})
        self.assertEqual(set(), req.required_traits)
        [any_of] = req.required_any_traits
        self.assertIn(os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE, any_of)
        self.assertIn(os_traits.HW_ARCH_X86_64, any_of)
        self.assertNotIn(os_traits.HW_ARCH_AARCH64, any_of)
        self.assertIn('&required=in:COMPUTE_SECURITY_STATELESS_FIRMWARE,'
                      'HW_ARCH_ALPHA,', req.to_querystring())
        # An aarch64 image names its firmware by its architecture.
        req = self._request({'hw_architecture': 'aarch64',
                             'hw_firmware_stateless': 'true'})
        self.assertEqual({os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE},
                         req.required_traits)
        self.assertEqual([], req.required_any_traits)

    def test_no_image(self):
        req = self._request(None)
        self.assertEqual(
            'limit=1000&resources=DISK_GB:10,MEMORY_MB:2048,VCPU:2',
            req.to_querystring())

    def test_resources_from_flavor(self):
        req = self._request({}, ephemeral_gb=5, swap=1536)
        self.assertEqual({orc.VCPU: 2, orc.MEMORY_MB: 2048,
                          orc.DISK_GB: 17}, req.resources)
        req = self._request({}, is_bfv=True, ephemeral_gb=5)
        self.assertEqual(5, req.resources[orc.DISK_GB])

    def test_secure_boot_required_trait(self):
        req = self._request({'hw_firmware_type': 'uefi',
                             'hw_firmware_stateless': 'true',
                             'os_secure_boot': 'required'})
        # Both standard traits together do not make stateless secure
        # boot: the host must say it has a firmware that does it.
        self.assertEqual({os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE,
                          os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT,
                          virt_driver.STATELESS_SECURE_BOOT_TRAIT},
                         req.required_traits)
        req = self._request({'hw_firmware_type': 'uefi',
                             'os_secure_boot': 'required'})
        self.assertEqual({os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT},
                         req.required_traits)
        req = self._request({'hw_firmware_type': 'uefi',
                             'hw_firmware_stateless': 'true',
                             'os_secure_boot': 'optional'})
        self.assertEqual({os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE},
                         req.required_traits)
        req = self._request({'hw_firmware_type': 'uefi',
                             'os_secure_boot': 'optional'})
        self.assertEqual(set(), req.required_traits)

    def test_mem_encryption_context(self):
        req = self._request({'hw_firmware_type': 'uefi',
                             'hw_firmware_stateless': 'true',
                             'hw_mem_encryption': 'true',
                             'hw_mem_encryption_model': 'amd-sev-snp'})
        self.assertEqual(1, req.resources[orc.MEM_ENCRYPTION_CONTEXT])
        self.assertEqual({os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE,
                          os_traits.HW_CPU_X86_AMD_SEV_SNP},
                         req.required_traits)

    def test_mem_encryption_requires_the_cpu_trait_of_its_model(self):
        for model, trait in (
                (None, os_traits.HW_CPU_X86_AMD_SEV),
                ('amd-sev', os_traits.HW_CPU_X86_AMD_SEV),
                ('amd-sev-es', os_traits.HW_CPU_X86_AMD_SEV_ES),
                ('amd-sev-snp', os_traits.HW_CPU_X86_AMD_SEV_SNP),
                ('intel-tdx', os_traits.HW_CPU_X86_INTEL_TDX)):
            props = {'hw_firmware_type': 'uefi',
                     'hw_firmware_stateless': 'true',
                     'hw_mem_encryption': 'true'}
            if model:
                props['hw_mem_encryption_model'] = model
            req = self._request(props)
            self.assertEqual(
                {os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE, trait},
                req.required_traits, model)
            self.assertEqual(1, req.resources[orc.MEM_ENCRYPTION_CONTEXT])

    def test_extra_specs(self):
        req = self._request(
            {}, extra_specs={'trait:CUSTOM_GOLD': 'required',
                             'trait:CUSTOM_SLOW': 'forbidden',
                             'resources:VCPU': '0',
                             'resources:CUSTOM_MAGIC': '3'})
        self.assertEqual(
            'limit=1000&required=CUSTOM_GOLD,!CUSTOM_SLOW&'
            'resources=CUSTOM_MAGIC:3,DISK_GB:10,MEMORY_MB:2048',
            req.to_querystring())

    def test_query_encodes_what_a_url_cannot_carry(self):
        # Standard traits and resource classes go as they are; any other
        # character is encoded as urllib's urlencode encodes it.
        req = self._request(
            {}, extra_specs={'trait:CUSTOM_A B': 'required',
                             'trait:CUSTOM_\u00c9T\u00c9': 'forbidden',
                             'trait:CUSTOM_X&limit=1': 'required'})
        self.assertEqual(
            'limit=1000&required=CUSTOM_A+B,CUSTOM_X%26limit%3D1,'
            '!CUSTOM_%C3%89T%C3%89&resources=DISK_GB:10,MEMORY_MB:2048,'
            'VCPU:2', req.to_querystring())

    def test_bad_extra_specs(self):
        for specs, named in (({'trait:CUSTOM_X': 'yes'}, 'trait:CUSTOM_X'),
                             ({'resources:VCPU': '-1'}, 'resources:VCPU'),
                             ({'resources:VCPU': 'two'}, 'resources:VCPU')):
            ex = self.assertRaises(
                exception.InvalidFlavorExtraSpecValue, self._request, {},
                extra_specs=specs)
            self.assertIn("'%s'" % named, ex.format_message())

    def test_no_limit(self):
        req = utils.ResourceRequest.from_request_spec(
            _request_spec({}), limit=None)
        self.assertNotIn('limit', req.to_querystring())
