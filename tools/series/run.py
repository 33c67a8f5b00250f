"""Prove a patch series on a released Nova, in one command.

``python3 -m tools.series RELEASE`` (``tox -e series-RELEASE``):

1. fetch the release's sdist from PyPI with pip into a cache outside the
   tracked tree, and check its sha256;
2. unpack it, and apply the series twice: with ``git am`` onto a git
   repository made of the pristine sdist, and with ``patch -p1 --fuzz=0``
   in series order as quilt does; both must apply every patch with no
   fuzz and give the same tree;
3. create a virtualenv and install the patched tree with the release's
   pins (``pip install -c PINS -e TREE[EXTRAS] -r test-requirements.txt``);
4. run with stestr the release's tests that the selection rules pick for
   the files the series changes (``tools/series/selection.py``), the
   series' own tests, and the test files of other releases that
   ``release.ini`` names, copied into the tree for the run;
5. run the release's boot check (real libvirt) in that virtualenv.

``--per-patch`` applies the patches one by one instead and runs, after
each, the tests the rules pick for that patch (and, first, the unit tests
of the whole selection on the pristine tree), to show each patch stands
alone.

``--full`` runs the release's whole unit and functional suites instead of
the selection, on the pristine tree and on the patched one, each in a
virtualenv of its own, and holds every test of the patched run to its
pristine result (``tools/series/results.py``). The results of a finished
run are saved and reused: the pristine ones under the cache, keyed by the
sdist, the pins and the test environment; the patched ones in the work
directory, keyed by the patched tree.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time

from tools.series import release as release_mod
from tools.series import results as results_mod
from tools.series import selection
from tools.series import upstream as upstream_mod

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

#: Downloads and work trees: under .tox/, ignored by git.
DEFAULT_WORK = os.path.join(ROOT, '.tox', 'series')

#: One identity and date for the pristine commit, so that its id, and the
#: ids of the commits ``git am`` makes on it, are the same on every run.
GIT_ENV = {
    'GIT_AUTHOR_NAME': 'series', 'GIT_AUTHOR_EMAIL': 'series@localhost',
    'GIT_COMMITTER_NAME': 'series',
    'GIT_COMMITTER_EMAIL': 'series@localhost',
    'GIT_AUTHOR_DATE': '2000-01-01T00:00:00Z',
    'GIT_COMMITTER_DATE': '2000-01-01T00:00:00Z',
}

#: pbr reads versions, authors and change logs from git; the sdist already
#: carries them, and the git repository made here has no tags.
PBR_ENV = {'SKIP_GENERATE_AUTHORS': '1', 'SKIP_WRITE_GIT_CHANGELOG': '1',
           'SKIP_GENERATE_RENO': '1'}

#: The environment Nova's own tox.ini gives its unit and functional tests.
TEST_ENV = {
    'OS_STDOUT_CAPTURE': '1', 'OS_STDERR_CAPTURE': '1',
    'OS_TEST_TIMEOUT': '160', 'PYTHONDONTWRITEBYTECODE': '1',
    'NOVA_RAISE_ON_GREENLET_LEAK': 'True', 'LANG': 'C.UTF-8',
    'LC_ALL': 'C.UTF-8',
}

#: Run with a virtualenv's Python to read a subunit stream.
SUBUNIT_RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                               'subunit_results.py')

#: stestr's test paths of the suites, as Nova's tox.ini gives them.
SUITES = {'unit': './nova/tests/unit',
          'functional': './nova/tests/functional'}

#: What Nova's tox.ini runs after its unit suite, in a process of its
#: own (the module reloads Nova with osprofiler enabled).
UNIT_ISOLATED = {'TEST_OSPROFILER': '1'}, 'nova.tests.unit.test_profiler'


class StepFailed(Exception):
    pass


def say(text: str) -> None:
    print(text, flush=True)


def step(title: str) -> None:
    say('\n=== %s' % title)


def run(cmd: list[str], *, cwd: str | None = None,
        env: dict[str, str] | None = None, capture: bool = False,
        check: bool = True) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    if capture:
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, text=True,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    else:
        proc = subprocess.run(cmd, cwd=cwd, env=full_env, text=True)
    if check and proc.returncode != 0:
        if capture:
            say(proc.stdout)
        raise StepFailed('%s exited %d' % (' '.join(cmd), proc.returncode))
    return proc


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()


# --- fetch and unpack --------------------------------------------------------

def fetch_sdist(package: str, version: str, sha256: str, cache: str
                ) -> str:
    """The sdist in ``cache``, downloaded with pip when missing."""
    step('fetch %s==%s' % (package, version))
    os.makedirs(cache, exist_ok=True)
    name = '%s-%s.tar.gz' % (package, version)
    path = os.path.join(cache, name)
    if not os.path.isfile(path) or sha256_of(path) != sha256:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        run([sys.executable, '-m', 'pip', 'download', '--no-deps',
             '--no-binary', ':all:',
             '%s==%s' % (package, version), '-d', cache])
    else:
        say('cached: %s' % path)
    digest = sha256_of(path)
    if digest != sha256:
        os.unlink(path)
        raise StepFailed('sha256 of %s is %s, not %s as release.ini says' %
                         (name, digest, sha256))
    say('sha256 %s OK' % digest)
    return path


def fetch(rel: release_mod.Release, cache: str) -> str:
    return fetch_sdist(rel.package, rel.version, rel.sha256, cache)


def unpack(sdist: str, dest: str) -> str:
    """Unpack ``sdist`` as ``dest`` (replacing it)."""
    shutil.rmtree(dest, ignore_errors=True)
    tmp = dest + '.unpack'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp, filter='data')
    (top,) = os.listdir(tmp)
    os.rename(os.path.join(tmp, top), dest)
    os.rmdir(tmp)
    return dest


def git(tree: str, *args: str, capture: bool = True,
        check: bool = True) -> subprocess.CompletedProcess:
    return run(['git', '-C', tree, *args], env=GIT_ENV, capture=capture,
               check=check)


def make_git_tree(pristine: str, dest: str, version: str) -> str:
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(pristine, dest, symlinks=True)
    git(dest, 'init', '-q', '-b', 'series')
    git(dest, 'add', '-A', '-f')
    git(dest, 'commit', '-q', '-m', 'nova %s as published on PyPI' % version)
    git(dest, 'tag', 'pristine')
    return git(dest, 'rev-parse', 'HEAD').stdout.strip()


# --- apply -------------------------------------------------------------------

def git_am(tree: str, patch: release_mod.Patch) -> None:
    proc = git(tree, 'am', '--keep-cr', patch.path, check=False)
    if proc.returncode != 0:
        say(proc.stdout)
        git(tree, 'am', '--abort', check=False)
        raise StepFailed('git am %s failed' % patch.name)


def quilt_push(tree: str, patch: release_mod.Patch) -> list[str]:
    """Apply one patch as quilt does; return the offsets reported."""
    proc = run(['patch', '-p1', '--fuzz=0', '--forward', '--batch',
                '--no-backup-if-mismatch', '-i', patch.path], cwd=tree,
               capture=True, check=False)
    if proc.returncode != 0 or 'fuzz' in proc.stdout:
        say(proc.stdout)
        raise StepFailed('patch -p1 --fuzz=0 < %s failed' % patch.name)
    return [line for line in proc.stdout.splitlines() if 'offset' in line]


def apply_both(rel: release_mod.Release, pristine: str, work: str
               ) -> str:
    step('apply %d patches with git am and with patch -p1 --fuzz=0'
         % len(rel.patches))
    git_tree = os.path.join(work, 'git')
    make_git_tree(pristine, git_tree, rel.version)
    quilt_tree = os.path.join(work, 'quilt')
    shutil.rmtree(quilt_tree, ignore_errors=True)
    shutil.copytree(pristine, quilt_tree, symlinks=True)
    for patch in rel.patches:
        git_am(git_tree, patch)
        offsets = quilt_push(quilt_tree, patch)
        say('%s: git am OK, patch --fuzz=0 OK%s' % (
            patch.name, ' (%s)' % '; '.join(offsets) if offsets else ''))
    proc = run(['diff', '-r', '-q', '--exclude=.git', git_tree, quilt_tree],
               capture=True, check=False)
    if proc.returncode != 0:
        say(proc.stdout)
        raise StepFailed('git am and patch gave different trees')
    say('git am and patch -p1 give the same tree')
    stat = git(git_tree, 'diff', '--stat=100', 'pristine', 'HEAD').stdout
    say(stat.rstrip())
    return git_tree


# --- install -----------------------------------------------------------------

def venv_python(venv: str) -> str:
    return os.path.join(venv, 'bin', 'python')


def install(rel: release_mod.Release, tree: str, venv: str) -> None:
    """A virtualenv with the tree installed editable with the pins.

    Reused when the pins, the requirements and the Python are those it was
    made with: only the editable install is redone then.
    """
    step('install %s with %s' % (rel.package, os.path.relpath(rel.pins,
                                                              ROOT)))
    key = hashlib.sha256()
    for path in (rel.pins, os.path.join(tree, 'requirements.txt'),
                 os.path.join(tree, 'test-requirements.txt')):
        with open(path, encoding='utf-8') as f:
            # Comments do not change what pip installs.
            key.update(''.join(line for line in f
                               if not line.startswith('#')).encode())
    key.update(' '.join(rel.extra_requirements).encode())
    key.update(' '.join(rel.extras).encode())
    key.update(sys.version.encode())
    stamp = os.path.join(venv, '.series-stamp')
    reuse = False
    with contextlib.suppress(OSError):
        with open(stamp) as f:
            reuse = f.read() == key.hexdigest()
    # --no-compile: the tests compile what they import, and no more.
    pip = [venv_python(venv), '-m', 'pip', 'install', '-q', '--no-compile',
           '--progress-bar', 'off', '-c', rel.pins]
    env = dict(PBR_ENV, PBR_VERSION=rel.version)
    editable = tree + ('[%s]' % ','.join(rel.extras) if rel.extras else '')
    start = time.monotonic()
    # pip's output goes to a log, shown when pip fails.
    if reuse:
        say('reusing %s' % venv)
        run(pip + ['--no-deps', '-e', editable], env=env, capture=True)
    else:
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, '-m', 'venv', venv])
        run(pip + ['-e', editable, '-r',
                   os.path.join(tree, 'test-requirements.txt'),
                   *rel.extra_requirements], env=env, capture=True)
        with open(stamp, 'w') as f:
            f.write(key.hexdigest())
    say('installed in %.0f s' % (time.monotonic() - start))


# --- tests -------------------------------------------------------------------

#: Seconds between two progress lines of a run whose output goes to a log.
PROGRESS_EVERY = 120

_RESULT_LINE = re.compile(r'\.\.\. (ok|FAILED|SKIPPED)')


def _test_env(venv: str, extra: dict[str, str] | None = None
              ) -> dict[str, str]:
    env = dict(os.environ, **TEST_ENV)
    env.update(extra or {})
    env['PATH'] = os.path.join(venv, 'bin') + os.pathsep + os.environ.get(
        'PATH', '')
    return env


def _next_stream(tree: str) -> str | None:
    with contextlib.suppress(OSError):
        with open(os.path.join(tree, '.stestr', 'next-stream')) as f:
            return f.read().strip()
    return None


def _stream(cmd: list[str], cwd: str, env: dict[str, str],
            log: str | None, label: str) -> int:
    """Run ``cmd``, its output to ours, or to ``log``.

    With a log, a progress line every :data:`PROGRESS_EVERY` seconds.
    """
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True,
                            errors='replace', stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    if log is None:
        for line in proc.stdout:
            sys.stdout.write(line)
        sys.stdout.flush()
        return proc.wait()
    say('%s: output in %s' % (label, log))
    start = last = time.monotonic()
    done = {'ok': 0, 'FAILED': 0, 'SKIPPED': 0}
    with open(log, 'w', encoding='utf-8') as out:
        for line in proc.stdout:
            out.write(line)
            match = _RESULT_LINE.search(line)
            if match:
                done[match.group(1)] += 1
            now = time.monotonic()
            if now - last >= PROGRESS_EVERY:
                last = now
                out.flush()
                say('%s: %d passed, %d failed, %d skipped after %.0f s '
                    '(load %.1f)' % (label, done['ok'], done['FAILED'],
                                     done['SKIPPED'], now - start,
                                     os.getloadavg()[0]))
    return proc.wait()


def last_results(venv: str, tree: str) -> dict:
    """Per-test results of the last stestr run in ``tree``."""
    last = subprocess.run(
        [os.path.join(venv, 'bin', 'stestr'), 'last', '--subunit'],
        cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        env=_test_env(venv))
    proc = subprocess.run([venv_python(venv), SUBUNIT_RESULTS],
                          input=last.stdout, stdout=subprocess.PIPE,
                          check=True)
    return json.loads(proc.stdout)


def stestr(venv: str, tree: str, test_path: str, selectors: list[str],
           test_env: dict[str, str] | None = None, *,
           concurrency: int = 2, log: str | None = None,
           label: str = 'stestr', no_discover: str | None = None
           ) -> tuple[int, dict | None]:
    """Run the tests of ``selectors`` (all when empty) with stestr.

    The exit status and the per-test results, or ``None`` when stestr
    recorded no run or one without results (it could not load the tests).
    """
    cmd = [os.path.join(venv, 'bin', 'stestr'),
           '--test-path=%s' % test_path, 'run',
           '--concurrency', str(concurrency)]
    if log is None:
        cmd.append('--color')
    if no_discover:
        cmd += ['--no-discover', no_discover]
    else:
        cmd += [selection.stestr_filter(s) for s in selectors]
    if log is None:
        say('stestr --test-path=%s: %s' % (
            test_path, ' '.join(selectors) or no_discover or 'all tests'))
    before = _next_stream(tree)
    rc = _stream(cmd, tree, _test_env(venv, test_env), log, label)
    if _next_stream(tree) in (before, None):
        return rc, None
    return rc, last_results(venv, tree) or None


def totals(rc: int, found: dict | None) -> dict:
    """Counts of a CI run, and its failures with their reasons."""
    if found is None:
        return {'rc': rc or 1, 'passed': 0, 'failed': 0, 'skipped': 0,
                'error': 'stestr recorded no run: the tests did not load'}
    out = dict(results_mod.counts(found), rc=rc)
    out['failures'] = [
        [test_id, results_mod.signature(text)]
        for test_id, (status, _s, text) in sorted(found.items())
        if results_mod.outcome(status) == 'failed']
    return out


def run_tests(venv: str, tree: str, unit: list[str],
              functional: list[str],
              test_env: dict[str, str] | None = None,
              concurrency: int = 2) -> dict:
    results = {}
    for kind, modules in (('unit', unit), ('functional', functional)):
        if modules:
            step('%s tests (%d selectors)' % (kind, len(modules)))
            start = time.monotonic()
            rc, found = stestr(venv, tree, SUITES[kind], modules, test_env,
                               concurrency=concurrency)
            results[kind] = totals(rc, found)
            results[kind]['seconds'] = round(time.monotonic() - start)
    return results


def all_tests(rel: release_mod.Release, tree: str,
              extra: dict[str, str] | None = None
              ) -> list[selection.Selected]:
    """The selection for the whole series, release.ini's and ``extra``."""
    more = {m: 'release.ini' for m in rel.unit + rel.functional}
    more.update(extra or {})
    return release_mod.select(rel, rel.patches, tree, more)


