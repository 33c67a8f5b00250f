"""Tests of ``nova-firmware``: its parser, its input checks, ``check`` and
``xml`` on fakelibvirt.

The command runs in-process through ``main()``, as a user runs it, and the
tests read what it printed and its exit status. Bad input must be refused
before libvirt is touched, so those tests run without any libvirt.
"""

import io
import json
import os

import fixtures
import os_traits

from nova.cmd import firmware
from nova.cmd import firmware_common as common
from nova import exception
from nova import test
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit.cmd import cli_fixture

STATELESS = os_traits.COMPUTE_SECURITY_STATELESS_FIRMWARE
STATELESS_PROPERTIES = ('--property', 'hw_firmware_type=uefi',
                        '--property', 'hw_firmware_stateless=true')


class ParseKeyValueTestCase(test.NoDBTestCase):

    def test_key_and_value(self):
        self.assertEqual(('hw_firmware_type', 'uefi'),
                         common.parse_key_value('hw_firmware_type=uefi',
                                                '--property'))

    def test_value_may_hold_equals_signs_and_spaces_are_trimmed(self):
        self.assertEqual(('trait:CUSTOM_X', 'a=b'),
                         common.parse_key_value(' trait:CUSTOM_X = a=b ',
                                                '--extra-spec'))

    def test_empty_value_is_a_value(self):
        self.assertEqual(('hw_machine_type', ''),
                         common.parse_key_value('hw_machine_type=',
                                                '--property'))

    def test_refuses_text_without_equals_sign(self):
        ex = self.assertRaises(exception.InvalidInput,
                               common.parse_key_value,
                               'hw_firmware_stateless', '--property')
        self.assertEqual(
            "Invalid input received: --property 'hw_firmware_stateless' is "
            "not of the form KEY=VALUE", ex.format_message())

    def test_refuses_empty_key(self):
        ex = self.assertRaises(exception.InvalidInput,
                               common.parse_key_value, '=true', '--property')
        self.assertIn("--property '=true'", ex.format_message())

    def test_later_items_replace_defaults_and_earlier_items(self):
        result = common.parse_key_values(
            ['hw_firmware_stateless=false', 'os_secure_boot=optional',
             'os_secure_boot=required'],
            '--property', common.STATELESS_PROPERTIES)
        self.assertEqual({'hw_firmware_type': 'uefi',
                          'hw_firmware_stateless': 'false',
                          'hw_machine_type': 'q35',
                          'os_secure_boot': 'required'}, result)
        # The defaults themselves are left alone.
        self.assertEqual('true',
                         common.STATELESS_PROPERTIES['hw_firmware_stateless'])


