"""Benchmarks of the stateless firmware flow on this machine.

Run them with ``tox -e bench`` (or ``python -m benchmarks``). Each module
here measures one thing on real parts (libvirt's embedded QEMU driver,
openstack-placement in the process, upstream Nova in a virtualenv of its
own) and returns ``Figure`` objects: a value with its 95% confidence
interval, the goal it is held to and whether the interval meets it.
``__main__`` prints every figure as it is measured and a table of all of
them at the end; it writes that table to ``benchmarks/results.rst`` only
when asked (``--write-results``).

Timings on a small shared machine are noisy, so no figure is a single
timing. A comparison runs its two sides as alternating pairs (A then B,
then B then A, ...) in one run and takes the per-pair ratio (or
difference); the figure is the median of those with a distribution-free
95% confidence interval (the sign test's order statistics, which one slow
moment of the machine cannot drag). Pairs are added until the interval is
narrower than the goal's margin and on one side of the goal, or (after 20
pairs) lies a whole margin away from the goal, or a cap of pairs or
seconds is reached: a figure close to its goal takes every pair its
budget allows. The result is then PASS (the whole interval meets the
goal), MISS (none of it does) or INCONCLUSIVE.
Nothing here asserts a timing; the tests never time anything either.
"""

import dataclasses
import fractions
import functools
import math
import statistics
import time
import typing as ty

#: Status words of a figure.
PASS = 'PASS'
MISS = 'MISS'
INCONCLUSIVE = 'INCONCLUSIVE'
INFO = 'INFO'
SKIP = 'SKIP'
STATUSES = (PASS, MISS, INCONCLUSIVE, INFO, SKIP)

#: Fewest values with a 95% sign-test interval (n=6 gives 96.9%).
MIN_SAMPLES = 6
#: Fewest pairs before an interval far from the goal may end sampling:
#: looking after every pair, a few lucky pairs must not decide.
DECIDE_AFTER = 20


@dataclasses.dataclass
class Figure:
    """One measured figure and the goal it is held to.

    ``status`` is None for figures given for information (no goal),
    ``skipped`` says why one could not be measured. ``sides`` says what
    each side of a comparison does, for the table of comparisons.
    """

    benchmark: str
    name: str
    value: str
    goal: str = ''
    status_word: ty.Optional[str] = None
    detail: str = ''
    skipped: str = ''

    @property
    def status(self) -> str:
        if self.skipped:
            return SKIP
        return self.status_word or INFO

    @property
    def command(self) -> str:
        return 'tox -e bench -- --only %s' % self.benchmark


@dataclasses.dataclass
class Side:
    """A Nova to compare: this tree, or another Nova in a virtualenv."""

    label: str
    #: Python of the virtualenv; None for this tree (in the process).
    python: ty.Optional[str] = None
    #: Why it cannot be used, if so.
    unavailable: str = ''
    #: Directories put first on the side's ``PYTHONPATH``.
    path: tuple[str, ...] = ()
    #: The series release whose runner builds it (``patched RELEASE``).
    release: ty.Optional[str] = None
    #: What to know about the Nova measured (e.g. a tree edited by hand).
    note: str = ''


@dataclasses.dataclass
class Options:
    """What the command line asked for, shared by all benchmarks."""

    #: Multiplies every cap of pairs and seconds (``--quick`` lowers it).
    cap_scale: float = 1.0
    #: Provider counts of the scheduling benchmark.
    provider_counts: tuple[int, ...] = (1000, 10000)
    #: Computes whose periodic sync is counted, per side.
    sync_sample: int = 20
    #: Other Novas to compare with this tree, upstream's first.
    sides: tuple[Side, ...] = ()
    #: Guests already running in the growth benchmark.
    growth_guests: int = 16
    #: Scratch directory for instances, databases and logs.
    workdir: str = ''

    def cap(self, pairs: int, seconds: float) -> tuple[int, float]:
        """A comparison's caps, scaled; never below ``MIN_SAMPLES``."""
        return (max(MIN_SAMPLES, int(round(pairs * self.cap_scale))),
                seconds * self.cap_scale)


def pass_if(met: bool) -> str:
    """The status of a figure whose goal is exact (a count, a size)."""
    return PASS if met else MISS


def median(values: ty.Iterable[float]) -> float:
    return statistics.median(list(values))