def split(picked: list[selection.Selected]) -> tuple[list[str], list[str]]:
    return ([p.selector for p in picked if p.kind == 'unit'],
            [p.selector for p in picked if p.kind == 'functional'])


def show_selection(picked: list[selection.Selected]) -> None:
    step('tests the rules pick (tools/series/selection.py)')
    for item in picked:
        say('%-10s %-58s %s' % (item.kind, item.selector,
                                selection.describe(item)))


def _failed(results: dict) -> bool:
    return any(r.get('rc') or r.get('failed') or not r.get('passed')
               for r in results.values())


# --- upstream tests ----------------------------------------------------------

def upstream_copies(rel: release_mod.Release, cache: str
                    ) -> dict[str, bytes]:
    """The test files of other releases that ``release.ini`` names.

    By the path each takes in the patched tree.
    """
    files = {}
    for up in rel.upstream:
        sdist = fetch_sdist(up.package, up.version, up.sha256, cache)
        files[up] = upstream_mod.read_files(sdist, up)
        for path in up.paths:
            say('%s %s -> %s' % (up.requirement, path,
                                 upstream_mod.injected_path(path, up)))
    return upstream_mod.plan(files)


def upstream_reasons(rel: release_mod.Release) -> dict[str, str]:
    """Selector -> reason of every upstream copy."""
    reasons = {}
    for up in rel.upstream:
        for path in up.paths:
            module = selection.module_of(upstream_mod.injected_path(path,
                                                                    up))
            reasons[module] = 'upstream %s' % up.requirement
    return reasons