class ParseFlavorTestCase(test.NoDBTestCase):

    def test_default_flavor(self):
        flavor = common.parse_flavor(common.DEFAULT_FLAVOR)
        self.assertEqual((1, 256, 1, 0, 0), (
            flavor.vcpus, flavor.memory_mb, flavor.root_gb,
            flavor.ephemeral_gb, flavor.swap))
        self.assertEqual({}, flavor.extra_specs)

    def test_keys_not_given_keep_their_defaults(self):
        flavor = common.parse_flavor('ram=512,')
        self.assertEqual((1, 512, 1), (flavor.vcpus, flavor.memory_mb,
                                       flavor.root_gb))

    def test_every_key(self):
        flavor = common.parse_flavor(
            'vcpus=2, ram=1024, disk=0, ephemeral=3, swap=512',
            {'os:secure_boot': 'required'})
        self.assertEqual((2, 1024, 0, 3, 512), (
            flavor.vcpus, flavor.memory_mb, flavor.root_gb,
            flavor.ephemeral_gb, flavor.swap))
        self.assertEqual({'os:secure_boot': 'required'}, flavor.extra_specs)

    def test_unknown_key_names_the_accepted_ones(self):
        ex = self.assertRaises(exception.InvalidInput, common.parse_flavor,
                               'cpus=2')
        self.assertEqual(
            "Invalid input received: --flavor 'cpus=2': unknown key 'cpus'; "
            "accepted keys are vcpus, ram, disk, ephemeral, swap",
            ex.format_message())

    def test_not_an_integer(self):
        ex = self.assertRaises(exception.InvalidInput, common.parse_flavor,
                               'ram=lots')
        self.assertIn("ram must be an integer from 1 to 2147483647, not "
                      "'lots'", ex.format_message())

    def test_below_minimum(self):
        ex = self.assertRaises(exception.InvalidInput, common.parse_flavor,
                               'vcpus=0')
        self.assertIn("vcpus must be an integer from 1 to 2147483647, not "
                      "'0'", ex.format_message())
        self.assertRaises(exception.InvalidInput, common.parse_flavor,
                          'disk=-1')

    def test_above_what_nova_and_placement_store(self):
        # Placement failed on it with a 500, which read "No valid host".
        ex = self.assertRaises(exception.InvalidInput, common.parse_flavor,
                               'disk=99999999999999999999')
        self.assertEqual(
            "Invalid input received: --flavor 'disk=99999999999999999999': "
            "disk must be an integer from 0 to 2147483647, not "
            "'99999999999999999999'", ex.format_message())
        self.assertEqual(
            2147483647, common.parse_flavor('disk=2147483647').root_gb)

    def test_only_plain_ascii_digits_are_numbers(self):
        # int() reads both of these; a user typing them meant something
        # else, or nothing.
        for text in ('ram=\uff12\uff15\uff16', 'ram=2_56', 'ram=+256',
                     'ram=256.0'):
            ex = self.assertRaises(exception.InvalidInput,
                                   common.parse_flavor, text)
            self.assertIn('ram must be an integer from 1', ex.format_message())

    def test_summary_names_every_size(self):
        flavor = common.parse_flavor('ephemeral=2,swap=512')
        summary = common.flavor_summary(flavor)
        self.assertEqual('vcpus=1,ram=256,disk=1,ephemeral=2,swap=512',
                         str(summary))
        self.assertEqual({'vcpus': 1, 'ram': 256, 'disk': 1, 'ephemeral': 2,
                          'swap': 512}, summary)

    def test_item_without_equals_sign(self):
        ex = self.assertRaises(exception.InvalidInput, common.parse_flavor,
                               'vcpus=1,256')
        self.assertIn("--flavor '256' is not of the form KEY=VALUE",
                      ex.format_message())


class UnknownPropertiesTestCase(test.NoDBTestCase):

    def test_typos_are_reported_known_and_legacy_names_are_not(self):
        self.assertEqual(
            ['hw_firmware_stateles', 'os_distro'],
            common.unknown_properties([
                'hw_firmware_stateles', 'hw_firmware_stateless',
                'hw_firmware_type', 'architecture', 'os_distro']))

    def test_extra_specs_nothing_reads(self):
        self.assertEqual(
            ['hw:mem_encryption_modle', 'os:secure_bot'],
            common.unknown_extra_specs([
                'os:secure_bot', 'os:secure_boot', 'hw:mem_encryption',
                'hw:mem_encryption_modle', 'hw:mem_encryption_model',
                'resources:VCPU', 'trait:CUSTOM_X']))


class MachineTypeSummaryTestCase(test.NoDBTestCase):

    def test_versioned_families_are_summed_up(self):
        self.assertEqual(
            'pc, q35, pc-i440fx-2.0 to pc-i440fx-7.2, pc-q35-2.10 to '
            'pc-q35-7.2, virt-9.0',
            common.summarize_machine_types([
                'q35', 'pc-q35-7.2', 'pc-q35-2.10', 'pc-q35-4.0.1', 'pc',
                'pc-i440fx-7.2', 'pc-i440fx-2.0', 'virt-9.0']))