@functools.lru_cache(maxsize=None)
def _sign_test_order(n: int, confidence: float) -> int:
    """The order k of the sign test's interval for n values (0: none).

    In whole numbers: the tail counts the outcomes of n fair signs with at
    most k pluses, out of 2 ** n, which no float holds beyond n = 1023 (a
    cap of 2,000 pairs goes past it). Kept per n: a comparison asks again
    after every pair.
    """
    limit = fractions.Fraction(1.0 - confidence) * 2 ** n
    k = 0
    outcomes = 1  # math.comb(n, k)
    tail = 0
    while k < n // 2:
        tail += outcomes
        if 2 * tail > limit:
            break
        outcomes = outcomes * (n - k) // (k + 1)
        k += 1
    return k


def median_interval(values: ty.Sequence[float],
                    confidence: float = 0.95
                    ) -> tuple[float, float, float]:
    """Median and its distribution-free confidence interval.

    The sign test's interval: the k-th smallest and k-th largest values,
    k the largest order whose binomial tail keeps the coverage. It assumes
    nothing about the shape of the distribution, and a few wild values
    (a timing that caught the machine busy) move it by one rank at most.

    :returns: (median, low, high); low and high are infinite for fewer
        than ``MIN_SAMPLES`` values.
    """
    ordered = sorted(values)
    n = len(ordered)
    mid = statistics.median(ordered)
    k = _sign_test_order(n, confidence)
    if k == 0:
        return mid, -math.inf, math.inf
    return mid, ordered[k - 1], ordered[n - k]


@dataclasses.dataclass
class Sampled:
    """The outcome of an alternating paired comparison."""

    #: Per-pair statistic (ratio first/second, or difference).
    values: list[float]
    first: list[float]
    second: list[float]
    center: float
    low: float
    high: float
    #: Why sampling stopped: 'narrow', 'decided' or 'cap'.
    stopped: str
    seconds: float

    @property
    def pairs(self) -> int:
        return len(self.values)

    @property
    def width(self) -> float:
        return self.high - self.low

    def status(self, goal: float) -> str:
        """PASS when the whole interval is at or under ``goal``."""
        if self.high <= goal:
            return PASS
        if self.low > goal:
            return MISS
        return INCONCLUSIVE


def compare(first: ty.Callable[[], float], second: ty.Callable[[], float],
            **kwargs: ty.Any) -> Sampled:
    """Run two measurements as alternating pairs until the goal resolves.

    Each callable returns its own measurement, so it can leave its setup
    and cleanup out of it. Pair i runs first-then-second when i is even and
    second-then-first when odd, which spreads the machine's slow moments
    and any order effect over both sides. See ``compare_pairs`` for the
    keyword arguments.
    """
    def pair(index: int) -> tuple[float, float]:
        if index % 2 == 0:
            x = first()
            return x, second()
        y = second()
        return first(), y

    return compare_pairs(pair, **kwargs)


def compare_pairs(pair: ty.Callable[[int], tuple[float, float]], *,
                  goal: float, margin: float, max_pairs: int,
                  max_seconds: float, difference: bool = False,
                  min_pairs: int = MIN_SAMPLES) -> Sampled:
    """Sample pairs until the interval of their statistic resolves the goal.

    ``pair(i)`` measures the i-th pair and returns (first, second). The
    per-pair statistic is first/second (or first - second with
    ``difference``). Sampling stops once at least ``min_pairs`` pairs give
    an interval narrower than ``margin`` that does not hold ``goal``, or
    ``DECIDE_AFTER`` pairs one lying a whole margin away from ``goal``
    (decided either way), or at ``max_pairs`` pairs or ``max_seconds``
    seconds, whichever comes first. An interval that still holds the goal
    is not final however narrow it is: more pairs may settle it.
    """
    a: list[float] = []
    b: list[float] = []
    values: list[float] = []
    start = time.monotonic()
    stopped = 'cap'
    center, low, high = math.nan, -math.inf, math.inf
    while len(values) < max(max_pairs, min_pairs):
        x, y = pair(len(values))
        a.append(x)
        b.append(y)
        values.append(x - y if difference else x / y)
        center, low, high = median_interval(values)
        if len(values) >= min_pairs:
            if high - low < margin and not low <= goal < high:
                stopped = 'narrow'
                break
            if (len(values) >= DECIDE_AFTER and
                    (high < goal - margin or low > goal + margin)):
                stopped = 'decided'
                break
        # The time cap holds even short of min_pairs: on a machine too
        # busy for the budget the result is INCONCLUSIVE, not late.
        if time.monotonic() - start >= max_seconds:
            break
    return Sampled(values, a, b, center, low, high, stopped,
                   time.monotonic() - start)


