"""What ``nova-firmware`` prints: reports, progress lines and JSON.

The commands fill in plain data (``Stage``, ``BootReport`` and
dictionaries of fields); everything about how it looks on a terminal or as
JSON lives here, so the same report is printed both ways and the rendering
can be tested without libvirt or placement.
"""

import dataclasses
import errno
import json
import os
import sys
import time
import typing as ty
import unicodedata

#: Width of the label column of a text report.
LABEL_WIDTH = 20
#: Indentation of the lines that belong to a stage's progress line.
DETAIL_INDENT = ' ' * 6

STATUS_OK = 'ok'
STATUS_FAILED = 'failed'
STATUS_SKIPPED = 'skipped'

#: A report field: one line of text, several lines (a list), or nested
#: fields (a dict).
FieldValue = ty.Union[str, int, float, bool, None, list, dict]

#: Unicode categories escaped in text output: controls (a newline, an
#: escape sequence), format characters (bidirectional overrides) and line
#: and paragraph separators. Any of them in a value the user or a service
#: supplied could forge or hide lines of the report.
_UNPRINTABLE_CATEGORIES = frozenset(('Cc', 'Cf', 'Zl', 'Zp'))


def printable(text: str) -> str:
    """``text`` with its control characters escaped (``\\n``, ``\\x1b``).

    Applied to everything the text report prints on one line, so that a
    value can never start a line of its own.
    """
    if all(unicodedata.category(ch) not in _UNPRINTABLE_CATEGORIES
           for ch in text):
        return text
    return ''.join(
        ch.encode('unicode_escape').decode('ascii')
        if unicodedata.category(ch) in _UNPRINTABLE_CATEGORIES else ch
        for ch in text)


class Inline(dict):
    """A structured value (a flavor, an inventory) shown on one line.

    JSON gets the object; the text report gets ``text`` or, by default,
    ``key=value`` items separated by commas, as such values are given on
    the command line.
    """

    def __init__(self, items: ty.Mapping[str, ty.Any],
                 text: str | None = None) -> None:
        super().__init__(items)
        self.text = text

    def __str__(self) -> str:
        if self.text is not None:
            return self.text
        return ','.join('%s=%s' % (k, format_value(v))
                        for k, v in self.items())


@dataclasses.dataclass
class Stage:
    """One step of ``nova-firmware boot``.

    ``action`` says what the step does and is known before it runs (it is
    printed first, so a slow step shows what it is waiting for);
    ``result`` is its one-line outcome and ``details`` the evidence it
    gathered.
    """

    name: str
    action: str
    status: str | None = None
    seconds: float | None = None
    result: str = ''
    details: dict[str, FieldValue] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class BootReport:
    """Everything ``nova-firmware boot`` found out, stage by stage."""

    request: dict[str, FieldValue]
    stages: list[Stage] = dataclasses.field(default_factory=list)
    expected: str | None = None
    proved: bool = False
    problems: list[str] = dataclasses.field(default_factory=list)
    error: str | None = None
    exit_code: int | None = None
    seconds: float | None = None
    #: What the request asks that has no effect (see ``Output.warning``).
    warnings: list[str] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            'command': 'boot',
            'request': self.request,
            'stages': [stage.to_dict() for stage in self.stages],
            'expected': self.expected,
            'proved': self.proved,
            'problems': self.problems,
            'error': self.error,
            'exit_code': self.exit_code,
            'seconds': _round(self.seconds),
            'warnings': self.warnings,
        }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def to_json(document: ty.Mapping[str, ty.Any]) -> str:
    """The JSON text of a report, stable for diffs and scripts."""
    return json.dumps(document, indent=2, sort_keys=True)


# --- text --------------------------------------------------------------------

def format_value(value: FieldValue) -> str:
    """One value on one line, its control characters escaped."""
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return printable(str(value))


def label(key: str) -> str:
    """The text label of a report key: ``host_arch`` reads ``host arch``.

    Reports are keyed for JSON; the text form spells the same keys.
    """
    return key.replace('_', ' ')


