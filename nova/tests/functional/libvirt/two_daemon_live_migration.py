"""Live migration between two libvirt daemons, on real QEMU.

Two compute hosts in one process, each a ``LibvirtDriver``: ``compute1``
on the host's libvirt daemon (``qemu:///system``), ``compute2`` on a
second daemon in namespaces of its own, with its own host name, host
UUID, domains, NVRAM directory and logs
(``nova.tests.fixtures.libvirt_second_host``). They share the instance
directory, as compute hosts on shared storage do; libvirt, which cannot
tell that a local directory is shared, is told so
(``trust_the_shared_storage``). The source's libvirt
reaches the destination's through its UNIX socket (``[libvirt]
live_migration_uri``), and QEMU sends the guest's memory to 127.0.0.1,
the destination's ``live_migration_inbound_addr``, the only address QEMU
there listens on.

The steps Nova's conductor and compute manager take are taken here in
the same order: the destination's check, the source's check, then the
migration, with the manager's post and recover methods recording that
they ran; every libvirt call is the driver's. What the tests check is
what each host shows: which daemon runs the guest and from which flash
drives (the QEMU command line each daemon logged), the domains each
defines, the NVRAM directories, and the firmware answering keys typed on
the guest's keyboard, on its serial console.

libvirt opens no connection to a daemon in a process that has embedded
its QEMU driver, as every functional test process has, so these run each
in a process of their own (``test_live_migration`` starts them), beside a
second host that process started and ends whatever happens here. Run on
their own (``python -m testtools.run``), they start one themselves. This
module is not collected by the test runner itself.
"""

import os
import random
import tempfile
import time

import fixtures
import libvirt

from nova.compute import api as compute_api
from nova import exception
from nova import test
from nova.tests.fixtures import compute as compute_fixture
from nova.tests.fixtures import libvirt_second_host
from nova.tests.fixtures import libvirt_system
from nova.tests.functional.libvirt import base
from nova.virt.libvirt import boot_evidence
from nova.virt.libvirt import driver as libvirt_driver
from nova.virt.libvirt import guest as libvirt_guest

HOST1, HOST2 = 'compute1', 'compute2'

#: Where the destination receives the guest's memory: the two hosts share
#: this machine's network.
INBOUND_ADDR = '127.0.0.1'

#: Seconds to wait for the firmware's shell on a console (TCG, shared
#: cores), and for it to answer a key.
FIRMWARE_TIMEOUT = 120
ANSWER_TIMEOUT = 30

#: The UEFI shell's prompt: OVMF found nothing to boot and waits for keys.
SHELL_PROMPT = 'Shell>'

#: Where Debian's OVMF images are.
OVMF_DIR = '/usr/share/OVMF'

#: What the destination host of a scenario lacks: paths its libvirt
#: daemon and QEMU see empty. The tests' instance directories are in the
#: temporary directory.
DESTINATION_HIDES = {
    'test_failed_migrations_leave_the_guest_on_the_source': (
        tempfile.gettempdir(),),
    'test_destination_without_the_firmware_refuses': (OVMF_DIR,),
}

#: Linux key codes (``VIR_KEYCODE_SET_LINUX``) of what the tests type.
DIGIT_KEYS = {'1': 2, '2': 3, '3': 4, '4': 5, '5': 6, '6': 7, '7': 8,
              '8': 9, '9': 10, '0': 11}
KEY_ENTER = 28

STATELESS_IMAGE = compute_fixture.make_image(
    hw_firmware_type='uefi', hw_firmware_stateless='true',
    hw_machine_type='q35')
STATEFUL_IMAGE = compute_fixture.make_image(
    hw_firmware_type='uefi', hw_machine_type='q35')
#: An aarch64 guest, as an aarch64 compute host runs it: Nova's machine
#: type of the architecture (virt) and AAVMF; here under TCG.
AARCH64_STATELESS_IMAGE = compute_fixture.make_image(
    hw_architecture='aarch64', hw_firmware_type='uefi',
    hw_firmware_stateless='true')