def interleaved(first: ty.Callable[[], ty.Any],
                second: ty.Callable[[], ty.Any],
                count: int) -> tuple[float, float]:
    """Mean seconds per call of each, calls interleaved one by one.

    For stages of microseconds in one process: each call of one is next
    to a call of the other (in alternating order), so whatever the
    machine does during the batch lands on both alike.
    """
    clock = time.perf_counter
    total_a = total_b = 0.0
    for i in range(count):
        if i % 2 == 0:
            t0 = clock()
            first()
            t1 = clock()
            second()
            t2 = clock()
            total_a += t1 - t0
            total_b += t2 - t1
        else:
            t0 = clock()
            second()
            t1 = clock()
            first()
            t2 = clock()
            total_b += t1 - t0
            total_a += t2 - t1
    return total_a / count, total_b / count


def fmt_interval(sampled: Sampled, fmt: ty.Callable[[float], str],
                 unit: str = 'pairs') -> str:
    """``0.987x (95% CI 0.956-1.023, 40 pairs)``."""
    if math.isinf(sampled.low):
        return '%s (%d %s, too few for an interval)' % (
            fmt(sampled.center), sampled.pairs, unit)
    return '%s (95%% CI %s to %s, %d %s)' % (
        fmt(sampled.center), fmt(sampled.low), fmt(sampled.high),
        sampled.pairs, unit)


def fmt_median(values: ty.Sequence[float],
               fmt: ty.Callable[[float], str]) -> str:
    """A median with its interval, for a figure without a comparison."""
    mid, low, high = median_interval(values)
    if math.isinf(low):
        return '%s (%d samples, too few for an interval)' % (
            fmt(mid), len(values))
    return '%s (95%% CI %s to %s, %d samples)' % (
        fmt(mid), fmt(low), fmt(high), len(values))


def stop_note(sampled: Sampled, margin_text: str) -> str:
    return {
        'narrow': 'stopped when the interval was narrower than %s' %
                  margin_text,
        'decided': 'stopped when the interval lay a margin (%s) from the '
                   'goal' % margin_text,
        'cap': 'stopped at the cap (%d pairs, %.0f s) with the interval '
               'still wider than %s or holding the goal' % (
                   sampled.pairs, sampled.seconds, margin_text),
        'fixed': 'stopped at the cap of rounds (%d pairs) with the '
                 'interval still wider than %s' % (
                     sampled.pairs, margin_text),
    }[sampled.stopped]


class Stopwatch:
    """``with Stopwatch() as sw: ...``; then ``sw.seconds``."""

    seconds = 0.0

    def __enter__(self) -> 'Stopwatch':
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc_info) -> None:
        self.seconds = time.perf_counter() - self._start


def fmt_s(seconds: float) -> str:
    return '%.2f s' % seconds


def fmt_ms(seconds: float) -> str:
    return '%.1f ms' % (seconds * 1000)


def fmt_us(seconds: float) -> str:
    return '%.0f us' % (seconds * 1e6)


def fmt_ratio(ratio: float) -> str:
    return '%.3fx' % ratio


def fmt_kib(kib: float) -> str:
    return '%+.0f KiB' % kib


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


def differences(sampled: Sampled) -> list[float]:
    """Per-pair first - second of a comparison sampled as a ratio."""
    return [x - y for x, y in zip(sampled.first, sampled.second)]


def batch_size(func: ty.Callable[[], ty.Any], target: float = 0.02,
               most: int = 2000) -> int:
    """Calls of ``func`` that take about ``target`` seconds together.

    A sample of a fast stage is the mean over a batch, long enough that
    the clock's resolution and one interrupt do not show.
    """
    func()
    with Stopwatch() as sw:
        for _ in range(5):
            func()
    return max(5, min(most, int(target / max(sw.seconds / 5, 1e-9))))


def per_call(func: ty.Callable[[], ty.Any], count: int) -> float:
    with Stopwatch() as sw:
        for _ in range(count):
            func()
    return sw.seconds / count


def ratio_figure(benchmark: str, name: str, sampled: Sampled, goal: float,
                 margin: float, detail: str = '') -> Figure:
    """A comparison's figure: its ratio, interval, goal and status."""
    note = stop_note(sampled, '%.2f' % margin)
    return Figure(
        benchmark, name, fmt_interval(sampled, fmt_ratio),
        goal='<= %.2fx' % goal, status_word=sampled.status(goal),
        detail='; '.join(part for part in (detail, note) if part))


def difference_figure(benchmark: str, name: str, values: ty.Sequence[float],
                      fmt: ty.Callable[[float], str],
                      detail: str = '') -> Figure:
    """An absolute difference per pair, with its interval, for information.
    """
    return Figure(benchmark, name, fmt_median(values, fmt), detail=detail)