# --- boot --------------------------------------------------------------------

#: Beside a release's virtualenv: what only the boot check needs (the
#: libvirt binding), which the benchmarks also put on the path.
BOOT_SITE = 'boot-site'


def boot_site(rel: release_mod.Release, venv: str, work: str) -> str:
    """A directory with the boot check's own requirements, installed
    with the pins, kept until they change.
    """
    site = os.path.join(work, BOOT_SITE)
    if not rel.boot_requirements:
        return site
    key = ' '.join(rel.boot_requirements)
    stamp = os.path.join(site, '.series-stamp')
    with contextlib.suppress(OSError):
        with open(stamp) as f:
            if f.read() == key:
                return site
    shutil.rmtree(site, ignore_errors=True)
    run([venv_python(venv), '-m', 'pip', 'install', '-q', '--progress-bar',
         'off', '-c', rel.pins, '--target', site,
         *rel.boot_requirements], capture=True)
    with open(stamp, 'w') as f:
        f.write(key)
    return site


def boot(rel: release_mod.Release, venv: str, work: str,
         args: argparse.Namespace) -> int:
    step('boot check on real libvirt: %s' % os.path.relpath(
        rel.boot_script, ROOT))
    site = boot_site(rel, venv, work)
    cmd = [venv_python(venv), rel.boot_script, *rel.boot_arguments,
           '--evidence-lib', os.path.dirname(os.path.abspath(__file__)),
           '--work', os.path.join(work, 'boot')]
    if args.connection:
        cmd += ['--connection', args.connection]
    if args.keep:
        cmd.append('--keep')
    if args.json:
        cmd.append('--json')
    env = dict(os.environ, **TEST_ENV)
    env['PYTHONPATH'] = os.pathsep.join(
        p for p in (site, os.environ.get('PYTHONPATH')) if p)
    # The trees before and after the series, for checks that show both.
    env['SERIES_PRISTINE_TREE'] = os.path.join(work, 'pristine')
    env['SERIES_TREE'] = os.path.join(work, 'git')
    return subprocess.run(cmd, env=env).returncode


