"""Tests of firmware descriptor parsing and of the UEFI loader choice.

Descriptors are real files in temporary directories, written in QEMU's
interop format, so parsing, the override rules and the warnings are
exercised as on a host.
"""

import json
import os

import fixtures

from nova import exception
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.virt.libvirt import firmware

CODE = fakelibvirt.OVMF_CODE
VARS = fakelibvirt.OVMF_VARS
CODE_SECBOOT = fakelibvirt.OVMF_CODE_SECBOOT
CODE_MS = fakelibvirt.OVMF_CODE_MS
VARS_MS = fakelibvirt.OVMF_VARS_MS
STATELESS_CODE = '/usr/share/OVMF/OVMF.stateless.fd'
STATELESS_SB_CODE = '/usr/share/OVMF/OVMF.stateless.secboot.fd'

ENROLLED = ('acpi-s3', 'enrolled-keys', 'requires-smm', 'secure-boot')
SECURE = ('acpi-s3', 'requires-smm', 'secure-boot')
PLAIN = ('acpi-s3',)


class _DescriptorDirMixin:

    def make_dir(self) -> str:
        return self.useFixture(fixtures.TempDir()).path

    def write(self, directory: str, name: str, document=None,
              **kwargs) -> str:
        if document is None:
            document = fakelibvirt.descriptor_json(**kwargs)
        path = os.path.join(directory, name)
        with open(path, 'w', encoding='utf-8') as f:
            f.write(document if isinstance(document, str)
                    else json.dumps(document))
        return path

    def write_debian(self, directory: str) -> None:
        """The three split descriptors of Debian 12's OVMF."""
        self.write(directory, '40-edk2-x86_64-secure-enrolled.json',
                   executable=CODE_MS, nvram_template=VARS_MS,
                   features=ENROLLED)
        self.write(directory, '50-edk2-x86_64-secure.json',
                   executable=CODE_SECBOOT, features=SECURE)
        self.write(directory, '60-edk2-x86_64.json', executable=CODE,
                   machines=('pc-i440fx-*', 'pc-q35-*'), features=PLAIN)


