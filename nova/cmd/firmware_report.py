"""What ``nova-firmware`` prints: reports, progress lines and JSON.

The commands fill in plain data (``Stage``, ``BootReport`` and
dictionaries of fields); everything about how it looks on a terminal or as
JSON lives here, so the same report is printed both ways and the rendering
can be tested without libvirt or placement.
"""

import dataclasses
import json
import sys
import time
import typing as ty

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
        }


def _round(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


def to_json(document: ty.Mapping[str, ty.Any]) -> str:
    """The JSON text of a report, stable for diffs and scripts."""
    return json.dumps(document, indent=2, sort_keys=True)


# --- text --------------------------------------------------------------------

def format_value(value: FieldValue) -> str:
    if value is None:
        return '-'
    if isinstance(value, bool):
        return 'yes' if value else 'no'
    return str(value)


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
        return [indent + '%s=%s' % (k, format_value(v))
                for k, v in value.items()]
    if isinstance(value, list):
        return [indent + '- ' + _item(item) for item in value]
    return [indent + line for line in str(value).splitlines()]


def _is_one_line(value: FieldValue) -> bool:
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
    return '[%d/%d] %s: %s ...' % (number, total, stage.name, stage.action)


def stage_tail(stage: Stage) -> str:
    """``ok 0.12s (result)``, printed when the stage ends."""
    text = stage.status or STATUS_FAILED
    if stage.seconds is not None:
        text += ' %.2fs' % stage.seconds
    if stage.result:
        text += ' (%s)' % stage.result
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
    lines += ['  - %s' % problem for problem in report.problems]
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
        self._progress.start(self.stage)
        self._start = time.monotonic()
        return self.stage

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stage.seconds = round(time.monotonic() - self._start, 3)
        if exc is not None:
            self.stage.status = STATUS_FAILED
            self.stage.result = self.stage.result or self._describe_error(exc)
        elif self.stage.status is None:
            self.stage.status = STATUS_OK
        self._progress.finish(self.stage)


class Output:
    """Where a command prints: the report on stdout, errors on stderr.

    The streams are looked up when printing, so a caller (a test) that
    replaced ``sys.stdout`` gets the output.
    """

    def __init__(self, prog: str, command: str, as_json: bool) -> None:
        self.prog = prog
        self.command = command
        self.as_json = as_json

    @property
    def stdout(self) -> ty.TextIO:
        return sys.stdout

    def lines(self, lines: ty.Iterable[str]) -> None:
        for line in lines:
            print(line, file=sys.stdout, flush=True)

    def json(self, document: ty.Mapping[str, ty.Any]) -> None:
        print(to_json(document), file=sys.stdout, flush=True)

    def error(self, message: str) -> None:
        print('%s %s: error: %s' % (self.prog, self.command, message),
              file=sys.stderr, flush=True)

    def warning(self, message: str) -> None:
        print('%s %s: warning: %s' % (self.prog, self.command, message),
              file=sys.stderr, flush=True)