class ParserTestCase(test.NoDBTestCase):

    def parse(self, *argv):
        args = firmware._parse_args(list(argv))
        self.assertNotIsInstance(args, int)
        return args

    def parse_error(self, *argv):
        """The error line of a command line argparse refuses."""
        stderr = self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', io.StringIO())).new_value
        self.assertEqual(2, firmware._parse_args(list(argv)))
        return stderr.getvalue().splitlines()[-1]

    def test_global_options_before_or_after_the_command(self):
        before = self.parse('--json', '--state-dir', '/s', '--connection',
                            'qemu:///system', 'check')
        after = self.parse('check', '--json', '--state-dir', '/s',
                           '--connection', 'qemu:///system')
        for args in (before, after):
            self.assertEqual('check', args.command)
            self.assertTrue(args.json)
            self.assertEqual('/s', args.state_dir)
            self.assertEqual('qemu:///system', args.connection)
            self.assertFalse(args.debug)

    def test_config_files_from_both_sides_are_all_read(self):
        args = self.parse('--config-file', 'a.conf', 'xml', '--config-file',
                          'b.conf')
        self.assertEqual(['a.conf', 'b.conf'], args.config_file)

    def test_option_after_the_command_wins(self):
        args = self.parse('--virt-type', 'kvm', 'check', '--virt-type',
                          'qemu')
        self.assertEqual('qemu', args.virt_type)

    def test_empty_state_dir_or_connection_is_refused(self):
        for option in ('--state-dir', '--connection'):
            result = self.parse_error(option, '', 'check')
            self.assertIn('argument %s: must not be empty; leave %s out for '
                          'the default' % (option, option), result)

    def test_timeout_must_be_a_finite_positive_decimal(self):
        for text in ('nan', 'inf', '-inf', '1e400', '1e3', '0', '0.0', '-1',
                     '1_0', '\uff11\uff10', ''):
            result = self.parse_error('boot', '--timeout=%s' % text)
            self.assertIn('argument --timeout: must be a positive number '
                          'of seconds', result)
        self.assertEqual(0.5, self.parse('boot', '--timeout', '0.5').timeout)

    def test_timeout_too_large_for_a_float_is_refused(self):
        # Plain digits pass the pattern; float() makes 400 of them inf,
        # which only the finiteness check stops.
        digits = '9' * 400
        self.assertEqual(float('inf'), float(digits))

        result = self.parse_error('boot', '--timeout', digits)

        self.assertIn("argument --timeout: must be a positive number of "
                      "seconds, not '%s'" % digits, result)
        self.assertNotIn('such as 120', result)

    def test_boot_defaults(self):
        args = self.parse('boot')
        self.assertEqual(120.0, args.timeout)
        self.assertFalse(args.keep)
        self.assertIsNone(args.placement_url)
        self.assertEqual([], args.property)
        self.assertEqual(common.DEFAULT_FLAVOR, args.flavor)

    def test_request_options(self):
        args = self.parse('xml', '--property', 'a=1', '--property', 'b=2',
                          '--flavor', 'ram=512', '--extra-spec', 'x=y')
        self.assertEqual(['a=1', 'b=2'], args.property)
        self.assertEqual('ram=512', args.flavor)
        self.assertEqual(['x=y'], args.extra_spec)