class DescriptorParsingTestCase(_DescriptorDirMixin, test.NoDBTestCase):

    def load_one(self, **kwargs) -> firmware.FirmwareDescriptor:
        directory = self.make_dir()
        self.write(directory, '50-test.json', **kwargs)
        descriptors = firmware.load_descriptors([directory])
        self.assertEqual(1, len(descriptors))
        return descriptors[0]

    def test_split(self):
        d = self.load_one(mode='split', executable=CODE, nvram_template=VARS,
                          features=PLAIN, machines=('pc-q35-*',))
        self.assertEqual(firmware.MODE_SPLIT, d.mode)
        self.assertEqual(CODE, d.executable)
        self.assertEqual('raw', d.executable_format)
        self.assertEqual(VARS, d.nvram_template)
        self.assertEqual((('x86_64', ('pc-q35-*',)),), d.targets)
        self.assertEqual(frozenset(PLAIN), d.features)
        self.assertTrue(d.is_uefi)
        self.assertFalse(d.secure_boot)
        self.assertFalse(d.requires_smm)
        self.assertEqual('50-test.json', d.name)

    def test_mode_defaults_to_split(self):
        document = fakelibvirt.descriptor_json()
        del document['mapping']['mode']
        d = self.load_one(document=document)
        self.assertEqual(firmware.MODE_SPLIT, d.mode)
        self.assertEqual(VARS, d.nvram_template)

    def test_combined(self):
        d = self.load_one(mode='combined', executable='/fw/OVMF.fd')
        self.assertEqual(firmware.MODE_COMBINED, d.mode)
        self.assertEqual('/fw/OVMF.fd', d.executable)
        self.assertIsNone(d.nvram_template)

    def test_stateless(self):
        d = self.load_one(mode='stateless', executable=STATELESS_CODE)
        self.assertEqual(firmware.MODE_STATELESS, d.mode)
        self.assertEqual(STATELESS_CODE, d.executable)
        self.assertIsNone(d.nvram_template)

    def test_secure_boot_with_enrolled_keys(self):
        d = self.load_one(executable=CODE_MS, nvram_template=VARS_MS,
                          features=ENROLLED)
        self.assertTrue(d.secure_boot)
        self.assertTrue(d.enrolled_keys)
        self.assertTrue(d.requires_smm)
        # The keys are in the VARS template: enforced with it, nothing
        # enforced (if it boots at all) without it.
        self.assertTrue(d.enforces_secure_boot(stateless=False))
        self.assertFalse(d.enforces_secure_boot(stateless=True))

    def test_secure_boot_without_enrolled_keys(self):
        d = self.load_one(executable=CODE_SECBOOT, features=SECURE)
        self.assertTrue(d.secure_boot)
        self.assertFalse(d.enrolled_keys)
        self.assertFalse(d.enforces_secure_boot(stateless=False))
        self.assertFalse(d.enforces_secure_boot(stateless=True))

    def test_stateless_secure_boot_with_enrolled_keys(self):
        d = self.load_one(mode='stateless', executable=STATELESS_SB_CODE,
                          features=ENROLLED)
        self.assertTrue(d.enforces_secure_boot(stateless=True))

    def test_bios_interface_is_not_uefi(self):
        d = self.load_one(interface_types=('bios',))
        self.assertFalse(d.is_uefi)

    def test_machine_globs(self):
        d = self.load_one(machines=('pc-q35-*',))
        self.assertTrue(d.supports('x86_64', 'pc-q35-7.2'))
        self.assertTrue(d.supports('x86_64', 'pc-q35-4.0.1'))
        self.assertFalse(d.supports('x86_64', 'pc-i440fx-7.2'))
        # Aliases are not versioned names; the canonical one must be given.
        self.assertFalse(d.supports('x86_64', 'q35'))
        self.assertTrue(d.supports('x86_64', 'q35', 'pc-q35-7.2'))
        self.assertFalse(d.supports('x86_64', 'PC-Q35-7.2'))
        self.assertFalse(d.supports('aarch64', 'pc-q35-7.2'))
        self.assertFalse(d.supports('x86_64', None))

    def test_several_targets(self):
        document = fakelibvirt.descriptor_json()
        document['targets'] = [
            {'architecture': 'aarch64', 'machines': ['virt-*']},
            {'architecture': 'x86_64', 'machines': ['pc-i440fx-*']}]
        d = self.load_one(document=document)
        self.assertTrue(d.supports('aarch64', 'virt-7.2'))
        self.assertTrue(d.supports('x86_64', 'pc-i440fx-7.2'))
        self.assertFalse(d.supports('x86_64', 'virt-7.2'))


class DescriptorOverrideTestCase(_DescriptorDirMixin, test.NoDBTestCase):

    def test_later_directory_overrides_same_name(self):
        usr, etc = self.make_dir(), self.make_dir()
        self.write(usr, '60-edk2.json', executable=CODE)
        self.write(etc, '60-edk2.json', executable='/etc/fw/CODE.fd')
        descriptors = firmware.load_descriptors([usr, etc])
        self.assertEqual(['/etc/fw/CODE.fd'],
                         [d.executable for d in descriptors])
        self.assertEqual(os.path.join(etc, '60-edk2.json'),
                         descriptors[0].path)

    def test_order_by_file_name_across_directories(self):
        usr, etc = self.make_dir(), self.make_dir()
        self.write(usr, '60-plain.json', executable='/a.fd')
        self.write(usr, '20-first.json', executable='/b.fd')
        self.write(etc, '40-local.json', executable='/c.fd')
        names = [d.name for d in firmware.load_descriptors([usr, etc])]
        self.assertEqual(['20-first.json', '40-local.json', '60-plain.json'],
                         names)

    def test_empty_file_masks_lower_precedence_file(self):
        usr, etc = self.make_dir(), self.make_dir()
        self.write_debian(usr)
        self.write(etc, '40-edk2-x86_64-secure-enrolled.json', document='')
        names = [d.name for d in firmware.load_descriptors([usr, etc])]
        self.assertEqual(['50-edk2-x86_64-secure.json',
                          '60-edk2-x86_64.json'], names)
        self.assertNotIn('WARNING', self.stdlog.output)

    def test_hidden_files_and_missing_directories_are_skipped(self):
        usr = self.make_dir()
        self.write(usr, '.50-hidden.json', executable='/hidden.fd')
        self.write(usr, '60-edk2.json', executable=CODE)
        descriptors = firmware.load_descriptors(
            [usr, os.path.join(usr, 'does-not-exist')])
        self.assertEqual([CODE], [d.executable for d in descriptors])

    def test_default_directories_come_from_config(self):
        usr, etc = self.make_dir(), self.make_dir()
        self.write(usr, '60-edk2.json', executable=CODE)
        self.write(etc, '60-edk2.json', executable='/etc/fw/CODE.fd')
        self.flags(firmware_descriptor_dirs=[usr, etc], group='libvirt')
        self.assertEqual(['/etc/fw/CODE.fd'],
                         [d.executable for d in firmware.load_descriptors()])