# --- full mode ---------------------------------------------------------------

def _pins_text(rel: release_mod.Release) -> str:
    with open(rel.pins, encoding='utf-8') as f:
        return f.read()


def _env_text(rel: release_mod.Release) -> str:
    return json.dumps(dict(TEST_ENV, **rel.test_env), sort_keys=True)


def pristine_key(rel: release_mod.Release, suite: str) -> str:
    """What a pristine run's results depend on.

    The sdist, the pins, what else is installed, the test environment,
    the suite and Python.
    """
    return results_mod.cache_key(
        'pristine', rel.package, rel.version, rel.sha256, _pins_text(rel),
        ' '.join(rel.extra_requirements), ' '.join(rel.extras),
        _env_text(rel), suite, sys.version)


def patched_key(rel: release_mod.Release, suite: str, tree: str,
                copies: dict[str, bytes]) -> str:
    """What a patched run's results depend on.

    As :func:`pristine_key`, with the patched tree instead of the sdist,
    and the upstream files copied into it.
    """
    tree_id = git(tree, 'rev-parse', 'HEAD^{tree}').stdout.strip()
    return results_mod.cache_key(
        'patched', rel.package, rel.version, tree_id, _pins_text(rel),
        ' '.join(rel.extra_requirements), ' '.join(rel.extras),
        _env_text(rel), suite, sys.version,
        json.dumps({path: hashlib.sha256(data).hexdigest()
                    for path, data in copies.items()}, sort_keys=True))