class MainTestCase(test.NoDBTestCase):
    """``main()`` as a user meets it, without any libvirt."""

    def setUp(self):
        super().setUp()
        self.cli = self.useFixture(cli_fixture.NovaFirmwareFixture())
        self.state_dir = self.useFixture(fixtures.TempDir()).path

    def run_cli(self, *argv):
        return self.cli.run('--state-dir', self.state_dir, *argv)

    def assertOneErrorLine(self, result, code, command, *texts):
        self.assertEqual(code, result.code, result)
        self.assertEqual('', result.stdout)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        line = result.stderr_lines[0]
        self.assertTrue(
            line.startswith('nova-firmware %s: error: ' % command), line)
        for text in texts:
            self.assertIn(text, line)

    def test_help_lists_the_commands(self):
        result = self.cli.run('--help')
        self.assertEqual(0, result.code)
        for command in ('check', 'xml', 'boot'):
            self.assertIn(command, result.stdout)
        self.assertIn('Boot a stateless UEFI guest through the whole flow',
                      result.stdout)

    def test_no_command_is_a_usage_error(self):
        result = self.cli.run()
        self.assertEqual(2, result.code)
        self.assertIn('required: COMMAND', result.stderr)

    def test_xml_invalid_property_value(self):
        result = self.run_cli('xml', '--property',
                              'hw_firmware_stateless=ture')
        self.assertOneErrorLine(
            result, 2, 'xml',
            "Invalid value 'ture' for image property "
            "'hw_firmware_stateless': accepted values are '1', 't', "
            "'true'")

    def test_xml_invalid_enum_property(self):
        result = self.run_cli('xml', '--property', 'hw_firmware_type=efi')
        self.assertOneErrorLine(
            result, 2, 'xml', "image property 'hw_firmware_type'",
            "'uefi', 'bios'")

    def test_xml_malformed_property(self):
        result = self.run_cli('xml', '--property', 'hw_firmware_stateless')
        self.assertOneErrorLine(
            result, 2, 'xml',
            "--property 'hw_firmware_stateless' is not of the form "
            "KEY=VALUE")

    def test_xml_bad_flavor(self):
        result = self.run_cli('xml', '--flavor', 'vcpus=1,ram=abc')
        self.assertOneErrorLine(
            result, 2, 'xml',
            "ram must be an integer from 1 to 2147483647, not 'abc'")

    def test_xml_bad_extra_spec(self):
        result = self.run_cli('xml', *STATELESS_PROPERTIES,
                              '--extra-spec', 'os:secure_boot=maybe')
        self.assertOneErrorLine(result, 2, 'xml', "'os:secure_boot'",
                                "'maybe'")

    def test_xml_flavor_and_image_conflict(self):
        result = self.run_cli('xml', *STATELESS_PROPERTIES,
                              '--property', 'os_secure_boot=disabled',
                              '--extra-spec', 'os:secure_boot=required')
        self.assertOneErrorLine(result, 2, 'xml', 'Conflicting values')

    def test_boot_refuses_bad_input_before_starting_anything(self):
        result = self.run_cli('boot', '--property',
                              'hw_firmware_stateless=ture')
        self.assertOneErrorLine(result, 2, 'boot', 'hw_firmware_stateless')

    def test_boot_refuses_a_timeout_that_is_not_positive(self):
        result = self.run_cli('boot', '--timeout', '0')
        self.assertEqual(2, result.code)
        self.assertEqual('', result.stdout)
        self.assertEqual(
            "nova-firmware boot: error: argument --timeout: must be a "
            "positive number of seconds, not '0'",
            result.stderr_lines[-1])

    def test_usage_error_as_json(self):
        result = self.run_cli('boot', '--json', '--timeout', 'nan')
        self.assertEqual(2, result.code)
        self.assertEqual(
            {'command': 'boot', 'exit_code': 2, 'warnings': [],
             'error': "argument --timeout: must be a positive number of "
                      "seconds such as 120 or 0.5, not 'nan'"},
            json.loads(result.stdout))

    def test_bad_input_as_json(self):
        result = self.run_cli('--json', 'xml', '--property',
                              'hw_firmware_stateless=ture')
        self.assertEqual(2, result.code)
        document = json.loads(result.stdout)
        self.assertEqual('xml', document['command'])
        self.assertEqual(2, document['exit_code'])
        self.assertIn("'hw_firmware_stateless'", document['error'])

    def test_control_character_in_machine_type(self):
        result = self.run_cli('xml', '--property', 'hw_machine_type=q3\x015')
        self.assertOneErrorLine(
            result, 2, 'xml',
            "Invalid value 'q3\\x015' for image property 'hw_machine_type': "
            "accepted values are machine type names such as q35 or "
            "pc-q35-7.2, without control characters.")

    def test_state_dir_that_is_a_file(self):
        path = os.path.join(self.state_dir, 'file')
        open(path, 'w').close()
        result = self.cli.run('--state-dir', path, 'check')
        self.assertOneErrorLine(
            result, 2, 'check',
            '--state-dir %s exists and is not a directory.' % path)

    def test_bad_boolean_in_the_configuration(self):
        # oslo.config itself printed a line and exited 1 for an option it
        # also takes on the command line; 1 means "unsupported host" here.
        for text, option, reason in (
                ('[DEFAULT]\ndebug = maybe\n', '[DEFAULT] debug',
                 'Invalid Boolean value: maybe'),
                ('[placement]\nembedded = maybe\n', '[placement] embedded',
                 "Unexpected boolean value 'maybe'"),
                ('[libvirt]\nvirt_type = lxc\n', '[libvirt] virt_type',
                 "Valid values are [kvm, qemu], but found 'lxc'")):
            conf = os.path.join(self.state_dir, 'nova.conf')
            with open(conf, 'w') as f:
                f.write(text)
            result = self.run_cli('--json', '--config-file', conf, 'check')
            self.assertEqual(2, result.code, result)
            self.assertEqual(
                'configuration %s: option %s is not valid: %s' % (
                    conf, option, reason),
                json.loads(result.stdout)['error'])
            self.assertEqual(
                ['nova-firmware check: error: configuration %s: option %s '
                 'is not valid: %s' % (conf, option, reason)],
                result.stderr_lines)

    def test_libvirt_logs_to_a_file_in_the_state_directory(self):
        self.run_cli('xml', '--property', 'hw_firmware_type=efi')
        self.assertEqual('3:file:%s/libvirt.log' % self.state_dir,
                         self.cli.environment['LIBVIRT_LOG_OUTPUTS'])
        self.assertEqual('4', self.cli.environment['LIBVIRT_DEBUG'])

    def test_operators_libvirt_logging_is_kept(self):
        self.useFixture(fixtures.EnvironmentVariable('LIBVIRT_DEBUG', '1'))
        self.run_cli('xml', '--property', 'hw_firmware_type=efi')
        self.assertEqual({'LIBVIRT_DEBUG': '1'}, self.cli.environment)


