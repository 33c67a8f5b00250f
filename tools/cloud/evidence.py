"""What a cloud run saw, in a form a person reads: progress and a table.

Each check of the scenario is a :class:`Step`: what it is, what it
expects, what was seen, and whether that passed. The runner prints a
line as each ends, with the time since the run started, and a table of
all of them at the end. The helpers below read what the checks look at
(a libvirt domain's XML, the listening sockets) and are pure, so that
they are tested without a cloud.
"""

import dataclasses
import re
import sys
import textwrap
import time
import typing as ty
import xml.etree.ElementTree as ET

PASS = 'PASS'
FAIL = 'FAIL'


@dataclasses.dataclass
class Step:
    name: str
    expect: str
    seen: str = ''
    ok: bool | None = None
    seconds: float = 0.0

    @property
    def verdict(self) -> str:
        return PASS if self.ok else FAIL


class StepError(Exception):
    """A check saw something other than what it expects."""


class Evidence:
    """The steps of one run, printed as they end."""

    def __init__(self, out: ty.TextIO | None = None,
                 clock: ty.Callable[[], float] = time.monotonic) -> None:
        self.steps: list[Step] = []
        self.out = out or sys.stdout
        self.clock = clock
        self.started = clock()

    def say(self, text: str) -> None:
        self.out.write('[%6.1fs] %s\n' % (self.clock() - self.started, text))
        self.out.flush()

    def record(self, name: str, expect: str, ok: bool, seen: str,
               seconds: float = 0.0) -> Step:
        step = Step(name, expect, seen, ok, seconds)
        self.steps.append(step)
        self.say('%s: %s (%.1f s) %s' % (
            step.verdict, name, seconds, one_line(seen, 100)))
        return step

    def check(self, name: str, expect: str,
              func: ty.Callable[[], str]) -> Step:
        """Run ``func``: its return value is what was seen, and it
        passed; :class:`StepError` (or any error) is a failure, its text
        what was seen.
        """
        start = self.clock()
        self.say('... %s' % name)
        try:
            seen = func()
            ok = True
        except StepError as ex:
            seen, ok = str(ex), False
        except Exception as ex:  # a failed command is a failed step
            seen, ok = '%s: %s' % (type(ex).__name__, ex), False
        return self.record(name, expect, ok, seen, self.clock() - start)

    @property
    def failed(self) -> list[Step]:
        return [s for s in self.steps if not s.ok]

    def table(self, width: int = 100) -> str:
        return render_table(self.steps, width)


def one_line(text: str, limit: int) -> str:
    text = ' '.join(text.split())
    return text if len(text) <= limit else text[:limit - 3] + '...'


def render_table(steps: ty.Sequence[Step], width: int = 100) -> str:
    """A plain-text table: step, expectation, what was seen, verdict.

    Long cells wrap within their column, so that the table reads in a
    terminal and in a CI log alike.
    """
    headers = ('step', 'expected', 'seen', 'result')
    fixed = len(headers[3]) + 3 * 3
    name_w = min(max([len(headers[0])] + [len(s.name) for s in steps]), 28)
    rest = max(width - fixed - name_w, 20)
    expect_w = rest * 2 // 5
    seen_w = rest - expect_w
    widths = (name_w, expect_w, seen_w, len(headers[3]))

    def rows(cells: ty.Sequence[str]) -> list[str]:
        wrapped = [textwrap.wrap(cell, w, break_long_words=True,
                                 break_on_hyphens=False) or ['']
                   for cell, w in zip(cells, widths)]
        height = max(len(w) for w in wrapped)
        lines = []
        for i in range(height):
            parts = [(w[i] if i < len(w) else '').ljust(n)
                     for w, n in zip(wrapped, widths)]
            lines.append(' | '.join(parts).rstrip())
        return lines

    rule = '-+-'.join('-' * n for n in widths)
    out = rows(headers) + [rule]
    for step in steps:
        out += rows((step.name, step.expect, one_line(step.seen, 600),
                     step.verdict))
    passed = sum(1 for s in steps if s.ok)
    out.append(rule)
    out.append('%d passed, %d failed' % (passed, len(steps) - passed))
    return '\n'.join(out)


