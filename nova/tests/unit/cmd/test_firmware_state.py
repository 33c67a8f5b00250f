"""Tests of ``nova-firmware``'s state directory, on real directories.

Ownership is tested by handing directories to ``nobody``, which needs
root; those tests are skipped, saying so, for another user.
"""

import fcntl
import grp
import os
import pwd
import stat

import fixtures

from nova.cmd import firmware_common as common
from nova.cmd import firmware_state as state
from nova import test


def _nobody() -> int:
    return pwd.getpwnam('nobody').pw_uid


class PrepareStateDirTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.parent = self.useFixture(fixtures.TempDir()).path
        self.path = os.path.join(self.parent, 'state')
        # As nova-firmware runs.
        self.addCleanup(os.umask, os.umask(state.UMASK))

    def refused(self, path=None) -> str:
        ex = self.assertRaises(common.CommandError, state.prepare_state_dir,
                               path or self.path)
        return str(ex)

    def need_root(self):
        if os.geteuid() != 0:
            self.skipTest('handing a directory to another user needs root')

    def test_created_private(self):
        self.assertEqual(self.path, state.prepare_state_dir(self.path))
        self.assertEqual(0o700, stat.S_IMODE(os.stat(self.path).st_mode))

    def test_a_file_is_not_a_state_directory(self):
        open(self.path, 'w').close()
        self.assertEqual('--state-dir %s exists and is not a directory.' %
                         self.path, self.refused())

    def test_someone_elses_directory_is_refused(self):
        self.need_root()
        os.mkdir(self.path)
        os.chown(self.path, _nobody(), -1)
        self.assertIn('state directory %s belongs to nobody, not to root'
                      % self.path, self.refused())

    def test_a_directory_others_can_write_to_is_refused(self):
        os.mkdir(self.path)
        group = grp.getgrgid(os.stat(self.path).st_gid).gr_name
        for mode, who in ((0o770, 'group %s' % group), (0o757, 'others')):
            os.chmod(self.path, mode)
            self.assertIn('is writable by %s (mode %04o)' % (who, mode),
                          self.refused())

    def test_what_libvirt_reads_inside_is_checked_too(self):
        self.need_root()
        etc = os.path.join(self.path, 'libvirt', 'etc', 'qemu')
        os.makedirs(os.path.join(etc, 'autostart'))
        planted = os.path.join(etc, 'planted.xml')
        open(planted, 'w').close()
        # libvirt's own autostart links are fine: the definitions count.
        os.symlink('../planted.xml',
                   os.path.join(etc, 'autostart', 'planted.xml'))
        self.assertEqual(self.path, state.prepare_state_dir(self.path))
        os.chown(planted, _nobody(), -1)
        self.assertIn('libvirt configuration %s belongs to nobody' % planted,
                      self.refused())

    def test_a_link_instead_of_a_directory_inside_is_refused(self):
        os.mkdir(self.path)
        os.symlink(self.parent, os.path.join(self.path, 'instances'))
        self.assertIn('instances in the state directory is not a directory',
                      self.refused())


class QemuIdentityTestCase(test.NoDBTestCase):

    def test_dac_label(self):
        self.assertEqual(state.QemuIdentity(64055, 64055),
                         state.parse_dac_label('+64055:+64055'))
        self.assertIsNone(state.parse_dac_label(None))
        self.assertIsNone(state.parse_dac_label('garbage'))

    def test_only_another_user_needs_anything(self):
        me = '+%d:+%d' % (os.geteuid(), os.getegid())
        self.assertIsNone(state.other_qemu_identity(me))
        self.assertEqual(state.QemuIdentity(64055, 107),
                         state.other_qemu_identity('+64055:+107'))

    def test_a_parent_qemu_cannot_pass_is_named(self):
        if os.geteuid() != 0:
            self.skipTest('needs directories of root, 0700')
        parent = self.useFixture(fixtures.TempDir()).path
        os.chmod(parent, 0o700)
        nobody = state.QemuIdentity(_nobody(), _nobody())
        state_dir = os.path.join(parent, 'state')

        ex = self.assertRaises(common.CommandError,
                               state.check_qemu_can_reach, state_dir,
                               nobody)

        self.assertIn('which cannot reach the state directory %s: %s (mode '
                      '0700, owner root, group root) does not let it '
                      'through' % (state_dir, parent), str(ex))
        os.chmod(parent, 0o711)
        state.check_qemu_can_reach(state_dir, nobody)

    def test_directories_opened_to_qemus_group_only(self):
        if os.geteuid() != 0:
            self.skipTest('giving a directory to a group needs root')
        path = self.useFixture(fixtures.TempDir()).path
        state.open_to_qemu([path], state.QemuIdentity(_nobody(), 65534))
        st = os.stat(path)
        self.assertEqual((0o710, 65534), (stat.S_IMODE(st.st_mode),
                                          st.st_gid))


class RunRecordsTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.state_dir = self.useFixture(fixtures.TempDir()).path
        self.records = state.RunRecords(self.state_dir)

    def record(self, uuid='5c4f0d54-8cb5-4f1d-9fd0-7d1e0d7b7a01'):
        return state.RunRecord(
            instance_uuid=uuid, domain='instance-00000001',
            uri='qemu:///system',
            instance_dir=os.path.join(self.state_dir, 'instances', uuid),
            placement=None)

    def test_a_running_run_is_left_alone(self):
        record = self.record()
        self.records.begin(record)
        # Another process (another open file) sees it locked.
        self.assertEqual([], state.RunRecords(self.state_dir).leftovers())
        self.records.end(record, remove=True)
        self.assertEqual([], os.listdir(self.records.directory))

    def test_a_run_that_ended_without_cleaning_up(self):
        record = self.record()
        self.records.begin(record)
        self.records.end(record, remove=False)

        found = state.RunRecords(self.state_dir).leftovers()

        self.assertEqual([record], found)
        path = os.path.join(self.records.directory,
                            record.instance_uuid + '.json')
        self.assertEqual(0o600, stat.S_IMODE(os.stat(path).st_mode))
        # The finder holds it: a third one does not get it.
        with open(path) as f:
            self.assertRaises(BlockingIOError, fcntl.flock, f,
                              fcntl.LOCK_EX | fcntl.LOCK_NB)

    def test_only_directories_under_instances_are_removed(self):
        record = self.record()
        os.makedirs(record.instance_dir)
        self.assertTrue(self.records.remove_instance_dir(record))
        self.assertFalse(os.path.exists(record.instance_dir))
        elsewhere = self.useFixture(fixtures.TempDir()).path
        record.instance_dir = elsewhere
        self.assertFalse(self.records.remove_instance_dir(record))
        self.assertTrue(os.path.isdir(elsewhere))