class MalformedDescriptorTestCase(_DescriptorDirMixin, test.NoDBTestCase):
    """A broken file is skipped with a warning naming it; the others load.
    """

    def assert_skipped(self, document, reason: str) -> None:
        directory = self.make_dir()
        good = self.write(directory, '60-good.json', executable=CODE)
        bad = self.write(directory, '50-bad.json', document=document)
        descriptors = firmware.load_descriptors([directory])
        self.assertEqual([good], [d.path for d in descriptors])
        output = self.stdlog.output
        self.assertIn('WARNING', output)
        self.assertIn('Ignoring firmware descriptor %s' % bad, output)
        self.assertIn(reason, output)

    def _document(self, **changes) -> dict:
        document = fakelibvirt.descriptor_json()
        for key, value in changes.items():
            if value is None:
                del document[key]
            else:
                document[key] = value
        return document

    def test_invalid_json(self):
        self.assert_skipped('{"mapping": ', 'invalid JSON')

    def test_not_an_object(self):
        self.assert_skipped('[]', 'must be a JSON object')

    def test_missing_mapping(self):
        self.assert_skipped(self._document(mapping=None),
                            "missing key 'mapping'")

    def test_missing_targets(self):
        self.assert_skipped(self._document(targets=None),
                            "missing key 'targets'")

    def test_features_of_wrong_type(self):
        self.assert_skipped(self._document(features='secure-boot'),
                            "key 'features' must be a list")

    def test_feature_not_a_string(self):
        self.assert_skipped(self._document(features=['acpi-s3', 3]),
                            "key 'features' must list strings")

    def test_target_not_an_object(self):
        self.assert_skipped(self._document(targets=['x86_64']),
                            'each target must be an object')

    def test_non_flash_mapping(self):
        self.assert_skipped(
            fakelibvirt.descriptor_json(device='memory',
                                        executable='/fw/OVMF.amdsev.fd'),
            "mapping device 'memory' cannot be used as a pflash loader")

    def test_unknown_mode(self):
        document = fakelibvirt.descriptor_json()
        document['mapping']['mode'] = 'volatile'
        self.assert_skipped(document, "flash mode 'volatile' is not one of")

    def test_executable_without_filename(self):
        document = fakelibvirt.descriptor_json()
        del document['mapping']['executable']['filename']
        self.assert_skipped(document, "missing key 'filename'")

    def test_relative_executable(self):
        self.assert_skipped(
            fakelibvirt.descriptor_json(executable='OVMF_CODE.fd'),
            "'executable' filename must be an absolute path")

    def test_not_utf8(self):
        directory = self.make_dir()
        good = self.write(directory, '60-good.json', executable=CODE)
        bad = os.path.join(directory, '50-bad.json')
        with open(bad, 'wb') as f:
            f.write(b'\xff\xfe{}')
        self.assertEqual([good], [d.path for d in
                                  firmware.load_descriptors([directory])])
        self.assertIn('Ignoring firmware descriptor %s' % bad,
                      self.stdlog.output)


