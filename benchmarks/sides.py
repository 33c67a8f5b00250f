"""Other Novas to compare with this tree, each in a virtualenv of its own.

A side is a label and the Python of a virtualenv holding a Nova release:
upstream Nova 34.0.0 (``--upstream-venv``, created by
``benchmarks/upstream-venv.sh``), every Nova patched by a series of this
tree (``series/RELEASE/release.ini``), labelled ``patched RELEASE``, and
any other Nova named on the command line (``--side LABEL=VENV``,
repeatable, or ``$NOVA_BENCH_SIDES`` as ``LABEL=VENV,LABEL=VENV``).

A patched Nova is the virtualenv the series' runner builds
(``SERIES_DIR/RELEASE/venv``, ``.tox/series`` by default), with the
libvirt binding the runner installs beside it for its boot check
(``SERIES_DIR/RELEASE/boot-site``) on its path. ``prepare`` builds what
is missing with the runner itself (``python3 -m tools.series RELEASE
--no-tests --no-boot``, then the runner's boot site) and upstream's
virtualenv with its script, and rebuilds a series' tree that the runner
made from older patches. A side that cannot be measured (not built and
building not asked for or failed, or its Nova cannot run the pipeline:
no ``hw_firmware_stateless``, no libvirt binding) is reported as skipped,
with the reason and the command that builds it: every side known here
appears in the results, measured or not.

``SideProcess`` runs ``benchmarks/side_worker.py`` with that Python and
talks to it in JSON lines.
"""

import glob
import json
import os
import shlex
import subprocess
import sys
import time
import typing as ty

import benchmarks
from nova.virt.libvirt import host as libvirt_host
from tools.series import release as release_mod
from tools.series import run as series_run

WORKER = os.path.join(os.path.dirname(__file__), 'side_worker.py')
UPSTREAM_SCRIPT = os.path.join(os.path.dirname(__file__), 'upstream-venv.sh')
DEFAULT_UPSTREAM_VENV = '/tmp/upstream-nova'
UPSTREAM_LABEL = 'upstream 34.0.0'
#: Where the series' runner works unless told otherwise.
DEFAULT_SERIES_DIR = series_run.DEFAULT_WORK
#: The committer the runner gives the commits it makes with ``git am``;
#: a commit made by hand in its tree has another.
RUNNER_COMMITTER = series_run.GIT_ENV['GIT_COMMITTER_EMAIL']


def venv_python(venv: ty.Optional[str]) -> ty.Optional[str]:
    """The Python of a virtualenv, or None when there is none."""
    if not venv:
        return None
    python = os.path.join(venv, 'bin', 'python')
    return python if os.access(python, os.X_OK) else None


def _command(argv: ty.Sequence[str]) -> str:
    return ' '.join(shlex.quote(arg) for arg in argv)


def upstream_build(venv: str) -> list[str]:
    """The command that creates upstream's virtualenv at ``venv``."""
    return ['bash', os.path.relpath(UPSTREAM_SCRIPT, series_run.ROOT), venv]


def series_build(release: str, series_dir: str,
                 boot: bool = False) -> list[str]:
    """The runner's command that builds ``patched RELEASE``.

    With ``boot`` it runs the boot check too, which installs the libvirt
    binding beside the virtualenv.
    """
    argv = ['python3', '-m', 'tools.series', release, '--no-tests']
    if not boot:
        argv.append('--no-boot')
    if os.path.abspath(series_dir) != os.path.abspath(DEFAULT_SERIES_DIR):
        argv += ['--work', series_dir]
    return argv


def known_releases(root: str = series_run.ROOT) -> list[str]:
    """The releases this tree carries a series for, in order."""
    inis = glob.glob(os.path.join(root, release_mod.SERIES_DIR, '*',
                                  'release.ini'))
    return sorted(os.path.basename(os.path.dirname(ini)) for ini in inis)


def _series_side(release: str, series_dir: str) -> benchmarks.Side:
    venv = os.path.join(os.path.abspath(series_dir), release, 'venv')
    python = venv_python(venv)
    why = '' if python else (
        'not built (no virtualenv at %s); build it with: %s' % (
            venv, _command(series_build(release, series_dir))))
    return benchmarks.Side('patched %s' % release, python, why,
                           release=release)


def parse_sides(upstream_venv: ty.Optional[str], extra: ty.Iterable[str],
                series_dir: ty.Optional[str] = None
                ) -> tuple[benchmarks.Side, ...]:
    """Upstream first, each ``LABEL=VENV`` in order, then every series'.

    Nothing is built here (see ``prepare``): a side whose virtualenv is
    missing is returned unavailable, saying what builds it.
    """
    sides = []
    venv = os.path.abspath(upstream_venv or DEFAULT_UPSTREAM_VENV)
    python = venv_python(venv)
    sides.append(benchmarks.Side(
        UPSTREAM_LABEL, python, '' if python else
        'not built (no virtualenv at %s); build it with: %s' % (
            venv, _command(upstream_build(venv)))))
    for spec in extra:
        label, sep, venv = spec.partition('=')
        if not sep or not label.strip() or not venv.strip():
            raise ValueError('a side is LABEL=VENV, not %r' % spec)
        venv = os.path.abspath(venv.strip())
        python = venv_python(venv)
        sides.append(benchmarks.Side(
            label.strip(), python,
            '' if python else 'no virtualenv at %s' % venv))
    labels = {side.label for side in sides}
    for release in known_releases():
        side = _series_side(release, series_dir or DEFAULT_SERIES_DIR)
        if side.label not in labels:
            sides.append(side)
    return tuple(sides)