def run_suite(rel: release_mod.Release, venv: str, tree: str, suite: str,
              side: str, logs: str, concurrency: int) -> dict:
    """One whole suite with stestr, as the release's tox.ini runs it."""
    step('%s suite on the %s tree' % (suite, side))
    log = os.path.join(logs, '%s-%s.log' % (suite, side))
    label = '%s %s' % (suite, side)
    date = results_mod.machine()['date']
    start = time.monotonic()
    rc, found = stestr(venv, tree, SUITES[suite], [], rel.test_env,
                       concurrency=concurrency, log=log, label=label)
    if found is None:
        raise StepFailed('%s: stestr recorded no run (exit %d): see %s' % (
            label, rc, log))
    env, module = UNIT_ISOLATED
    if suite == 'unit' and selection.exists(tree, module):
        rc2, more = stestr(venv, tree, SUITES[suite], [],
                           dict(rel.test_env, **env),
                           concurrency=concurrency,
                           log=log[:-len('.log')] + '-isolated.log',
                           label='%s (%s)' % (label, module),
                           no_discover=module)
        found.update(more or {})
        rc = rc or rc2
    seconds = round(time.monotonic() - start)
    c = results_mod.counts(found)
    say('%s: %d tests, %d passed, %d failed, %d skipped in %d s' % (
        label, c['total'], c['passed'], c['failed'], c['skipped'], seconds))
    return {'results': found, 'rc': rc, 'seconds': seconds, 'date': date,
            'log': log, 'machine': results_mod.machine(venv_python(venv))}


