"""Per-test results of a release's suites, and pristine against patched.

A result set maps a test id to ``[status, seconds, text]`` as
``subunit_results.py`` writes it. :func:`compare` holds a patched run to
the release as published:

* every test that passes on the pristine tree passes on the patched one;
* a test that fails on the pristine tree fails the same way on the
  patched one: the same exception type and the same first line of its
  message (:func:`signature`);
* a test skipped on the pristine tree does not fail on the patched one;
* no test of the pristine run is missing from the patched run, unless a
  patch turned it into data-driven cases (ddt names them ``test_x_1``,
  ``test_x_2_<data>``, ...): each case is then held to what the one test
  did (:func:`split_cases`).

Anything else is a regression. Tests only the patched run has are the
series' own (``new``) or another release's run unchanged (``upstream``);
each of them must pass or be skipped.
"""

import datetime
import hashlib
import json
import os
import platform
import re
import subprocess
import typing as ty

PASSED = ('success', 'xfail')
FAILED = ('fail', 'uxsuccess')
SKIPPED = ('skip',)

#: Bump when what a cached result set means changes.
FORMAT = 1

_TRACEBACK = 'Traceback (most recent call last):'
_ADDRESS = re.compile(r'\b0x[0-9a-fA-F]+\b')
_UUID = re.compile(r'\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                   r'[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b')
_MAX_SIGNATURE = 300


def _normalize(line: str) -> str:
    line = _ADDRESS.sub('0x?', line.strip())
    line = _UUID.sub('<uuid>', line)
    return line[:_MAX_SIGNATURE]


def signature(text: str) -> str:
    """The exception type and first line of the message of a failure.

    ``text`` is a traceback as subunit carries it: the last exception
    raised (after "During handling of the above exception") counts; a
    message that starts on the line after the type counts from there. A
    text that is not a traceback (a skip reason) gives its first line.
    Memory addresses and UUIDs, which change from run to run, are
    replaced.
    """
    if not text:
        return ''
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith(
        _TRACEBACK)]
    if starts:
        rest = lines[starts[-1] + 1:]
        for i, line in enumerate(rest):
            if line.strip() and not line[0].isspace():
                if line.rstrip().endswith(':'):
                    # "AssertionError:" with its message on the next lines
                    more = next((m for m in rest[i + 1:] if m.strip()), '')
                    line = '%s %s' % (line.rstrip(), more.strip())
                return _normalize(line)
    for line in lines:
        if line.strip():
            return _normalize(line)
    return ''


def outcome(status: str | None) -> str:
    """``passed``, ``failed``, ``skipped`` or ``missing``."""
    if status is None:
        return 'missing'
    if status in PASSED:
        return 'passed'
    if status in SKIPPED:
        return 'skipped'
    return 'failed'


def counts(results: dict) -> dict:
    """How many tests passed, failed and were skipped."""
    found = {'passed': 0, 'failed': 0, 'skipped': 0}
    for status, _seconds, _text in results.values():
        found[outcome(status)] += 1
    found['total'] = len(results)
    return found


def _reason(entry: list | None) -> str:
    if entry is None:
        return 'did not run'
    status, _seconds, text = entry
    sig = signature(text)
    if outcome(status) == 'skipped':
        return 'skipped: %s' % sig if sig else 'skipped'
    if status == 'uxsuccess':
        return 'passed, expected to fail'
    return sig


def split_cases(test_id: str, added: ty.Iterable[str]) -> list[str]:
    """The data-driven cases among ``added`` (tests only the patched run
    has) that replace ``test_id``.

    ddt names the cases of ``test_x`` ``test_x_<n>`` or
    ``test_x_<n>_<data>``, ``n`` counting from 1.
    """
    case = re.compile(re.escape(test_id) + r'_[1-9][0-9]*(_.*)?$')
    return sorted(t for t in added if case.match(t))


def compare(pristine: dict, patched: dict,
            upstream_prefixes: tuple[str, ...] = ()) -> dict:
    """Hold the patched run to the pristine one (see the module's doc).

    ``upstream_prefixes`` are the module names of test files copied from
    another release: their tests are listed apart from the series' own.
    """
    found = {kind: [] for kind in (
        'regressions', 'known_failures', 'fixed', 'new', 'upstream',
        'split')}
    added = set(patched) - set(pristine)
    held = set()
    for test_id in sorted(pristine):
        cases = [] if test_id in patched else split_cases(test_id, added)
        if cases:
            found['split'].append({'id': test_id, 'cases': cases})
        for case in cases or [test_id]:
            held.add(case)
            kind, row = _hold(pristine[test_id], patched.get(case))
            if kind:
                row['id'] = case
                if case != test_id:
                    row['pristine_id'] = test_id
                found[kind].append(row)
    for test_id in sorted(set(patched) - held):
        entry = patched[test_id]
        row = {'id': test_id, 'patched': outcome(entry[0])}
        if row['patched'] != 'passed':
            row['reason'] = _reason(entry)
        if any(test_id.startswith(p + '.') for p in upstream_prefixes):
            found['upstream'].append(row)
        else:
            found['new'].append(row)
    return found


def _hold(before: list, after: list | None) -> tuple[str | None, dict]:
    """What a patched result is against the pristine one: the kind of row
    (``regressions``, ``known_failures``, ``fixed`` or None when nothing
    changed) and the row.
    """
    was, now = outcome(before[0]), outcome(after and after[0])
    row = {'pristine': was, 'patched': now}
    if was == 'passed':
        if now == 'passed':
            return None, row
        row['reason'] = _reason(after)
        return 'regressions', row
    if was == 'failed':
        if now == 'failed':
            before_sig = signature(before[2])
            after_sig = signature(after[2])
            if before_sig == after_sig:
                return 'known_failures', {'reason': before_sig}
            row['reason'] = after_sig
            row['pristine_reason'] = before_sig
            return 'regressions', row
        if now == 'passed':
            return 'fixed', row
        row['reason'] = _reason(after)
        row['pristine_reason'] = signature(before[2])
        return 'regressions', row
    # skipped
    if now == 'passed':
        return 'fixed', row
    if now != 'skipped':
        row['reason'] = _reason(after)
        return 'regressions', row
    return None, row


def failed(comparison: dict) -> bool:
    """Whether ``comparison`` holds a regression or a failing added test."""
    return bool(comparison['regressions']) or any(
        row['patched'] == 'failed'
        for kind in ('new', 'upstream') for row in comparison[kind])


def cache_key(*parts: str | bytes) -> str:
    """sha256 over ``parts``, each length-prefixed so none can blur."""
    digest = hashlib.sha256()
    digest.update(b'series-results %d\n' % FORMAT)
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(b'%d:' % len(data))
        digest.update(data)
    return digest.hexdigest()


def load(path: str, key: str) -> dict | None:
    """The saved run at ``path`` if it was saved under ``key``."""
    try:
        with open(path, encoding='utf-8') as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    if saved.get('key') != key or 'results' not in saved:
        return None
    return saved


def save(path: str, key: str, run: dict) -> None:
    """Write ``run`` (with its ``results``) atomically under ``key``."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8') as f:
        json.dump(dict(run, key=key), f)
    os.replace(tmp, path)


def _first_line(cmd: list[str]) -> str | None:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if proc.returncode == 0 and lines else None


def machine(python: str | None = None) -> dict:
    """Where and when the run happens, for the record."""
    try:
        nproc = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover -- not on Linux
        nproc = os.cpu_count()
    version = None
    if python:
        version = _first_line([python, '-c', 'import platform; '
                               'print(platform.python_version())'])
    return {
        'date': datetime.datetime.now(datetime.timezone.utc).strftime(
            '%Y-%m-%dT%H:%M:%SZ'),
        'host': platform.node(),
        'nproc': nproc,
        'python': version or platform.python_version(),
        'libvirt': _first_line(['virsh', '--version']),
        'qemu': _first_line(['qemu-system-x86_64', '--version']),
        'load': [round(x, 2) for x in os.getloadavg()],
    }


def summary(suite: str, sides: dict, comparison: dict,
            limit: int = 40) -> list[str]:
    """Lines that report one suite, the worst first."""
    lines = []
    for side in ('pristine', 'patched'):
        run = sides[side]
        c = counts(run['results'])
        lines.append('%-10s %-8s %6d tests: %d passed, %d failed, '
                     '%d skipped in %d s%s' % (
                         suite, side, c['total'], c['passed'], c['failed'],
                         c['skipped'], run.get('seconds', 0),
                         ' (saved run of %s)' % run['date']
                         if run.get('reused') else ''))
    lines.append('%-10s %d regressions, %d failing in both the same way, '
                 '%d fixed, %d new, %d upstream' % (
                     suite, len(comparison['regressions']),
                     len(comparison['known_failures']),
                     len(comparison['fixed']), len(comparison['new']),
                     len(comparison['upstream'])))
    shown = 0
    for row in comparison['regressions']:
        if shown == limit:
            lines.append('  ... %d more regressions in the JSON result' % (
                len(comparison['regressions']) - limit))
            break
        lines.append('  REGRESSION %s: %s pristine, %s patched: %s' % (
            row['id'], row['pristine'], row['patched'], row['reason']))
        shown += 1
    for kind in ('new', 'upstream'):
        for row in comparison[kind]:
            if row['patched'] == 'failed':
                lines.append('  FAILED (%s) %s: %s' % (kind, row['id'],
                                                       row['reason']))
    for row in comparison['split']:
        lines.append('  split into data-driven cases: %s: %s' % (
            row['id'], ', '.join(c.rsplit('.', 1)[-1] for c in row['cases'])))
    for row in comparison['known_failures'][:limit]:
        lines.append('  failing pristine and patched: %s: %s' % (
            row['id'], row['reason']))
    return lines
