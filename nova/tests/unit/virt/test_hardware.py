from nova import exception
from nova import objects
from nova.objects import fields
from nova import test
from nova.virt import hardware


def _image(**props):
    return objects.ImageMeta.from_dict({'properties': props})


def _flavor(**extra_specs):
    return objects.Flavor(vcpus=1, memory_mb=512, root_gb=1,
                          extra_specs=extra_specs)


class TestFirmwareType(test.NoDBTestCase):

    def test_explicit(self):
        self.assertEqual('uefi', hardware.get_firmware_type(
            _image(hw_firmware_type='uefi')))
        self.assertEqual('bios', hardware.get_firmware_type(
            _image(hw_firmware_type='bios', hw_architecture='aarch64')))

    def test_architecture_default(self):
        self.assertEqual('uefi', hardware.get_firmware_type(
            _image(hw_architecture='aarch64')))
        self.assertEqual('bios', hardware.get_firmware_type(
            _image(hw_architecture='x86_64')))
        self.assertEqual('bios', hardware.get_firmware_type(_image()))


class TestStatelessFirmwareConstraint(test.NoDBTestCase):

    def test_unset(self):
        self.assertIsNone(hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_type='uefi')))

    def test_uefi(self):
        self.assertIs(True, hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_type='uefi', hw_firmware_stateless='yes')))
        self.assertIs(False, hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_type='uefi', hw_firmware_stateless='no')))

    def test_uefi_by_architecture_default(self):
        self.assertIs(True, hardware.get_stateless_firmware_constraint(
            _image(hw_architecture='aarch64', hw_firmware_stateless='true')))

    def test_bios_is_ignored_with_a_warning(self):
        self.assertIsNone(hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_type='bios', hw_firmware_stateless='true')))
        self.assertIn("'hw_firmware_stateless' is ignored",
                      self.stdlog.output)

    def test_bios_default_is_ignored(self):
        for arch in ('x86_64', 'i686'):
            self.assertIsNone(hardware.get_stateless_firmware_constraint(
                _image(hw_firmware_stateless='true'), arch))
            self.assertIsNone(hardware.get_stateless_firmware_constraint(
                _image(hw_firmware_stateless='true', hw_architecture=arch)))

    def test_guest_architecture_from_the_host(self):
        # The image names no architecture; on an aarch64 host it boots
        # UEFI, and its stateless request holds.
        image = _image(hw_firmware_stateless='true')
        self.assertEqual('uefi', hardware.get_firmware_type(image,
                                                            'aarch64'))
        self.assertIs(True, hardware.get_stateless_firmware_constraint(
            image, 'aarch64'))
        # An explicit firmware type always wins.
        self.assertEqual('bios', hardware.get_firmware_type(
            _image(hw_firmware_type='bios'), 'aarch64'))

    def test_host_decides_when_the_image_does_not_say(self):
        request = hardware.get_stateless_firmware_request
        self.assertEqual((True, True),
                         request(_image(hw_firmware_stateless='true')))
        self.assertEqual((False, True),
                         request(_image(hw_firmware_stateless='false')))
        # Once the architecture is known, it decides.
        self.assertEqual(
            (True, False),
            request(_image(hw_firmware_stateless='true'), 'aarch64'))
        for props in ({'hw_firmware_type': 'uefi'},
                      {'hw_architecture': 'aarch64'}):
            self.assertEqual(
                (True, False),
                request(_image(hw_firmware_stateless='true', **props)),
                props)
        for props in ({}, {'hw_firmware_type': 'bios'},
                      {'hw_architecture': 'x86_64'}):
            self.assertEqual((None, False), request(_image(**props)), props)
        # Before a host is chosen the request is taken at its word.
        self.assertIs(True, hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_stateless='true')))
        self.assertNotIn('ignored', self.stdlog.output)

    def test_bios_false_logs_nothing(self):
        self.assertIsNone(hardware.get_stateless_firmware_constraint(
            _image(hw_firmware_type='bios', hw_firmware_stateless='false')))
        self.assertNotIn('ignored', self.stdlog.output)


class TestSecureBootConstraint(test.NoDBTestCase):

    def test_unset(self):
        self.assertIsNone(hardware.get_secure_boot_constraint(
            _flavor(), _image(hw_firmware_type='uefi')))

    def test_from_flavor_or_image(self):
        self.assertEqual('required', hardware.get_secure_boot_constraint(
            _flavor(**{'os:secure_boot': 'required'}),
            _image(hw_firmware_type='uefi')))
        self.assertEqual('optional', hardware.get_secure_boot_constraint(
            _flavor(), _image(hw_firmware_type='uefi',
                              os_secure_boot='optional')))

    def test_same_in_both(self):
        self.assertEqual('disabled', hardware.get_secure_boot_constraint(
            _flavor(**{'os:secure_boot': 'disabled'}),
            _image(os_secure_boot='disabled')))

    def test_conflict(self):
        ex = self.assertRaises(
            exception.FlavorImageConflict,
            hardware.get_secure_boot_constraint,
            _flavor(**{'os:secure_boot': 'required'}),
            _image(hw_firmware_type='uefi', os_secure_boot='disabled'))
        self.assertIn('os:secure_boot', ex.format_message())
        self.assertIn('os_secure_boot', ex.format_message())

    def test_bad_flavor_value(self):
        ex = self.assertRaises(
            exception.InvalidFlavorExtraSpecValue,
            hardware.get_secure_boot_constraint,
            _flavor(**{'os:secure_boot': 'on'}), _image())
        self.assertEqual(
            "Invalid value 'on' for flavor extra spec 'os:secure_boot': "
            "accepted values are 'required', 'disabled', 'optional'.",
            ex.format_message())

    def test_required_with_bios(self):
        ex = self.assertRaises(
            exception.SecureBootRequiresUEFI,
            hardware.get_secure_boot_constraint,
            _flavor(), _image(os_secure_boot='required'))
        self.assertIn("'hw_firmware_type'", ex.format_message())