def _item(item: FieldValue) -> str:
    # A record in a list (a pflash drive, an NVRAM file) on one line.
    if isinstance(item, dict):
        return ', '.join('%s: %s' % (label(k), format_value(v))
                         for k, v in item.items())
    return format_value(item)


def _value_lines(value: FieldValue, indent: str) -> list[str]:
    """The lines a multi-line value takes below its label.

    A dict is data (image properties, extra specs), not more labels: its
    items read ``KEY=VALUE``, as they are given on the command line.
    """
    indent += '  '
    if isinstance(value, dict):
        return [indent + '%s=%s' % (printable(str(k)), format_value(v))
                for k, v in value.items()]
    if isinstance(value, list):
        return [indent + '- ' + _item(item) for item in value]
    return [indent + printable(line) for line in str(value).splitlines()]


def _is_one_line(value: FieldValue) -> bool:
    if isinstance(value, Inline):
        return True
    return not isinstance(value, (dict, list)) and '\n' not in str(value)


def render_fields(fields: ty.Mapping[str, FieldValue],
                  indent: str = '') -> list[str]:
    """Render ``label: value`` lines, labels aligned.

    Lists become one ``- item`` line each and multi-line text (XML) is
    indented below its label, so that pasted output stays readable. An
    empty list or dict reads ``none``.
    """
    lines = []
    for key, value in fields.items():
        head = '%s%-*s ' % (indent, LABEL_WIDTH - 1, label(key) + ':')
        if isinstance(value, (dict, list)) and not value:
            lines.append(head + 'none')
        elif _is_one_line(value):
            lines.append(head + format_value(value))
        else:
            lines.append(head.rstrip())
            lines.extend(_value_lines(value, indent))
    return lines


def stage_head(stage: Stage, number: int, total: int) -> str:
    """``[1/8] placement: embedded (sqlite://) ...``, printed first."""
    return '[%d/%d] %s: %s ...' % (number, total, stage.name,
                                   printable(stage.action))


def stage_tail(stage: Stage) -> str:
    """``ok 0.12s (result)``, printed when the stage ends."""
    text = stage.status or STATUS_FAILED
    if stage.seconds is not None:
        text += ' %.2fs' % stage.seconds
    if stage.result:
        text += ' (%s)' % printable(stage.result)
    return text


def stage_details(stage: Stage) -> list[str]:
    return render_fields(stage.details, indent=DETAIL_INDENT)


def boot_summary(report: BootReport) -> list[str]:
    """The closing lines of a boot: the verdict and why.

    None after an error: the failed stage shows it, and standard error
    gets it.
    """
    if report.error is not None:
        return []
    if report.proved:
        lines = ['PASS: the guest booted %s firmware, as requested '
                 '(%.1fs in all).' % (report.expected, report.seconds or 0)]
    else:
        lines = ['FAIL: the boot does not show %s firmware:' %
                 report.expected]
    lines += ['  - %s' % printable(problem) for problem in report.problems]
    return lines


class Progress:
    """Print each stage of a boot as it runs; silent when disabled.

    ``names`` are the stages of the flow, in order.

    The head of the line is printed and flushed before the stage runs, the
    outcome when it ends: an operator watching a slow stage (the first
    QEMU probe, the firmware wait) sees which one it is.
    """

    def __init__(self, stream: ty.TextIO, names: ty.Sequence[str],
                 enabled: bool = True) -> None:
        self._stream = stream
        self._names = list(names)
        self._enabled = enabled

    def _write(self, text: str) -> None:
        if self._enabled:
            self._stream.write(text)
            self._stream.flush()

    def start(self, stage: Stage) -> None:
        # Numbered by its place in the flow, so stages skipped after a
        # failure show as gaps.
        number = self._names.index(stage.name) + 1
        self._write(stage_head(stage, number, len(self._names)) + ' ')

    def finish(self, stage: Stage) -> None:
        lines = [stage_tail(stage)] + stage_details(stage)
        self._write('\n'.join(lines) + '\n')