class ChooseLoaderTestCase(_DescriptorDirMixin, test.NoDBTestCase):

    ALIASES = {'q35': 'pc-q35-7.2', 'pc': 'pc-i440fx-7.2'}

    def setUp(self):
        super().setUp()
        self.dir = self.make_dir()

    def choose(self, machine_type='pc-q35-7.2', *, secure_boot=False,
               stateless=False, arch='x86_64', loader_paths=None,
               machine_aliases=None) -> firmware.UEFILoader:
        return firmware.choose_loader(
            firmware.load_descriptors([self.dir]), arch, machine_type,
            secure_boot=secure_boot, stateless=stateless,
            machine_aliases=machine_aliases, loader_paths=loader_paths)

    def assert_not_found(self, **kwargs) -> None:
        self.assertRaises(exception.UEFILoaderNotFound, self.choose, **kwargs)

    def test_debian_stateless(self):
        self.write_debian(self.dir)
        loader = self.choose(stateless=True)
        self.assertEqual(CODE, loader.path)
        self.assertIsNone(loader.nvram_template)
        self.assertTrue(loader.stateless)
        self.assertTrue(loader.readonly)
        self.assertEqual('pflash', loader.loader_type)
        self.assertFalse(loader.secure_boot)
        self.assertFalse(loader.requires_smm)
        self.assertEqual('60-edk2-x86_64.json', loader.descriptor.name)

    def test_debian_stateful(self):
        self.write_debian(self.dir)
        loader = self.choose()
        self.assertEqual(CODE, loader.path)
        self.assertEqual(VARS, loader.nvram_template)
        self.assertFalse(loader.stateless)
        self.assertFalse(loader.secure_boot)

    def test_debian_secure_boot_stateful(self):
        self.write_debian(self.dir)
        loader = self.choose(secure_boot=True)
        self.assertEqual(CODE_MS, loader.path)
        self.assertEqual(VARS_MS, loader.nvram_template)
        self.assertTrue(loader.secure_boot)
        self.assertTrue(loader.requires_smm)

    def test_debian_secure_boot_stateless_not_enforceable(self):
        # Every secure boot build is split: without its VARS it has no
        # keys (and its SMM code may not boot), never secure boot.
        self.write_debian(self.dir)
        ex = self.assertRaises(exception.UEFILoaderNotFound, self.choose,
                               secure_boot=True, stateless=True)
        self.assertIn('x86_64', str(ex))
        self.assertIn('pc-q35-7.2', str(ex))

    def test_stateless_secure_boot_needs_stateless_mode_enrolled_keys(self):
        self.write_debian(self.dir)
        self.write(self.dir, '30-stateless-secure.json', mode='stateless',
                   executable=STATELESS_SB_CODE, features=SECURE)
        self.assert_not_found(secure_boot=True, stateless=True)
        self.write(self.dir, '35-stateless-enrolled.json', mode='stateless',
                   executable=STATELESS_SB_CODE, features=ENROLLED)
        loader = self.choose(secure_boot=True, stateless=True)
        self.assertEqual('35-stateless-enrolled.json',
                         loader.descriptor.name)
        self.assertTrue(loader.secure_boot)
        self.assertIsNone(loader.nvram_template)

    def test_stateless_prefers_stateless_mode(self):
        self.write_debian(self.dir)
        self.write(self.dir, '70-stateless.json', mode='stateless',
                   executable=STATELESS_CODE, features=PLAIN)
        self.assertEqual(STATELESS_CODE, self.choose(stateless=True).path)
        # A stateful guest cannot use it: it has no variable store.
        self.assertEqual(CODE, self.choose().path)

    def test_without_secure_boot_prefers_plain_build(self):
        self.write(self.dir, '10-secure.json', executable=CODE_SECBOOT,
                   features=SECURE)
        self.write(self.dir, '90-plain.json', executable=CODE,
                   features=PLAIN)
        self.assertEqual(CODE, self.choose().path)
        self.assertEqual(CODE, self.choose(stateless=True).path)

    def test_without_secure_boot_falls_back_to_unenforcing_build(self):
        self.write(self.dir, '50-secure.json', executable=CODE_SECBOOT,
                   features=SECURE)
        loader = self.choose()
        self.assertEqual(CODE_SECBOOT, loader.path)
        self.assertFalse(loader.secure_boot)
        self.assertTrue(loader.requires_smm)

    def test_without_secure_boot_never_enforcing_build(self):
        self.write(self.dir, '40-enrolled.json', executable=CODE_MS,
                   nvram_template=VARS_MS, features=ENROLLED)
        self.assert_not_found()
        # Stateless, the same CODE would have no keys and enforce
        # nothing, but it requires SMM and cannot boot without its store.
        self.assert_not_found(stateless=True)

    def test_enrolled_build_without_smm_used_stateless(self):
        # Keys without SMM: used without the VARS the keys are gone and
        # the build boots in setup mode, usable and claimed as nothing.
        self.write(self.dir, '40-enrolled.json', executable=CODE_MS,
                   nvram_template=VARS_MS,
                   features=('acpi-s3', 'enrolled-keys', 'secure-boot'))
        loader = self.choose(stateless=True)
        self.assertEqual(CODE_MS, loader.path)
        self.assertFalse(loader.secure_boot)

    def test_smm_builds_never_boot_stateless(self):
        # The plain build masked: only the builds that require SMM are
        # left, and none of them boots without a variable store.
        self.write_debian(self.dir)
        mask = self.make_dir()
        self.write(mask, '60-edk2-x86_64.json', document='')
        descriptors = firmware.load_descriptors([self.dir, mask])
        self.assertEqual([CODE_MS, CODE_SECBOOT],
                         [d.executable for d in descriptors])
        self.assertEqual([False, False], [firmware.boots_stateless(d)
                                          for d in descriptors])
        self.assertRaises(
            exception.UEFILoaderNotFound, firmware.choose_loader,
            descriptors, 'x86_64', 'pc-q35-7.2', secure_boot=False,
            stateless=True)
        # A stateful guest still gets one, with its variable store.
        loader = firmware.choose_loader(
            descriptors, 'x86_64', 'pc-q35-7.2', secure_boot=False,
            stateless=False)
        self.assertEqual(CODE_SECBOOT, loader.path)
        self.assertEqual(VARS, loader.nvram_template)

    def test_stateless_mode_boots_stateless_even_with_smm(self):
        self.write(self.dir, '30-stateless.json', mode='stateless',
                   executable=STATELESS_CODE,
                   features=('acpi-s3', 'requires-smm'))
        self.assertEqual(STATELESS_CODE, self.choose(stateless=True).path)

    def test_secure_boot_needs_enrolled_keys(self):
        self.write(self.dir, '50-secure.json', executable=CODE_SECBOOT,
                   features=SECURE)
        self.assert_not_found(secure_boot=True)

    def test_combined_is_never_used(self):
        self.write(self.dir, '50-combined.json', mode='combined',
                   executable='/fw/OVMF.fd')
        self.assert_not_found()
        self.assert_not_found(stateless=True)

    def test_split_without_template_only_stateless(self):
        self.write(self.dir, '50-code-only.json', executable=CODE,
                   nvram_template=None)
        self.assert_not_found()
        self.assertEqual(CODE, self.choose(stateless=True).path)

    def test_priority_by_file_name(self):
        self.write(self.dir, '30-a.json', executable='/fw/A.fd')
        self.write(self.dir, '60-b.json', executable='/fw/B.fd')
        self.assertEqual('/fw/A.fd', self.choose().path)

    def test_loader_paths_filter(self):
        self.write_debian(self.dir)
        loader = self.choose(loader_paths=[CODE_SECBOOT])
        self.assertEqual(CODE_SECBOOT, loader.path)
        self.assertFalse(loader.secure_boot)
        self.assertEqual(CODE, self.choose(stateless=True,
                                           loader_paths=[CODE]).path)
        self.assert_not_found(stateless=True, loader_paths=[CODE_SECBOOT])
        self.assert_not_found(stateless=True, loader_paths=[])

    def test_machine_alias(self):
        self.write_debian(self.dir)
        self.assert_not_found(machine_type='q35')
        loader = self.choose(machine_type='q35', secure_boot=True,
                             machine_aliases=self.ALIASES)
        self.assertEqual(CODE_MS, loader.path)

    def test_machine_type_filters(self):
        self.write_debian(self.dir)
        # Only the plain build targets i440fx.
        self.assertEqual(CODE, self.choose('pc-i440fx-7.2').path)
        self.assert_not_found(machine_type='pc-i440fx-7.2', secure_boot=True)
        self.assert_not_found(machine_type='microvm')

    def test_arch_filters(self):
        self.write_debian(self.dir)
        self.assert_not_found(arch='aarch64', machine_type='virt-7.2')

    def test_bios_firmware_is_ignored(self):
        self.write(self.dir, '50-seabios.json', interface_types=('bios',))
        self.assert_not_found()
        self.assert_not_found(stateless=True)

    def test_no_descriptors(self):
        self.assert_not_found()
