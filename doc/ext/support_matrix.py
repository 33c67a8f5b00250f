# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.

"""Render a feature support matrix ini file as tables.

Usage, in a document next to the ini file::

    .. support_matrix:: support-matrix.ini

The ini file has one ``[driver.KEY]`` section per driver (``title``, an
optional ``link``) and one ``[operation.KEY]`` section per feature:

``title``
    What the feature is, in a few words.
``status``
    ``mandatory``, ``optional``, ``choice(GROUP)`` or ``conditional(COND)``:
    whether drivers must implement it.
``notes``
    reStructuredText explaining the feature.
``cli``
    Commands that use the feature, separated by ``;``.
``driver.KEY``
    How far driver KEY implements it: ``complete``, ``partial``, ``missing``
    or ``unknown``. Every driver must be listed, so that a driver added to
    the file cannot silently show up as blank.
``driver-notes.KEY``
    reStructuredText on the caveats, required for ``partial``.

A mistake in the file (an unknown key, status or driver, a missing driver
entry) fails the build with an error naming the file and section, rather
than rendering a matrix that says less than its source.
"""

import configparser
import dataclasses
import re

from docutils import nodes
from docutils import statemachine
from sphinx.util import docutils as sphinx_docutils

SECTION_DRIVER = 'driver.'
SECTION_OPERATION = 'operation.'
KEY_DRIVER = 'driver.'
KEY_DRIVER_NOTES = 'driver-notes.'

IMPLEMENTATION_STATUSES = ('complete', 'partial', 'missing', 'unknown')
OPERATION_STATUS_RE = re.compile(
    r'^(mandatory|optional|choice\([\w-]+\)|conditional\([\w-]+\))$')
OPERATION_KEYS = ('title', 'status', 'notes', 'cli')
DRIVER_KEYS = ('title', 'link')


class MatrixError(ValueError):
    """The ini file does not describe a valid matrix."""


@dataclasses.dataclass
class Driver:
    key: str
    title: str
    link: str | None


@dataclasses.dataclass
class Implementation:
    status: str
    notes: str | None


@dataclasses.dataclass
class Operation:
    key: str
    title: str
    status: str
    notes: str | None
    cli: list[str]
    implementations: dict[str, Implementation]


@dataclasses.dataclass
class Matrix:
    drivers: list[Driver]
    operations: list[Operation]


def _check_keys(section: str, keys, allowed, prefixes=()) -> None:
    for key in keys:
        if key in allowed or key.startswith(tuple(prefixes)):
            continue
        raise MatrixError('[%s]: unknown key %r (expected one of %s%s)' % (
            section, key, ', '.join(allowed),
            ''.join(', %sKEY' % p for p in prefixes)))


def _parse_driver(section: str, values) -> Driver:
    _check_keys(section, values, DRIVER_KEYS)
    if not values.get('title'):
        raise MatrixError('[%s]: a driver needs a title' % section)
    return Driver(key=section[len(SECTION_DRIVER):], title=values['title'],
                  link=values.get('link') or None)


def _parse_operation(section: str, values, drivers: list[Driver]
                     ) -> Operation:
    _check_keys(section, values, OPERATION_KEYS,
                prefixes=(KEY_DRIVER, KEY_DRIVER_NOTES))
    for key in ('title', 'status'):
        if not values.get(key):
            raise MatrixError('[%s]: missing %r' % (section, key))
    if not OPERATION_STATUS_RE.match(values['status']):
        raise MatrixError(
            '[%s]: status %r is not mandatory, optional, choice(GROUP) or '
            'conditional(COND)' % (section, values['status']))

    known = {d.key for d in drivers}
    listed = {k[len(KEY_DRIVER):] for k in values if k.startswith(KEY_DRIVER)}
    noted = {k[len(KEY_DRIVER_NOTES):] for k in values
             if k.startswith(KEY_DRIVER_NOTES)}
    unknown = sorted((listed | noted) - known)
    if unknown:
        raise MatrixError('[%s]: unknown driver(s) %s (drivers: %s)' % (
            section, ', '.join(unknown), ', '.join(sorted(known))))
    missing = sorted(known - listed)
    if missing:
        raise MatrixError('[%s]: no %sKEY entry for driver(s) %s' % (
            section, KEY_DRIVER, ', '.join(missing)))

    implementations = {}
    for driver in drivers:
        status = values[KEY_DRIVER + driver.key]
        notes = values.get(KEY_DRIVER_NOTES + driver.key) or None
        if status not in IMPLEMENTATION_STATUSES:
            raise MatrixError('[%s]: %s%s=%s is not one of %s' % (
                section, KEY_DRIVER, driver.key, status,
                ', '.join(IMPLEMENTATION_STATUSES)))
        if status == 'partial' and not notes:
            raise MatrixError(
                '[%s]: %s%s is partial but has no %s%s explaining the '
                'caveats' % (section, KEY_DRIVER, driver.key,
                             KEY_DRIVER_NOTES, driver.key))
        implementations[driver.key] = Implementation(status, notes)

    cli = [c.strip() for c in (values.get('cli') or '').split(';')
           if c.strip()]
    return Operation(key=section[len(SECTION_OPERATION):],
                     title=values['title'], status=values['status'],
                     notes=values.get('notes') or None, cli=cli,
                     implementations=implementations)