# --- building what is missing ------------------------------------------------

def _run_logged(argv: list[str], log_path: str,
                say: ty.Callable[[str], None]) -> int:
    say('  %s (output: %s)' % (_command(argv), log_path))
    os.makedirs(os.path.dirname(log_path), exist_ok=True)
    start = time.monotonic()
    with open(log_path, 'w') as log:
        rc = subprocess.run(argv, cwd=series_run.ROOT, stdout=log,
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL).returncode
    say('  exit %d in %.0f s' % (rc, time.monotonic() - start))
    return rc


def _patch_ids(patch_text: str) -> list[str]:
    proc = subprocess.run(['git', 'patch-id', '--stable'], input=patch_text,
                          capture_output=True, text=True, check=True)
    return sorted(line.split()[0] for line in proc.stdout.splitlines()
                  if line.strip())


def tree_state(rel: release_mod.Release, tree: str) -> str:
    """How the runner's git tree of ``rel`` stands to ``series/RELEASE``.

    ``'current'``: its commits since ``pristine`` are the series' patches
    (by ``git patch-id``). ``'old'``: they are not, and the runner made
    them all (an earlier state of the series): building again loses
    nothing. ``'edited'``: a commit or a change in it was made by hand
    (a series being edited there, as doc/source/admin/patch-series.rst
    describes): it is measured as it is, and never rebuilt here.
    """
    def git(*args: str) -> str:
        return subprocess.run(['git', '-C', tree, *args], capture_output=True,
                              text=True, check=True).stdout

    texts = []
    for patch in rel.patches:
        with open(patch.path, encoding='utf-8') as f:
            texts.append(f.read())
    series_ids = _patch_ids(''.join(texts))
    tree_ids = _patch_ids(git('log', '-p', '--no-color', 'pristine..HEAD'))
    if tree_ids == series_ids and not git('status', '--porcelain',
                                          '--untracked-files=no'):
        return 'current'
    committers = set(git('log', '--format=%ce', 'pristine..HEAD').split())
    if (committers <= {RUNNER_COMMITTER} and
            not git('status', '--porcelain', '--untracked-files=no')):
        return 'old'
    return 'edited'


def _prepare_series(side: benchmarks.Side, series_dir: str, build: bool,
                    say: ty.Callable[[str], None]) -> benchmarks.Side:
    release = side.release

    def unavailable(why: str) -> benchmarks.Side:
        return benchmarks.Side(side.label, None, why, release=release)

    command = _command(series_build(release, series_dir))
    try:
        rel = release_mod.load(series_run.ROOT, release)
    except release_mod.SeriesError as ex:
        return unavailable('series/%s cannot be built: %s' % (release, ex))
    work = os.path.join(os.path.abspath(series_dir), release)
    venv, tree = os.path.join(work, 'venv'), os.path.join(work, 'git')
    if venv_python(venv) is None and os.path.isdir(tree):
        # The runner's first step replaces the tree, where a series may
        # be under edit (its install failed, say): not done here.
        return unavailable(
            'no virtualenv at %s, and building it would replace the tree '
            'at %s; build it with: %s' % (venv, tree, command))
    note = ''
    state = 'missing'
    if venv_python(venv) is not None:
        try:
            state = tree_state(rel, tree)
        except (OSError, subprocess.CalledProcessError) as ex:
            state = 'edited'
            note = 'its tree %s could not be compared with series/%s (%s)' % (
                tree, release, ' '.join(str(ex).split())[:100])
    if state == 'edited' and not note:
        note = ('its tree %s is not series/%s as committed (edited there): '
                'measured as it is' % (tree, release))
    if state in ('missing', 'old'):
        if not build:
            return unavailable(side.unavailable if state == 'missing' else (
                'built from an earlier state of series/%s; build it again '
                'with: %s' % (release, command)))
        say('Building %s (%s):' % (side.label, 'not built' if
                                   state == 'missing' else
                                   'built from an earlier series'))
        argv = series_build(release, series_dir)
        argv[0] = sys.executable
        log = os.path.join(work, 'bench-build.log')
        rc = _run_logged(argv, log, say)
        if rc != 0 or venv_python(venv) is None:
            return unavailable(
                'building failed (exit %d, output in %s); build it with: '
                '%s' % (rc, log, command))
    site = os.path.join(work, series_run.BOOT_SITE)
    if build:
        if rel.boot_requirements and not os.path.isfile(
                os.path.join(site, '.series-stamp')):
            say('Installing the libvirt binding of %s in %s (the runner\'s '
                'boot site)' % (side.label, site))
        try:
            # The runner's own step (for its boot check), kept until its
            # requirements change.
            site = series_run.boot_site(rel, venv, work)
        except series_run.StepFailed as ex:
            return unavailable(
                'installing the libvirt binding beside %s failed (%s); '
                'install it with: %s' % (venv, ex, _command(
                    series_build(release, series_dir, boot=True))))
    elif not os.path.isdir(site):
        return unavailable(
            'no libvirt binding beside %s (the runner installs it in %s for '
            'its boot check); install it with: %s' % (
                venv, site, _command(series_build(release, series_dir,
                                                  boot=True))))
    return benchmarks.Side(side.label, venv_python(venv), '', (site,),
                           release=release, note=note)