def _saved(path: str, key: str, fresh: bool, label: str) -> dict | None:
    """The run saved at ``path`` under ``key``, unless ``fresh``; says
    which run it reuses.
    """
    saved = None if fresh else results_mod.load(path, key)
    if saved is not None:
        saved['reused'] = True
        say('%s: the run of %s, saved in %s' % (label, saved['date'], path))
    return saved


def full(rel: release_mod.Release, args: argparse.Namespace,
         pristine: str, tree: str, work: str, venv: str,
         copies: dict[str, bytes]) -> bool:
    """Whole suites, pristine against patched; True when it failed."""
    here = os.path.join(work, 'full')
    cache = os.path.join(args.work, 'cache', 'results')
    os.makedirs(here, exist_ok=True)
    info = results_mod.machine(venv_python(venv))
    step('full run: %s' % ', '.join(args.full))
    say('%s on %s: %d CPUs, Python %s, %s, load %s' % (
        info['date'], info['host'], info['nproc'], info['python'],
        info['libvirt'] and 'libvirt %s' % info['libvirt'],
        ' '.join(str(x) for x in info['load'])))
    upstream = upstream_mod.modules(copies)
    report = {'release': rel.name, 'package': rel.package,
              'version': rel.version, 'patches': [p.name for p in
                                                  rel.patches],
              'machine': info, 'suites': {}}
    pristine_env = None
    failed = False
    for suite in args.full:
        sides = {}
        key = pristine_key(rel, suite)
        path = os.path.join(cache, '%s-%s-%s-%s.json' % (
            rel.package, rel.version, suite, key[:16]))
        saved = _saved(path, key, args.fresh, '%s pristine' % suite)
        if saved is None:
            if pristine_env is None:
                step('a virtualenv for the pristine tree')
                ptree = os.path.join(here, 'pristine-tree')
                shutil.rmtree(ptree, ignore_errors=True)
                shutil.copytree(pristine, ptree, symlinks=True)
                pvenv = os.path.join(here, 'venv-pristine')
                install(rel, ptree, pvenv)
                pristine_env = ptree, pvenv
            saved = run_suite(rel, pristine_env[1], pristine_env[0], suite,
                              'pristine', here, args.concurrency)
            results_mod.save(path, key, saved)
        sides['pristine'] = saved
        key = patched_key(rel, suite, tree, copies)
        path = os.path.join(here, '%s-patched.json' % suite)
        saved = _saved(path, key, args.fresh, '%s patched' % suite)
        if saved is None:
            prefix = SUITES[suite][len('./'):] + '/'
            mine = {p: d for p, d in copies.items() if p.startswith(prefix)}
            with upstream_mod.injected(tree, mine):
                saved = run_suite(rel, venv, tree, suite, 'patched', here,
                                  args.concurrency)
            results_mod.save(path, key, saved)
        sides['patched'] = saved
        comparison = results_mod.compare(sides['pristine']['results'],
                                         sides['patched']['results'],
                                         tuple(upstream))
        failed = failed or results_mod.failed(comparison)
        report['suites'][suite] = {
            'comparison': comparison,
            **{side: {k: v for k, v in run_.items() if k != 'results'}
               | {'counts': results_mod.counts(run_['results'])}
               for side, run_ in sides.items()}}
        step('%s: pristine against patched' % suite)
        for line in results_mod.summary(suite, sides, comparison):
            say(line)
        # Written after each suite, so that a run stopped in the next one
        # leaves what it found.
        report['failed'] = failed
        report['finished'] = results_mod.machine()['date']
        out = os.path.join(here, 'result.json')
        with open(out + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(report, f, indent=1, sort_keys=True)
        os.replace(out + '.tmp', out)
    step('full run summary')
    say('%s %s %s, series %s: %s' % (
        info['date'], rel.package, rel.version, rel.name,
        'REGRESSIONS' if failed else 'no regression'))
    for suite, part in report['suites'].items():
        c = part['comparison']
        say('%-10s pristine %s, patched %s: %d regressions, %d failing in '
            'both, %d new, %d upstream' % (
                suite, _counts_text(part['pristine']),
                _counts_text(part['patched']), len(c['regressions']),
                len(c['known_failures']), len(c['new']), len(c['upstream'])))
    say('result: %s' % out)
    return failed


def _counts_text(side: dict) -> str:
    c = side['counts']
    return '%d/%d passed in %d s%s' % (
        c['passed'], c['total'], side.get('seconds', 0),
        ' (saved)' if side.get('reused') else '')


# --- modes -------------------------------------------------------------------

def per_patch(rel: release_mod.Release, pristine: str, work: str,
              venv: str, concurrency: int) -> list[dict]:
    """Apply the patches one by one; test what the rules pick for each."""
    tree = os.path.join(work, 'git')
    make_git_tree(pristine, tree, rel.version)
    install(rel, tree, venv)
    baseline, _ = split(all_tests(rel, tree))
    rows = []
    step('before the series: the unit tests of the whole selection')
    rows.append({'patch': '(pristine)',
                 'results': run_tests(venv, tree, baseline, [],
                                      rel.test_env, concurrency)})
    for patch in rel.patches:
        step('apply %s' % patch.name)
        git_am(tree, patch)
        quilt = os.path.join(work, 'quilt')
        if patch is rel.patches[0]:
            shutil.rmtree(quilt, ignore_errors=True)
            shutil.copytree(pristine, quilt, symlinks=True)
        quilt_push(quilt, patch)
        picked = release_mod.select(rel, (patch,), tree)
        show_selection(picked)
        unit, functional = split(picked)
        rows.append({'patch': patch.name,
                     'results': run_tests(venv, tree, unit, functional,
                                          rel.test_env, concurrency)})
    return rows


def summary_line(name: str, results: dict) -> str:
    parts = []
    for kind, r in results.items():
        parts.append('%s %d passed, %d failed, %d skipped in %ds' % (
            kind, r.get('passed', 0), r.get('failed', 0),
            r.get('skipped', 0), r.get('seconds', 0)))
    return '%-58s %s' % (name, '; '.join(parts) or 'no tests')


def failure_lines(results: dict) -> list[str]:
    lines = []
    for kind, r in results.items():
        if r.get('error'):
            lines.append('  %s: %s' % (kind, r['error']))
        for test_id, reason in r.get('failures', ()):
            lines.append('  FAILED %s: %s' % (test_id, reason))
    return lines


def ci(rel: release_mod.Release, args: argparse.Namespace, tree: str,
       venv: str, copies: dict[str, bytes]) -> dict:
    """The CI selection, with the upstream files in the tree."""
    with upstream_mod.injected(tree, copies):
        picked = all_tests(rel, tree, upstream_reasons(rel))
        show_selection(picked)
        unit, functional = split(picked)
        return run_tests(venv, tree, unit, functional, rel.test_env,
                         args.concurrency)


def _suites(value: str) -> list[str]:
    names = [v for v in value.replace(',', ' ').split() if v]
    bad = [n for n in names if n not in SUITES]
    if bad or not names:
        raise argparse.ArgumentTypeError(
            'suites are %s, not %r' % (' and '.join(SUITES), value))
    return [n for n in SUITES if n in names]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog='python3 -m tools.series',
        description=__doc__.split('\n\n')[0])
    parser.add_argument('release', help='a directory name under series/')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--per-patch', action='store_true',
                      help='apply the patches one by one and run the '
                           'tests the rules pick for each after each (and '
                           'the unit tests of the whole selection on the '
                           'pristine tree first); no boot check')
    mode.add_argument('--full', nargs='?', type=_suites, metavar='SUITES',
                      const=list(SUITES),
                      help='run the whole unit and functional suites on '
                           'the pristine and on the patched tree and '
                           'compare them test by test; SUITES limits it '
                           'to "unit" or "functional"')
    mode.add_argument('--no-tests', action='store_true',
                      help='skip the unit and functional tests')
    parser.add_argument('--no-boot', action='store_true',
                        help='skip the boot check')
    parser.add_argument('--fresh', action='store_true',
                        help='with --full: run again what a finished run '
                             'saved')
    parser.add_argument('--concurrency', type=int, default=2, metavar='N',
                        help='stestr workers (default: %(default)s)')
    parser.add_argument('--work', default=DEFAULT_WORK, metavar='DIR',
                        help='downloads, trees and the virtualenv '
                             '(default: %(default)s)')
    boot = parser.add_argument_group('boot check options')
    boot.add_argument('--connection', metavar='URI',
                      help='libvirt URI of the boot check (default: '
                           'qemu:///embed with a root of its own)')
    boot.add_argument('--keep', action='store_true',
                      help='leave the guest running for inspection')
    boot.add_argument('--json', action='store_true',
                      help='print the boot evidence as JSON')
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    try:
        rel = release_mod.load(ROOT, args.release)
    except release_mod.SeriesError as ex:
        say('error: %s' % ex)
        return 2
    say('series %s: %s %s, %d patches' % (
        rel.name, rel.package, rel.version, len(rel.patches)))
    work = os.path.join(args.work, rel.name)
    venv = os.path.join(work, 'venv')
    cache = os.path.join(args.work, 'cache')
    failed = False
    try:
        sdist = fetch(rel, cache)
        pristine = unpack(sdist, os.path.join(work, 'pristine'))
        if args.per_patch:
            rows = per_patch(rel, pristine, work, venv, args.concurrency)
            step('per-patch results')
            for row in rows:
                say(summary_line(row['patch'], row['results']))
                for line in failure_lines(row['results']):
                    say(line)
                failed = failed or (row['patch'] != '(pristine)' and
                                    _failed(row['results']))
        else:
            tree = apply_both(rel, pristine, work)
            install(rel, tree, venv)
            results = {}
            if args.full:
                copies = upstream_copies(rel, cache)
                failed = full(rel, args, pristine, tree, work, venv, copies)
            elif not args.no_tests:
                copies = upstream_copies(rel, cache)
                results = ci(rel, args, tree, venv, copies)
                failed = _failed(results)
            boot_rc = None
            if not args.no_boot and rel.boot_script:
                boot_rc = boot(rel, venv, work, args)
                failed = failed or boot_rc != 0
            step('summary')
            if not args.full:
                say(summary_line('series %s' % rel.name, results))
                for line in failure_lines(results):
                    say(line)
            if boot_rc is not None:
                say('boot check: %s' % ('passed' if boot_rc == 0
                                        else 'FAILED (exit %d)' % boot_rc))
            with open(os.path.join(work, 'results.json'), 'w') as f:
                json.dump({'tests': results, 'boot_rc': boot_rc}, f)
    except (StepFailed, release_mod.SeriesError) as ex:
        say('FAILED: %s' % ex)
        failed = True
    say('series %s %s in %.0f s' % (rel.name, 'FAILED' if failed else 'OK',
                                    time.monotonic() - started))
    return 1 if failed else 0
