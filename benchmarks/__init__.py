"""Benchmarks of the stateless firmware flow on this machine.

Run them with ``tox -e bench`` (or ``python -m benchmarks``). Each module
here measures one thing on real parts (libvirt's embedded QEMU driver,
openstack-placement in the process) and returns ``Figure`` objects: a
value, the goal it is held to and whether it met it. ``__main__`` prints
every figure as it is measured and a table of all of them at the end, and
writes that table to ``benchmarks/results.rst`` for the documentation.

Timings on a small shared machine are noisy, so no figure is a single
timing: the two sides of a comparison run alternately in one process and
their medians are compared. Nothing here asserts a timing; the tests never
time anything either.
"""

import dataclasses
import statistics
import time
import typing as ty

#: Status words of a figure.
PASS = 'PASS'
MISS = 'MISS'
INFO = 'INFO'
SKIP = 'SKIP'


@dataclasses.dataclass
class Figure:
    """One measured figure and the goal it is held to.

    ``passed`` is None for figures given for information (no goal) or that
    could not be measured (``skipped`` then says why).
    """

    benchmark: str
    name: str
    value: str
    goal: str = ''
    passed: ty.Optional[bool] = None
    detail: str = ''
    skipped: str = ''

    @property
    def status(self) -> str:
        if self.skipped:
            return SKIP
        if self.passed is None:
            return INFO
        return PASS if self.passed else MISS

    @property
    def command(self) -> str:
        return 'tox -e bench -- --only %s' % self.benchmark


@dataclasses.dataclass
class Options:
    """What the command line asked for, shared by all benchmarks."""

    #: Runs per side of a timed comparison.
    runs: int = 5
    #: Provider counts of the scheduling benchmark.
    provider_counts: tuple[int, ...] = (1000, 10000)
    #: Providers whose trait sync is measured (a sample of the population).
    sync_sample: int = 100
    #: Python of a virtualenv with upstream Nova, or None.
    upstream_python: ty.Optional[str] = None
    #: Requests timed per batch in the control plane benchmark.
    requests_per_batch: int = 200
    #: Scratch directory for instances, databases and logs.
    workdir: str = ''


def median(values: ty.Iterable[float]) -> float:
    return statistics.median(list(values))


def alternate(first: ty.Callable[[], float], second: ty.Callable[[], float],
              runs: int) -> tuple[list[float], list[float]]:
    """Run two measurements alternately, ``runs`` times each.

    Each callable returns its own measurement (so it can leave its setup
    and cleanup out of it). Alternating, and starting each round with the
    other side, spreads the machine's slow moments over both sides.
    """
    a: list[float] = []
    b: list[float] = []
    for i in range(runs):
        if i % 2 == 0:
            a.append(first())
            b.append(second())
        else:
            b.append(second())
            a.append(first())
    return a, b


class Stopwatch:
    """``with Stopwatch() as sw: ...``; then ``sw.seconds``."""

    seconds = 0.0

    def __enter__(self) -> 'Stopwatch':
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self._start


def fmt_ms(seconds: float) -> str:
    return '%.1f ms' % (seconds * 1000)


def fmt_us(seconds: float) -> str:
    return '%.0f us' % (seconds * 1e6)


def fmt_ratio(ratio: float) -> str:
    return '%.3fx' % ratio


def rst_table(figures: ty.Sequence[Figure]) -> str:
    """The figures as an RST list table: figure, value, goal, status."""
    lines = [
        '.. list-table::',
        '   :header-rows: 1',
        '   :widths: 12 40 22 16 10',
        '',
        '   * - Benchmark',
        '     - Figure',
        '     - Value',
        '     - Goal',
        '     - Result',
    ]
    for fig in figures:
        value = fig.value if not fig.skipped else fig.skipped
        cells = [fig.benchmark, fig.name, value, fig.goal or '-', fig.status]
        lines.append('   * - ``%s``' % cells[0])
        for cell in cells[1:]:
            lines.append('     - %s' % _rst_cell(cell))
    return '\n'.join(lines) + '\n'


def _rst_cell(text: str) -> str:
    # Keep a cell on one line; a bare "-" would read as a bullet list.
    text = ' '.join(str(text).split())
    return text if text not in ('', '-') else '\\-'


def text_table(figures: ty.Sequence[Figure]) -> str:
    """The figures as a plain text table for the terminal."""
    rows = [('benchmark', 'figure', 'value', 'goal', 'result')]
    for fig in figures:
        rows.append((fig.benchmark, fig.name,
                     fig.value if not fig.skipped else fig.skipped,
                     fig.goal or '-', fig.status))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    out = []
    for n, row in enumerate(rows):
        out.append('  '.join(cell.ljust(widths[i])
                             for i, cell in enumerate(row)).rstrip())
        if n == 0:
            out.append('  '.join('-' * w for w in widths))
    return '\n'.join(out)