class _FakeHostTestCase(test.NoDBTestCase):
    """``check`` and ``xml`` against fakelibvirt posing as a host."""

    LV_VER = (8, 6, 0)

    def setUp(self):
        super().setUp()
        self.fake = self.useFixture(
            fakelibvirt.FakeLibvirtFixture(lv_ver=self.LV_VER))
        self.cli = self.useFixture(cli_fixture.NovaFirmwareFixture())
        self.state_dir = self.useFixture(fixtures.TempDir()).path

    def run_cli(self, *argv):
        return self.cli.run('--state-dir', self.state_dir,
                            '--connection', 'qemu:///system', *argv)


class CheckTestCase(_FakeHostTestCase):

    def test_supported(self):
        result = self.run_cli('check')

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn('libvirt:            8.6.0', lines)
        self.assertIn('virt type:          qemu', lines)
        self.assertIn('uri:                qemu:///system', lines)
        self.assertIn('stateless firmware: yes', lines)
        self.assertIn('loader:             %s' % fakelibvirt.OVMF_CODE,
                      lines)
        self.assertIn('xml form:           explicit', lines)
        self.assertIn('  - %s' % STATELESS, lines)
        # The <os> of a stateless guest, as the driver writes it.
        self.assertIn('os element:', lines)
        self.assertIn("stateless=\"yes\">%s</loader>" %
                      fakelibvirt.OVMF_CODE, result.stdout)

    def test_supported_as_json(self):
        result = self.run_cli('check', '--json')

        self.assertEqual(0, result.code, result)
        report = json.loads(result.stdout)
        self.assertEqual('check', report['command'])
        self.assertIs(True, report['stateless_firmware'])
        self.assertEqual(fakelibvirt.OVMF_CODE, report['loader'])
        self.assertIn(STATELESS, report['traits'])
        self.assertEqual(0, report['exit_code'])
        self.assertTrue(report['reasons'])

    def test_virt_type_from_the_configuration_wins_over_the_tools(self):
        conf = self.useFixture(fixtures.TempDir()).join('nova.conf')
        with open(conf, 'w') as f:
            f.write('[libvirt]\nvirt_type = kvm\n')
        result = self.run_cli('--config-file', conf, 'check')
        self.assertIn('virt type:          kvm', result.stdout.splitlines())
        result = self.run_cli('--config-file', conf, 'check',
                              '--virt-type', 'qemu')
        self.assertIn('virt type:          qemu',
                      result.stdout.splitlines())

    def test_verbose_logs_go_to_stderr_not_into_the_report(self):
        quiet = self.run_cli('check')
        verbose = self.run_cli('check', '--verbose')

        self.assertEqual(quiet.stdout, verbose.stdout)
        self.assertEqual('', quiet.stderr)
        self.assertIn('INFO nova.virt.libvirt.host [-] Stateless firmware '
                      'support: True', verbose.stderr)

    def test_libvirt_unreachable(self):
        self.fake.hypervisor.available = False

        result = self.run_cli('check')

        self.assertEqual(2, result.code)
        self.assertEqual('', result.stdout)
        self.assertEqual(
            ["nova-firmware check: error: cannot connect to libvirt at "
             "qemu:///system: Failed to connect socket to "
             "'/var/run/libvirt/libvirt-sock': No such file or directory"],
            result.stderr_lines)