def load_matrix(path: str) -> Matrix:
    """Read and check a support matrix ini file.

    :raises MatrixError: naming the section at fault.
    """
    parser = configparser.RawConfigParser()
    # Driver keys are case sensitive names, not options to fold.
    parser.optionxform = str
    try:
        with open(path, encoding='utf-8') as f:
            parser.read_file(f)
    except (OSError, configparser.Error) as e:
        raise MatrixError(str(e)) from e

    drivers = [_parse_driver(s, parser[s]) for s in parser.sections()
               if s.startswith(SECTION_DRIVER)]
    if not drivers:
        raise MatrixError('no [%sKEY] section' % SECTION_DRIVER)
    operations = []
    for section in parser.sections():
        if section.startswith(SECTION_DRIVER):
            continue
        if not section.startswith(SECTION_OPERATION):
            raise MatrixError('[%s]: sections are %sKEY or %sKEY' % (
                section, SECTION_DRIVER, SECTION_OPERATION))
        operations.append(_parse_operation(section, parser[section],
                                           drivers))
    return Matrix(drivers=drivers, operations=operations)


def _status_node(status: str) -> nodes.inline:
    return nodes.inline(status, status, classes=['sm-' + status])


class SupportMatrixDirective(sphinx_docutils.SphinxDirective):
    """``.. support_matrix:: FILE``: a summary table and per-feature
    details, each table cell linking to the details of its feature.
    """

    required_arguments = 1
    has_content = False

    def run(self) -> list[nodes.Node]:
        rel_path, abs_path = self.env.relfn2path(self.arguments[0])
        self.env.note_dependency(rel_path)
        try:
            matrix = load_matrix(abs_path)
        except MatrixError as e:
            raise self.error('support_matrix: %s: %s' % (rel_path, e))
        self._source = abs_path
        self._titles = {d.key: d.title for d in matrix.drivers}
        #: (operation key, driver key) -> id of the driver's notes.
        self._notes_ids: dict[tuple[str, str], str] = {}

        details = [self._operation_section(op) for op in matrix.operations]
        return [self._summary_table(matrix, details),
                nodes.rubric(text='Drivers'),
                self._drivers_list(matrix)] + details

    # --- the summary ------------------------------------------------------

    @staticmethod
    def _row(cells: list[nodes.paragraph]) -> nodes.row:
        row = nodes.row()
        for cell in cells:
            row += nodes.entry('', cell)
        return row

    def _summary_table(self, matrix: Matrix,
                       details: list[nodes.section]) -> nodes.table:
        table = nodes.table(classes=['support-matrix'])
        table += nodes.title(text='Summary')
        # Whether a feature is mandatory is in its details: the summary
        # keeps its width for the drivers.
        group = nodes.tgroup(cols=1 + len(matrix.drivers))
        table += group
        group += nodes.colspec(colwidth=30)
        for _driver in matrix.drivers:
            group += nodes.colspec(colwidth=12)

        head = nodes.thead()
        head += self._row(
            [nodes.paragraph(text='Feature')] +
            [nodes.paragraph(text=d.title) for d in matrix.drivers])
        group += head

        body = nodes.tbody()
        for op, section in zip(matrix.operations, details):
            ref_id = section['ids'][0]
            feature = nodes.paragraph()
            feature += nodes.reference('', op.title, refid=ref_id,
                                       internal=True)
            cells = [feature]
            for driver in matrix.drivers:
                impl = op.implementations[driver.key]
                cell = nodes.paragraph()
                cell += _status_node(impl.status)
                if impl.notes:
                    cell += nodes.Text(' ')
                    cell += nodes.reference(
                        '', '(notes)', internal=True,
                        refid=self._notes_ids[(op.key, driver.key)])
                cells.append(cell)
            body += self._row(cells)
        group += body
        return table

    def _drivers_list(self, matrix: Matrix) -> nodes.bullet_list:
        """The drivers the columns stand for, with their links."""
        drivers = nodes.bullet_list()
        for driver in matrix.drivers:
            para = nodes.paragraph()
            if driver.link:
                para += nodes.reference('', driver.title,
                                        refuri=driver.link)
            else:
                para += nodes.strong(text=driver.title)
            para += nodes.Text(' (%s)' % driver.key)
            drivers += nodes.list_item('', para)
        return drivers

    # --- the details --------------------------------------------------------

    def _rst(self, text: str) -> list[nodes.Node]:
        """Parse a notes value; errors point at the ini file."""
        lines = statemachine.StringList(
            text.splitlines(), source=self._source)
        return self.parse_text_to_nodes(lines)

    def _operation_section(self, op: Operation) -> nodes.section:
        section = nodes.section()
        section['names'].append('operation-' + op.key)
        self.state.document.note_implicit_target(section, section)
        section += nodes.title(text=op.title)

        section += self._labelled('Status', op.status)
        if op.cli:
            section += self._labelled('CLI', '')
            for command in op.cli:
                block = nodes.literal_block(command, command)
                block['language'] = 'none'
                section += block
        if op.notes:
            section.extend(self._rst(op.notes))

        impls = nodes.definition_list()
        for driver_key, impl in op.implementations.items():
            item = nodes.definition_list_item()
            term = nodes.term()
            if impl.notes:
                term['names'].append('%s-%s' % (op.key, driver_key))
                self.state.document.note_implicit_target(term, term)
                self._notes_ids[(op.key, driver_key)] = term['ids'][0]
            term += nodes.Text(self._titles[driver_key] + ': ')
            term += _status_node(impl.status)
            item += term
            definition = nodes.definition()
            if impl.notes:
                definition.extend(self._rst(impl.notes))
            item += definition
            impls += item
        section += impls
        return section

    @staticmethod
    def _labelled(label: str, text: str) -> nodes.paragraph:
        para = nodes.paragraph()
        para += nodes.strong(text=label + ':')
        if text:
            para += nodes.Text(' ' + text)
        return para


def setup(app):
    app.add_directive('support_matrix', SupportMatrixDirective)
    return {
        'version': '1.0',
        'parallel_read_safe': True,
        'parallel_write_safe': True,
    }