#: Seconds the vCPU of a guest moved under TCG must be seen running.
CPU_WATCH = 2


def last_qemu_command_line(log_dir: str, domain_name: str) -> str:
    """The QEMU command line of the domain's most recent start, from the
    log a daemon writes in ``log_dir``.
    """
    with open(os.path.join(log_dir, domain_name + '.log'),
              encoding='utf-8', errors='replace') as f:
        text = f.read().replace(' \\\n', ' ')
    starts = [line for line in text.splitlines()
              if '-machine ' in line and 'qemu-system' in line]
    return starts[-1] if starts else ''


class LiveMigrationBetweenDaemonsTestCase(test.NoDBTestCase):

    TIMEOUT = 300

    def setUp(self):
        super().setUp()
        self.system = self.useFixture(libvirt_system.SystemLibvirtFixture())
        self.second = libvirt_second_host.SecondLibvirtHost.from_environ()
        if self.second is None:
            self.second = self.useFixture(
                libvirt_second_host.SecondLibvirtHostFixture(
                    HOST2, DESTINATION_HIDES.get(self._testMethodName, ()))
            ).host
        state = self.useFixture(compute_fixture.ComputeStateFixture(
            self.system.uri))
        # QEMU under either daemon runs unprivileged and must reach the
        # shared instance directory.
        os.chmod(state.state_path, 0o755)
        os.makedirs(state.instances_path, mode=0o755, exist_ok=True)
        self.uris = {HOST1: self.system.uri, HOST2: self.second.uri}
        # Both hosts read the one configuration of this process: the
        # destination's inbound address, and where the source's libvirt
        # reaches the destination's.
        self.flags(live_migration_inbound_addr=INBOUND_ADDR,
                   live_migration_uri=self.second.uri, group='libvirt')
        self.drivers = {host: self.start_driver(host)
                        for host in (HOST1, HOST2)}
        self.flavor = compute_fixture.make_flavor()
        self.calls: list[str] = []
        self.timings: dict[str, float] = {}
        self.migrate_flags: list[int] = []
        self.trust_the_shared_storage()

    def trust_the_shared_storage(self) -> None:
        """Have the driver's migrations ask libvirt to trust the storage.

        libvirt live-migrates a guest whose disks are files only from a
        file system it knows to be shared between hosts (NFS, Ceph,
        GlusterFS...), unless told so with ``VIR_MIGRATE_UNSAFE``. Both
        hosts here are this machine and share the instance directory on a
        local file system, which libvirt 9.0 offers no setting to declare
        shared: that flag is added to the driver's own, which are kept in
        ``migrate_flags``.
        """
        real_migrate = libvirt_guest.Guest.migrate

        def migrate(guest, destination_uri, destination_xml, flags,
                    **kwargs):
            self.migrate_flags.append(flags)
            return real_migrate(guest, destination_uri, destination_xml,
                                flags | libvirt.VIR_MIGRATE_UNSAFE, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.virt.libvirt.guest.Guest.migrate', migrate))

    def start_driver(self, host: str) -> libvirt_driver.LibvirtDriver:
        self.flags(connection_uri=self.uris[host], group='libvirt')
        driver = libvirt_driver.LibvirtDriver()
        self.flags(connection_uri=self.uris[HOST1], group='libvirt')
        driver.init_host(host)
        self.assertEqual(self.uris[host], driver.host.uri)
        return driver

    # --- the steps of Nova's API, conductor and compute manager

    def create(self, image: dict):
        instance, _spec = compute_api.API().create(
            self.flavor, image,
            instance_id=libvirt_system.unique_instance_id())
        instance.host = instance.node = HOST1
        self.system.domain_names.append(instance.name)
        self.addCleanup(self.destroy_everywhere, instance)
        return instance

    def destroy_everywhere(self, instance) -> None:
        for host, driver in self.drivers.items():
            try:
                driver.destroy(None, instance)
            except Exception as ex:
                # The host may be down: its fixture removes what is left.
                print('not destroyed on %s: %s' % (host, ex))
        # A store libvirt left on the source of a live migration belongs
        # to no domain, and the host's daemon is shared.
        for path in self.nvram(HOST1, instance):
            os.unlink(path)

    def boot(self, image: dict = STATELESS_IMAGE):
        instance = self.create(image)
        start = time.monotonic()
        self.drivers[HOST1].spawn(None, instance, instance.image_meta)
        self.timings['spawn'] = time.monotonic() - start
        self.wait_for_console(instance, SHELL_PROMPT, FIRMWARE_TIMEOUT)
        self.timings['boot to the shell'] = time.monotonic() - start
        return instance

    def check(self, instance, dest: str):
        """The checks of both hosts, as the conductor asks for them."""
        source = self.drivers[instance.host]
        data = self.drivers[dest].check_can_live_migrate_destination(
            None, instance)
        return source.check_can_live_migrate_source(None, instance, data)

    def migrate(self, instance, dest: str, migrate_data,
                what: str = 'live migration') -> None:
        start = time.monotonic()
        try:
            self.drivers[instance.host].live_migration(
                None, instance, dest, self.post_live_migration,
                self.rollback_live_migration, migrate_data=migrate_data)
        finally:
            self.timings[what] = time.monotonic() - start

    def post_live_migration(self, context, instance, dest, block_migration,
                            migrate_data) -> None:
        self.calls.append('post')
        instance.host = instance.node = dest

    def rollback_live_migration(self, context, instance, dest,
                                migrate_data) -> None:
        self.calls.append('recover')

    # --- evidence

    def console(self, instance) -> str:
        path = self.drivers[HOST1].console_log_path(instance)
        try:
            with open(path, 'rb') as f:
                return f.read().decode('utf-8', 'replace')
        except FileNotFoundError:
            return ''

    def wait_for_console(self, instance, text: str, timeout: float,
                         seen: int = 0) -> None:
        """Wait until ``text`` shows on the console more than ``seen``
        times.
        """
        deadline = time.monotonic() + timeout
        while self.console(instance).count(text) <= seen:
            if time.monotonic() > deadline:
                self.fail('%r did not show on the console of %s in %d s; '
                          'console: %s' % (text, instance.name, timeout,
                                           self.console(instance)[-2000:]))
            time.sleep(0.25)

    def assert_answers(self, host: str, instance) -> None:
        """The firmware on ``host`` echoes digits typed on the guest's
        keyboard to its serial console: the guest runs there.
        """
        word = str(random.SystemRandom().randrange(10 ** 7, 10 ** 8))
        seen = self.console(instance).count(word)
        domain = self.drivers[host].host.get_instance_domain(instance)
        for key in [DIGIT_KEYS[c] for c in word] + [KEY_ENTER]:
            domain.sendKey(libvirt.VIR_KEYCODE_SET_LINUX, 0, [key], 1, 0)
        self.wait_for_console(instance, word, ANSWER_TIMEOUT, seen)

    def assert_vcpu_runs(self, host: str, instance) -> None:
        """The guest's vCPU time grows on ``host``: its firmware runs
        there. An aarch64 ``virt`` guest has no keyboard to type on, and
        its firmware's shell, waiting for keys, prints nothing more.
        """
        domain = self.drivers[host].host.get_instance_domain(instance)
        before = domain.info()[4]
        time.sleep(CPU_WATCH)
        self.assertGreater(domain.info()[4], before)

    def qemu_command_line(self, host: str, instance) -> str:
        if host == HOST1:
            return boot_evidence.last_qemu_command_line(self.uris[HOST1],
                                                        instance.name)
        return last_qemu_command_line(self.second.qemu_log_dir,
                                      instance.name)

    def nvram(self, host: str, instance) -> list[str]:
        if host == HOST1:
            return boot_evidence.nvram_files(self.uris[HOST1], instance.name)
        directory = self.second.nvram_dir
        if not os.path.isdir(directory):
            return []
        return sorted(os.path.join(directory, name)
                      for name in os.listdir(directory)
                      if name.startswith(instance.name + '_'))

    def assert_no_nvram(self, instance) -> None:
        for host in (HOST1, HOST2):
            self.assertEqual([], self.nvram(host, instance), host)

    def assert_runs_stateless_on(self, host: str, instance,
                                 other_host_up: bool = True) -> None:
        """The guest runs on ``host`` and is defined there only, from one
        read-only flash drive, with no variable store on either host.
        """
        driver = self.drivers[host]
        self.assertEqual(host, instance.host)
        self.assertEqual(libvirt_driver.POWER_RUNNING,
                         driver.get_info(instance))
        if other_host_up:
            other = HOST2 if host == HOST1 else HOST1
            self.assertNotIn(instance.name,
                             self.drivers[other].list_instances())
        guest = driver._get_guest(instance)
        live = guest.get_config()
        for config in (live, guest.get_config(dump_inactive=True)):
            self.assertTrue(config.os_loader_stateless)
            self.assertTrue(config.os_loader_readonly)
            self.assertEqual('pflash', config.os_loader_type)
            self.assertIsNone(config.os_nvram)
        drives = boot_evidence.pflash_drives(
            self.qemu_command_line(host, instance))
        self.assertEqual([(0, live.os_loader, True)],
                         [(d.unit, d.filename, d.read_only) for d in drives])
        self.assert_no_nvram(instance)

    def report_timings(self) -> None:
        print('timings: %s' % ', '.join(
            '%s %.2f s' % item for item in self.timings.items()))

    # --- the scenarios

    def test_stateless_guest_moves_running(self):
        instance = self.boot()
        self.assert_runs_stateless_on(HOST1, instance)
        self.assert_answers(HOST1, instance)

        data = self.check(instance, HOST2)
        self.assertTrue(data.dst_supports_stateless_firmware)
        self.assertEqual(INBOUND_ADDR, data.target_connect_addr)
        self.migrate(instance, HOST2, data)

        self.assertEqual(['post'], self.calls)
        self.assertEqual([libvirt.VIR_MIGRATE_LIVE |
                          libvirt.VIR_MIGRATE_PEER2PEER |
                          libvirt.VIR_MIGRATE_PERSIST_DEST |
                          libvirt.VIR_MIGRATE_UNDEFINE_SOURCE],
                         self.migrate_flags)
        self.assert_runs_stateless_on(HOST2, instance)
        # QEMU on compute2 started to receive the guest, and is defined
        # there as compute2 writes it.
        self.assertIn('-incoming', self.qemu_command_line(HOST2, instance))
        config = self.drivers[HOST2]._get_guest(instance).get_config(
            dump_inactive=True)
        self.assertEqual(data.dst_os_loader, config.os_loader)
        self.assert_answers(HOST2, instance)
        self.report_timings()

    def test_stateless_aarch64_guest_moves_running(self):
        instance = self.boot(AARCH64_STATELESS_IMAGE)
        self.assert_runs_stateless_on(HOST1, instance)

        data = self.check(instance, HOST2)
        self.assertTrue(data.dst_supports_stateless_firmware)
        self.migrate(instance, HOST2, data)

        self.assertEqual(['post'], self.calls)
        self.assert_runs_stateless_on(HOST2, instance)
        self.assertIn('-incoming', self.qemu_command_line(HOST2, instance))
        config = self.drivers[HOST2]._get_guest(instance).get_config(
            dump_inactive=True)
        self.assertEqual('aarch64', config.os_arch)
        self.assertTrue(config.os_mach_type.startswith('virt'),
                        config.os_mach_type)
        self.assertEqual(data.dst_os_loader, config.os_loader)
        self.assertTrue(config.os_loader.endswith('/AAVMF_CODE.fd'),
                        config.os_loader)
        self.assert_vcpu_runs(HOST2, instance)
        self.report_timings()

    def test_failed_migrations_leave_the_guest_on_the_source(self):
        # compute2 does not have the instance storage its nova-compute
        # sees (not mounted where its libvirt runs, say): the checks pass,
        # the migration fails on the destination.
        instance = self.boot()
        data = self.check(instance, HOST2)

        ex = self.assertRaises(libvirt.libvirtError, self.migrate,
                               instance, HOST2, data,
                               'live migration refused by compute2')

        self.assertIn(os.path.dirname(
            self.drivers[HOST1].console_log_path(instance)), str(ex))
        self.assertEqual(['recover'], self.calls)
        self.assert_runs_stateless_on(HOST1, instance)
        self.assert_answers(HOST1, instance)

        # compute2 goes down after the checks of the next try.
        self.calls.clear()
        self.second.end_daemon('libvirtd')

        ex = self.assertRaises(libvirt.libvirtError, self.migrate,
                               instance, HOST2, data,
                               'live migration to compute2 down')

        self.assertIn(self.second.socket, str(ex))
        self.assertEqual(['recover'], self.calls)
        self.assert_runs_stateless_on(HOST1, instance, other_host_up=False)
        self.assert_answers(HOST1, instance)
        self.report_timings()

    def test_destination_without_the_firmware_refuses(self):
        # compute2's libvirt lacks the firmware its nova-compute sees (a
        # libvirt container without the firmware package beside a
        # nova-compute container that has it): its libvirt offers no
        # loader, so it does not support stateless firmware and its check
        # refuses the instance before anything moves.
        instance = self.boot()

        ex = self.assertRaises(exception.MigrationPreCheckError,
                               self.check, instance, HOST2)

        self.assertIn(instance.uuid, str(ex))
        self.assertIn('loader images libvirt offers (none)', str(ex))
        self.assertFalse(
            self.drivers[HOST2].capabilities['supports_stateless_firmware'])
        self.assertEqual([], self.calls)
        self.assert_runs_stateless_on(HOST1, instance)
        self.report_timings()

    def test_stateful_guest_keeps_its_store(self):
        instance = self.create(STATEFUL_IMAGE)
        self.drivers[HOST1].spawn(None, instance, instance.image_meta)
        self.drivers[HOST1].power_off(instance)
        [source_store] = self.nvram(HOST1, instance)
        base.write_nvram_marker(source_store)
        os.unlink(self.drivers[HOST1].console_log_path(instance))
        start = time.monotonic()
        self.drivers[HOST1].power_on(None, instance)
        self.wait_for_console(instance, SHELL_PROMPT, FIRMWARE_TIMEOUT)
        self.timings['boot to the shell'] = time.monotonic() - start

        self.migrate(instance, HOST2, self.check(instance, HOST2))

        self.assertEqual(['post'], self.calls)
        [store] = self.nvram(HOST2, instance)
        # The variables travel in the migration stream, with the guest's
        # memory: QEMU on compute2 wrote them to a store of its own.
        self.assertTrue(base.has_nvram_marker(store))
        drives = boot_evidence.pflash_drives(
            self.qemu_command_line(HOST2, instance))
        self.assertEqual([(0, True), (1, False)],
                         [(d.unit, d.read_only) for d in drives])
        self.assertEqual(store, self.second.host_path(drives[1].filename))
        self.assertNotIn(instance.name,
                         self.drivers[HOST1].list_instances())
        # libvirt undefines the source domain and leaves its store, which
        # no domain uses any more. The driver leaves it too: from the
        # source it cannot tell that file from the destination's, which
        # it is when the NVRAM directory is on shared storage.
        [left] = self.nvram(HOST1, instance)
        self.assertTrue(base.has_nvram_marker(left))
        self.assert_answers(HOST2, instance)
        self.report_timings()