class TestMemEncryption(test.NoDBTestCase):

    def _uefi(self, **props):
        props.setdefault('hw_firmware_type', 'uefi')
        return _image(**props)

    def test_not_requested(self):
        self.assertIsNone(hardware.get_mem_encryption_model(
            _flavor(), self._uefi()))
        self.assertIsNone(hardware.get_mem_encryption_model(
            _flavor(**{'hw:mem_encryption': 'false'}), self._uefi()))

    def test_default_model(self):
        self.assertEqual(
            fields.MemEncryptionModel.AMD_SEV,
            hardware.get_mem_encryption_model(
                _flavor(**{'hw:mem_encryption': 'true'}), self._uefi()))

    def test_snp_and_tdx_need_stateless(self):
        for model in fields.MemEncryptionModel.REQUIRE_STATELESS_FIRMWARE:
            ex = self.assertRaises(
                exception.MemoryEncryptionRequiresStatelessFirmware,
                hardware.get_mem_encryption_model, _flavor(),
                self._uefi(hw_mem_encryption='true',
                           hw_mem_encryption_model=model))
            self.assertIn(model, ex.format_message())
            self.assertIn("'hw_firmware_stateless'", ex.format_message())
            self.assertIn('unset', ex.format_message())
            ex = self.assertRaises(
                exception.MemoryEncryptionRequiresStatelessFirmware,
                hardware.get_mem_encryption_model, _flavor(),
                self._uefi(hw_mem_encryption='true',
                           hw_mem_encryption_model=model,
                           hw_firmware_stateless='false'))
            self.assertIn("'false'", ex.format_message())
            self.assertEqual(model, hardware.get_mem_encryption_model(
                _flavor(), self._uefi(hw_mem_encryption='true',
                                      hw_mem_encryption_model=model,
                                      hw_firmware_stateless='true')))

    def test_sev_and_sev_es_do_not_need_stateless(self):
        for model in ('amd-sev', 'amd-sev-es'):
            self.assertEqual(model, hardware.get_mem_encryption_model(
                _flavor(), self._uefi(hw_mem_encryption='true',
                                      hw_mem_encryption_model=model)))

    def test_model_without_request_is_refused(self):
        ex = self.assertRaises(
            exception.InvalidMemoryEncryptionRequest,
            hardware.get_mem_encryption_model, _flavor(),
            self._uefi(hw_mem_encryption_model='amd-sev-snp',
                       hw_firmware_stateless='true'))
        self.assertIn("'hw_mem_encryption'", ex.format_message())

    def test_needs_uefi(self):
        ex = self.assertRaises(
            exception.InvalidMemoryEncryptionRequest,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'true'}), _image())
        self.assertIn("'hw_firmware_type'", ex.format_message())

    def test_needs_q35(self):
        ex = self.assertRaises(
            exception.InvalidMemoryEncryptionRequest,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'true'}),
            self._uefi(hw_machine_type='pc-i440fx-7.2'))
        self.assertIn("'hw_machine_type'", ex.format_message())
        self.assertEqual('amd-sev', hardware.get_mem_encryption_model(
            _flavor(**{'hw:mem_encryption': 'true'}),
            self._uefi(hw_machine_type='pc-q35-7.2')))

    def test_flavor_image_conflicts(self):
        self.assertRaises(
            exception.FlavorImageConflict,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'false'}),
            self._uefi(hw_mem_encryption='true'))
        self.assertRaises(
            exception.FlavorImageConflict,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'true',
                       'hw:mem_encryption_model': 'amd-sev'}),
            self._uefi(hw_mem_encryption_model='amd-sev-es'))

    def test_bad_flavor_values(self):
        ex = self.assertRaises(
            exception.InvalidFlavorExtraSpecValue,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'sure'}), self._uefi())
        self.assertIn("'hw:mem_encryption'", ex.format_message())
        ex = self.assertRaises(
            exception.InvalidFlavorExtraSpecValue,
            hardware.get_mem_encryption_model,
            _flavor(**{'hw:mem_encryption': 'true',
                       'hw:mem_encryption_model': 'snp'}), self._uefi())
        self.assertIn("'amd-sev-snp'", ex.format_message())
