"""Other Novas to compare with this tree, each in a virtualenv of its own.

A side is a label and the Python of a virtualenv holding a Nova release:
upstream Nova 34.0.0 (``--upstream-venv``, created by
``benchmarks/upstream-venv.sh``), and any Nova patched by a series
(``--side LABEL=VENV``, repeatable, or ``$NOVA_BENCH_SIDES`` as
``LABEL=VENV,LABEL=VENV``): a series' runner builds such a virtualenv, and
it joins every comparison the upstream side is in, with no change here.
The virtualenvs ``tools/series`` builds (``SERIES_DIR/RELEASE/venv``,
``.tox/series`` by default) join as ``patched RELEASE`` when they exist.
A side whose virtualenv is missing, or whose Nova cannot run the
pipeline (no ``hw_firmware_stateless``, no libvirt binding), is reported
as skipped with the reason.

``SideProcess`` runs ``benchmarks/side_worker.py`` with that Python and
talks to it in JSON lines.
"""

import glob
import json
import os
import subprocess
import typing as ty

import benchmarks
from nova.virt.libvirt import host as libvirt_host
from tools.series import run as series_run

WORKER = os.path.join(os.path.dirname(__file__), 'side_worker.py')
DEFAULT_UPSTREAM_VENV = '/tmp/upstream-nova'
UPSTREAM_LABEL = 'upstream 34.0.0'


def venv_python(venv: ty.Optional[str]) -> ty.Optional[str]:
    """The Python of a virtualenv, or None when there is none."""
    if not venv:
        return None
    python = os.path.join(venv, 'bin', 'python')
    return python if os.access(python, os.X_OK) else None


def series_venvs(series_dir: ty.Optional[str]
                 ) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(patched RELEASE, VENV, PATH)`` of each series virtualenv built.

    The series' runner installs the libvirt binding beside the virtualenv,
    for its boot check only (the release's tests run without it); PATH
    names that directory when it exists, for the side's worker.
    """
    if not series_dir:
        return []
    found = []
    for python in sorted(glob.glob(os.path.join(series_dir, '*', 'venv',
                                                'bin', 'python'))):
        venv = os.path.dirname(os.path.dirname(python))
        work = os.path.dirname(venv)
        site = os.path.join(os.path.abspath(work), series_run.BOOT_SITE)
        path = (site,) if os.path.isdir(site) else ()
        found.append(('patched %s' % os.path.basename(work), venv, path))
    return found


def parse_sides(upstream_venv: ty.Optional[str], extra: ty.Iterable[str],
                series_dir: ty.Optional[str] = None
                ) -> tuple[benchmarks.Side, ...]:
    """Upstream first, each ``LABEL=VENV`` in order, then the series'."""
    specs = [(UPSTREAM_LABEL, upstream_venv, ())]
    for spec in extra:
        label, sep, venv = spec.partition('=')
        if not sep or not label.strip() or not venv.strip():
            raise ValueError('a side is LABEL=VENV, not %r' % spec)
        specs.append((label.strip(), venv.strip(), ()))
    labels = {spec[0] for spec in specs}
    specs += [spec for spec in series_venvs(series_dir)
              if spec[0] not in labels]
    sides = []
    for label, venv, path in specs:
        venv = os.path.abspath(venv) if venv else venv
        python = venv_python(venv)
        why = '' if python else (
            'no virtualenv at %s (benchmarks/upstream-venv.sh creates '
            "upstream's; a series' runner creates a patched one)" % venv)
        sides.append(benchmarks.Side(label, python, why, path))
    return tuple(sides)


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