class StageTimer:
    """Time a stage and record how it ended; use as a context manager.

    An exception marks the stage failed (with the error as its result
    unless the stage already set one) and propagates; a stage that set its
    own status (``failed`` for a firmware that never showed up) keeps it.
    """

    def __init__(self, stage: Stage, progress: Progress,
                 describe_error: ty.Callable[[BaseException], str]) -> None:
        self.stage = stage
        self._progress = progress
        self._describe_error = describe_error
        self._start = 0.0

    def __enter__(self) -> Stage:
        self._start = time.monotonic()
        try:
            self._progress.start(self.stage)
        except BaseException as exc:
            # A signal can be handled just after the head is printed and
            # before the block runs, where the with statement would not
            # call __exit__: end the line all the same.
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stage.seconds = round(time.monotonic() - self._start, 3)
        if exc is not None:
            self.stage.status = STATUS_FAILED
            self.stage.result = self.stage.result or self._describe_error(exc)
        elif self.stage.status is None:
            self.stage.status = STATUS_OK
        self._progress.finish(self.stage)


class _GuardedStream:
    """A standard stream that a closed pipe cannot break.

    Once a reader has gone away (``nova-firmware boot | head``), writes
    are dropped instead of raising ``BrokenPipeError``: what the command
    does, a boot's cleanup above all, must not depend on anyone reading
    its output. The stream is looked up at each write, so a caller (a
    test) that replaced ``sys.stdout`` gets the output.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self.closed_by_reader = False

    def _stream(self) -> ty.TextIO:
        return getattr(sys, self._name)

    def write(self, text: str) -> None:
        if self.closed_by_reader:
            return
        try:
            stream = self._stream()
            stream.write(text)
            stream.flush()
        except OSError as exc:
            if not isinstance(exc, BrokenPipeError) and (
                    exc.errno not in (errno.EPIPE, errno.EINVAL)):
                raise
            self._reader_gone()

    def flush(self) -> None:
        self.write('')

    def _reader_gone(self) -> None:
        self.closed_by_reader = True
        # Point the descriptor at /dev/null, or the interpreter's final
        # flush of what is still buffered would fail once more at exit.
        try:
            fileno = self._stream().fileno()
        except (AttributeError, OSError, ValueError):
            return
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, fileno)
        finally:
            os.close(devnull)


class Output:
    """Where a command prints: the report on stdout, errors on stderr.

    Warnings are printed as they come and kept for the JSON document.
    """

    def __init__(self, prog: str, command: str | None,
                 as_json: bool) -> None:
        self.prog = prog
        self.command = command
        self.as_json = as_json
        self.warnings: list[str] = []
        self.stdout = _GuardedStream('stdout')
        self.stderr = _GuardedStream('stderr')

    def _prefix(self) -> str:
        if self.command:
            return '%s %s' % (self.prog, self.command)
        return self.prog

    def lines(self, lines: ty.Iterable[str]) -> None:
        for line in lines:
            self.stdout.write(line + '\n')

    def json(self, document: ty.Mapping[str, ty.Any]) -> None:
        self.stdout.write(to_json(document) + '\n')

    def error(self, message: str) -> None:
        self.stderr.write('%s: error: %s\n' % (self._prefix(),
                                                printable(message)))

    def warning(self, message: str) -> None:
        self.warnings.append(message)
        self.stderr.write('%s: warning: %s\n' % (self._prefix(),
                                                  printable(message)))

    def failure(self, message: str, exit_code: int) -> None:
        """Say that the command could not run, as text or JSON.

        The error line goes to stderr either way; with ``--json`` the
        document on stdout says it too, so that a script reading it gets
        a document for every outcome.
        """
        if self.as_json:
            self.json({'command': self.command, 'error': message,
                       'exit_code': exit_code, 'warnings': self.warnings})
        self.error(message)