# --- the libvirt domain ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Firmware:
    """The firmware part of a domain's XML."""
    loaders: tuple[dict[str, str], ...]
    nvram: str | None          # the NVRAM file, '' when <nvram/> is empty
    firmware_attr: str | None  # <os firmware='...'>
    machine: str
    arch: str = ''

    @property
    def stateless(self) -> bool:
        return (len(self.loaders) == 1 and
                self.loaders[0].get('stateless') == 'yes' and
                self.nvram is None)

    def describe(self) -> str:
        parts = []
        for loader in self.loaders:
            parts.append('loader %s' % ' '.join(
                '%s=%s' % (k, v) for k, v in sorted(loader.items())))
        parts.append('nvram %s' % ('absent' if self.nvram is None
                                   else self.nvram or '(empty element)'))
        if self.firmware_attr:
            parts.append("os firmware='%s'" % self.firmware_attr)
        parts.append('machine %s%s' % (
            self.machine, ' (%s)' % self.arch if self.arch else ''))
        return '; '.join(parts)


def firmware_of(xml: str) -> Firmware:
    """Read the loader, the NVRAM and the machine of a domain's XML."""
    root = ET.fromstring(xml)
    os_el = root.find('os')
    if os_el is None:
        raise StepError('the domain XML has no <os> element')
    loaders = []
    for loader in os_el.findall('loader'):
        attrs = dict(loader.attrib)
        if (loader.text or '').strip():
            attrs['path'] = loader.text.strip()
        loaders.append(attrs)
    nvram_el = os_el.find('nvram')
    nvram = None
    if nvram_el is not None:
        nvram = (nvram_el.text or '').strip()
    type_el = os_el.find('type')
    machine = type_el.get('machine', '') if type_el is not None else ''
    arch = type_el.get('arch', '') if type_el is not None else ''
    return Firmware(tuple(loaders), nvram, os_el.get('firmware'), machine,
                    arch)


def check_stateless(xml: str) -> str:
    """What the domain shows, if it boots stateless; else StepError."""
    fw = firmware_of(xml)
    problems = []
    if len(fw.loaders) != 1:
        problems.append('%d loaders' % len(fw.loaders))
    else:
        loader = fw.loaders[0]
        if loader.get('stateless') != 'yes':
            problems.append("no stateless='yes'")
        if loader.get('readonly') != 'yes':
            problems.append("not readonly='yes'")
        if loader.get('type') != 'pflash':
            problems.append("not type='pflash'")
    if fw.nvram is not None:
        problems.append('an <nvram> element')
    if problems:
        raise StepError('%s: %s' % (', '.join(problems), fw.describe()))
    return fw.describe()


def check_stateful(xml: str) -> str:
    """What the domain shows, if it is UEFI with a variable store."""
    fw = firmware_of(xml)
    if any(lo.get('stateless') == 'yes' for lo in fw.loaders):
        raise StepError("a stateless='yes' loader: %s" % fw.describe())
    if not fw.nvram:
        raise StepError('no NVRAM file: %s' % fw.describe())
    return fw.describe()


# --- listening sockets ------------------------------------------------------

_SS_USERS = re.compile(r'\("([^"]*)",pid=(\d+),fd=\d+\)')


@dataclasses.dataclass(frozen=True)
class Listener:
    address: str
    port: int
    processes: tuple[tuple[str, int], ...]

    @property
    def loopback(self) -> bool:
        return self.address.startswith('127.') or self.address in (
            '[::1]', '::1', 'localhost')


def parse_ss(text: str) -> list[Listener]:
    """Read ``ss -ltnpH`` (TCP listeners with processes, no header)."""
    out = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5 or fields[0] != 'LISTEN':
            continue
        local = fields[3]
        address, _sep, port = local.rpartition(':')
        # ss writes an IPv6 scope as %lo, e.g. [::1]%lo or *%lo.
        address = address.split('%', 1)[0]
        procs = tuple((name, int(pid))
                      for name, pid in _SS_USERS.findall(line))
        try:
            out.append(Listener(address, int(port), procs))
        except ValueError:
            continue
    return out


def listeners_of(listeners: ty.Iterable[Listener],
                 pids: ty.Collection[int]) -> list[Listener]:
    """The listeners any of ``pids`` holds."""
    return [lis for lis in listeners
            if any(pid in pids for _name, pid in lis.processes)]


def check_loopback(listeners: ty.Sequence[Listener]) -> str:
    if not listeners:
        raise StepError('no listening socket found for the cloud')
    seen = sorted({'%s:%d %s' % (lis.address, lis.port,
                                 lis.processes[0][0] if lis.processes
                                 else '?')
                   for lis in listeners})
    outside = [lis for lis in listeners if not lis.loopback]
    if outside:
        raise StepError('not on loopback: %s' % ', '.join(
            '%s:%d' % (lis.address, lis.port) for lis in outside))
    return ', '.join(seen)