def _prepare_upstream(side: benchmarks.Side, venv: str, build: bool,
                      say: ty.Callable[[str], None]) -> benchmarks.Side:
    if side.python or not build:
        return side
    say('Building %s (not built):' % side.label)
    log = os.path.join(os.path.dirname(os.path.abspath(venv)),
                       'upstream-nova-build.log')
    rc = _run_logged(upstream_build(venv), log, say)
    python = venv_python(venv)
    if python is None or rc != 0:
        return benchmarks.Side(side.label, None, (
            'building failed (exit %d, output in %s); build it with: %s' % (
                rc, log, _command(upstream_build(venv)))))
    return benchmarks.Side(side.label, python)


def prepare(sides: ty.Sequence[benchmarks.Side], upstream_venv: str,
            series_dir: ty.Optional[str], build: bool = True,
            say: ty.Callable[[str], None] = print
            ) -> tuple[benchmarks.Side, ...]:
    """Every side ready to measure, or unavailable with what builds it.

    With ``build``, a missing virtualenv is built (upstream's with its
    script, a series' with its runner) and a series' tree the runner made
    from older patches is built again; without it they are reported
    unavailable, naming the command.
    """
    ready = []
    for side in sides:
        if side.release is not None:
            side = _prepare_series(side, series_dir or DEFAULT_SERIES_DIR,
                                   build, say)
        elif side.label == UPSTREAM_LABEL:
            side = _prepare_upstream(
                side, os.path.abspath(upstream_venv or
                                      DEFAULT_UPSTREAM_VENV), build, say)
        ready.append(side)
    return tuple(ready)


class SideError(RuntimeError):
    pass


class SideProcess:
    """A side's worker process; requests in, answers out, JSON lines."""

    def __init__(self, side: benchmarks.Side, workdir: str) -> None:
        self.side = side
        env = {k: v for k, v in os.environ.items()
               if k not in ('PYTHONPATH', 'VIRTUAL_ENV')}
        if side.path:
            env['PYTHONPATH'] = os.pathsep.join(side.path)
        slug = ''.join(c if c.isalnum() else '-' for c in side.label)
        self.workdir = os.path.join(workdir, 'side-%s' % slug)
        os.makedirs(self.workdir, exist_ok=True)
        self._stderr = open(os.path.join(self.workdir, 'worker.log'), 'w')
        self._proc = subprocess.Popen(
            [side.python, WORKER], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=self._stderr, cwd=self.workdir,
            env=env, text=True)
        self.hello = self._read()
        if self.hello['test_modules']:
            self.close()
            raise SideError('loaded Nova test code: %s' %
                            ', '.join(self.hello['test_modules']))
        if not self.hello['libvirt']:
            self.close()
            raise SideError('Nova %s: no libvirt binding (libvirt-python) '
                            'in its virtualenv' % self.hello['version'])
        if not self.hello['stateless_field']:
            self.close()
            raise SideError('Nova %s has no hw_firmware_stateless' %
                            self.hello['version'])

    def _read(self) -> dict:
        line = self._proc.stdout.readline()
        if not line:
            raise SideError('worker exited (see %s)' % self._stderr.name)
        answer = json.loads(line)
        if 'error' in answer:
            raise SideError(answer['error'])
        return answer

    def call(self, op: str, **kwargs: ty.Any) -> dict:
        self._proc.stdin.write(json.dumps(dict(op=op, **kwargs)) + '\n')
        self._proc.stdin.flush()
        return self._read()

    def embed_root(self) -> str:
        """A fresh root for the worker's own embedded QEMU driver.

        libvirt allows one process per root, so the worker gets its own,
        with the ``qemu.conf`` an embedded driver needs here (the one this
        tree writes for itself: files for QEMU's output, as root).
        """
        root = os.path.join(self.workdir, 'libvirt')
        os.makedirs(root, exist_ok=True)
        libvirt_host.prepare_embed_root('qemu:///embed?root=%s' % root,
                                        root)
        return root

    def close(self) -> None:
        try:
            self._proc.stdin.close()
            self._proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def start(side: benchmarks.Side,
          workdir: str) -> tuple[ty.Optional[SideProcess], str]:
    """A running worker for ``side``, or None and why not."""
    if side.unavailable:
        return None, side.unavailable
    try:
        return SideProcess(side, workdir), ''
    except (OSError, SideError, ValueError) as ex:
        return None, ' '.join(str(ex).split())[:300]
