"""Tests of the feature support matrix, doc/source/user/support-matrix.ini.

The matrix says, for each operation and hypervisor, what the code does and
names the tests that back it. These tests keep those names true: a test
renamed or removed fails here rather than leaving the documentation
pointing at nothing. They read the file as sphinx-feature-classification
does (``configparser.ConfigParser``).
"""

import configparser
import importlib
import os
import re

from nova import test

MATRIX = os.path.join(
    os.path.dirname(__file__), os.pardir, os.pardir, os.pardir,
    'doc', 'source', 'user', 'support-matrix.ini')

#: Upstream Nova's row for the feature.
UPSTREAM_OPERATION = 'operation.boot-stateless-firmware'
STATUSES = ('complete', 'partial', 'missing', 'unknown')
NOT_TESTED = 'Not tested.'
TEST_ID = re.compile(r'\bnova\.tests\.[\w.]*\w')


def load_matrix() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    with open(MATRIX, encoding='utf-8') as f:
        parser.read_file(f)
    return parser


def resolve(test_id: str) -> object:
    """The module, class or method a dotted test id names."""
    parts = test_id.split('.')
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(test_id)


class SupportMatrixTestCase(test.NoDBTestCase):

    def setUp(self):
        super().setUp()
        self.matrix = load_matrix()
        self.drivers = [s[len('driver.'):] for s in self.matrix.sections()
                        if s.startswith('driver.')]
        self.operations = [s for s in self.matrix.sections()
                           if s.startswith('operation.')]

    def cells(self):
        for operation in self.operations:
            for driver in self.drivers:
                yield operation, driver, self.matrix[operation]

    def test_upstream_operation_key(self):
        self.assertEqual(UPSTREAM_OPERATION, self.operations[0])

    def test_every_driver_has_a_status_and_notes(self):
        for operation, driver, section in self.cells():
            where = '[%s] %s' % (operation, driver)
            self.assertIn(section.get('driver.' + driver), STATUSES, where)
            self.assertTrue(section.get('driver-notes.' + driver), where)

    def test_notes_name_tests_or_say_there_are_none(self):
        for operation, driver, section in self.cells():
            status = section['driver.' + driver]
            notes = section['driver-notes.' + driver]
            where = '[%s] %s: %s' % (operation, driver, notes)
            named = TEST_ID.findall(notes)
            if status in ('complete', 'partial'):
                self.assertTrue(named, where)
            else:
                self.assertTrue(named or NOT_TESTED in notes, where)
            self.assertFalse(named and NOT_TESTED in notes, where)

    def test_named_tests_exist(self):
        missing = []
        for operation, driver, section in self.cells():
            for test_id in TEST_ID.findall(
                    section['driver-notes.' + driver]):
                try:
                    resolve(test_id)
                except (ImportError, AttributeError):
                    missing.append('[%s] %s: %s' % (operation, driver,
                                                    test_id))
        self.assertEqual([], missing)

    def test_resolve_refuses_what_does_not_exist(self):
        self.assertRaises(AttributeError, resolve,
                          'nova.tests.unit.test_support_matrix.'
                          'SupportMatrixTestCase.test_no_such_test')
        self.assertIs(SupportMatrixTestCase, resolve(
            'nova.tests.unit.test_support_matrix.SupportMatrixTestCase'))