class CheckUnsupportedTestCase(_FakeHostTestCase):

    LV_VER = (8, 5, 0)

    def test_unsupported_exits_1_with_the_reason(self):
        result = self.run_cli('check')

        self.assertEqual(1, result.code, result)
        self.assertEqual('', result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn('stateless firmware: no', lines)
        self.assertIn('xml form:           -', lines)
        self.assertIn("older than 8.6.0", result.stdout)
        self.assertNotIn(STATELESS, result.stdout)
        self.assertNotIn('os element:', result.stdout)


class XmlTestCase(_FakeHostTestCase):

    def test_stateless(self):
        result = self.run_cli('xml', *STATELESS_PROPERTIES)

        self.assertEqual(0, result.code, result)
        self.assertEqual('', result.stderr)
        lines = result.stdout.splitlines()
        self.assertIn(
            'query:              GET /allocation_candidates?limit=1000&'
            'required=%s&resources=DISK_GB:1,MEMORY_MB:256,VCPU:1' %
            STATELESS, lines)
        xml = result.stdout[result.stdout.index('<domain'):]
        self.assertIn('<loader readonly="yes" type="pflash" '
                      'stateless="yes">%s</loader>' % fakelibvirt.OVMF_CODE,
                      xml)
        self.assertNotIn('<nvram', xml)
        # Nothing is defined.
        self.assertEqual({}, self.fake.hypervisor.domains)

    def test_json(self):
        result = self.run_cli('xml', '--json', *STATELESS_PROPERTIES,
                              '--flavor', 'ram=512')

        self.assertEqual(0, result.code, result)
        report = json.loads(result.stdout)
        self.assertEqual({'hw_firmware_type': 'uefi',
                          'hw_firmware_stateless': 'true'},
                         report['image_properties'])
        self.assertEqual({'vcpus': 1, 'ram': 512, 'disk': 1, 'ephemeral': 0,
                          'swap': 0}, report['flavor'])
        self.assertIn('MEMORY_MB:512', report['query'])
        self.assertIn("stateless=\"yes\"", report['xml'])
        self.assertIsNone(report['error'])

    def test_request_this_host_cannot_honour(self):
        # No firmware here enforces secure boot without a variable store,
        # so the host does not report the trait the scheduler asks for.
        result = self.run_cli('xml', *STATELESS_PROPERTIES,
                              '--property', 'os_secure_boot=required')

        self.assertEqual(1, result.code, result)
        self.assertIn(os_traits.COMPUTE_SECURITY_UEFI_SECURE_BOOT,
                      result.stdout)
        self.assertNotIn('<domain', result.stdout)
        self.assertEqual(1, len(result.stderr_lines), result.stderr)
        self.assertTrue(result.stderr_lines[0].startswith(
            'nova-firmware xml: error: this host cannot honour the '
            'request: it does not report trait '
            'CUSTOM_SECURITY_STATELESS_FIRMWARE_SECURE_BOOT (secure '
            'boot without a variable store needs'))

    def test_traits_this_host_does_not_report(self):
        result = self.run_cli(
            'xml', '--json', *STATELESS_PROPERTIES,
            '--extra-spec', 'trait:CUSTOM_RACK_7=required',
            '--extra-spec', 'trait:%s=forbidden' % STATELESS)

        self.assertEqual(1, result.code, result)
        report = json.loads(result.stdout)
        self.assertIsNone(report['xml'])
        self.assertEqual(
            'this host cannot honour the request: it does not report trait '
            'CUSTOM_RACK_7, forbidden trait %s is reported' % STATELESS,
            report['error'])

    def test_unknown_property_is_warned_about(self):
        result = self.run_cli('xml', '--property',
                              'hw_firmware_stateles=true')

        self.assertEqual(0, result.code, result)
        self.assertEqual(
            ["nova-firmware xml: warning: image property "
             "'hw_firmware_stateles' is not one Nova reads; it has no "
             "effect"], result.stderr_lines)
        self.assertNotIn(STATELESS, result.stdout)
