"""The virtualenvs of a cloud: the patched Nova and the services of its
cycle, built with ``tools.series``'s own steps.

The patched Nova is made exactly as ``tox -e series-RELEASE`` makes it
(fetch the sdist, check its sha256, apply the series with ``git am`` and
``patch -p1 --fuzz=0``, install with the pins) into ``.tox/cloud/RELEASE``,
with keystone, glance, placement, neutron and the clients added to the
same install, at the versions of :mod:`tools.cloud.releases`.
"""

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sys
import time
import typing as ty

from tools.cloud import releases
from tools.series import release as release_mod
from tools.series import run as series_run


def placement_pins(pins: str, dest: str) -> str:
    """The pins less os-traits, for a placement with a newer one."""
    with open(pins, encoding='utf-8') as f:
        lines = [line for line in f
                 if not line.lower().startswith(('os-traits=', 'os_traits='))]
    with open(dest, 'w', encoding='utf-8') as f:
        f.writelines(lines)
    return dest


@dataclasses.dataclass(frozen=True)
class Built:
    release: release_mod.Release
    tree: str
    venv: str
    placement_venv: str


def venv_key(pins: str, parts: ty.Sequence[str]) -> str:
    """What a virtualenv built with ``pins`` and ``parts`` depends on."""
    key = hashlib.sha256()
    with open(pins, 'rb') as f:
        key.update(f.read())
    key.update(' '.join(parts).encode())
    key.update(sys.version.encode())
    return key.hexdigest()


def is_current(stamp: str, key: str) -> bool:
    """Whether the stamp a finished build wrote records ``key``."""
    with contextlib.suppress(OSError):
        with open(stamp) as f:
            return f.read() == key
    return False


def build_key(rel: release_mod.Release, cloud: releases.Cloud) -> str:
    """What the patched tree and its virtualenvs are made from."""
    key = hashlib.sha256()
    paths = [os.path.join(rel.directory, 'release.ini'), rel.pins,
             rel.series_file] + [p.path for p in rel.patches]
    for path in paths:
        with open(path, 'rb') as f:
            key.update(f.read())
    key.update(repr((cloud.services, cloud.undeclared,
                     cloud.placement_os_traits,
                     releases.COMMON_REQUIREMENTS)).encode())
    key.update(sys.version.encode())
    return key.hexdigest()


def build(rel: release_mod.Release, cloud: releases.Cloud, work: str,
          say: ty.Callable[[str], None]) -> Built:
    """The patched tree and the virtualenvs, made anew when the series,
    the pins or the services changed since the last build.
    """
    key = build_key(rel, cloud)
    stamp = os.path.join(work, 'build-stamp')
    tree = os.path.join(work, 'git')
    venv = os.path.join(work, 'venv')
    placement_venv = (os.path.join(work, 'placement-venv')
                      if cloud.placement_os_traits else venv)
    with contextlib.suppress(OSError):
        with open(stamp) as f:
            if f.read() == key and all(os.path.isdir(d) for d in (
                    tree, venv, placement_venv)):
                say('reusing %s and its virtualenvs: built from the same '
                    'series, pins and services' % tree)
                return Built(rel, tree, venv, placement_venv)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(stamp)
    built = _build(rel, cloud, work, say)
    with open(stamp, 'w') as f:
        f.write(key)
    return built


def _build(rel: release_mod.Release, cloud: releases.Cloud, work: str,
           say: ty.Callable[[str], None]) -> Built:
    sdist = series_run.fetch(rel, os.path.join(series_run.DEFAULT_WORK,
                                               'cache'))
    pristine = series_run.unpack(sdist, os.path.join(work, 'pristine'))
    tree = series_run.apply_both(rel, pristine, work)
    venv = os.path.join(work, 'venv')
    # The services and clients join nova's own install, so that pip
    # resolves them all together against the release's pins.
    with_services = dataclasses.replace(
        rel, extra_requirements=tuple(rel.extra_requirements) +
        tuple(cloud.services) + cloud.undeclared +
        releases.COMMON_REQUIREMENTS)
    series_run.install(with_services, tree, venv)
    placement_venv = venv
    if cloud.placement_os_traits:
        placement_venv = os.path.join(work, 'placement-venv')
        build_placement(rel, cloud, work, placement_venv, say)
    return Built(rel, tree, venv, placement_venv)


def build_placement(rel: release_mod.Release, cloud: releases.Cloud,
                    work: str, venv: str,
                    say: ty.Callable[[str], None]) -> None:
    series_run.step('install placement with os-traits %s (own virtualenv)'
                    % cloud.placement_os_traits)
    say(cloud.placement_note)
    pins = placement_pins(rel.pins, os.path.join(work, 'placement-pins.txt'))
    requirements = [cloud.placement_requirement,
                    'os-traits==%s' % cloud.placement_os_traits,
                    'PyMySQL', 'gunicorn']
    key = venv_key(pins, requirements)
    stamp = os.path.join(venv, '.cloud-stamp')
    if is_current(stamp, key):
        say('reusing %s' % venv)
        return
    start = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    series_run.run([sys.executable, '-m', 'venv', venv])
    series_run.run([series_run.venv_python(venv), '-m', 'pip', 'install',
                    '-q', '--no-compile', '--progress-bar', 'off',
                    '-c', pins, *requirements], capture=True)
    with open(stamp, 'w') as f:
        f.write(key)
    say('installed in %.0f s' % (time.monotonic() - start))


def data_file(venv: str, tree: str | None, *relative: str) -> str:
    """A file a package installs under ``VENV/etc`` (or, for the
    editable Nova, keeps in its tree's ``etc``).
    """
    candidates = [os.path.join(venv, 'etc', *relative)]
    if tree:
        candidates.append(os.path.join(tree, 'etc', *relative))
    for path in candidates:
        if os.path.isfile(path):
            return path
    raise FileNotFoundError('none of %s' % ', '.join(candidates))


def build_unpatched(rel: release_mod.Release, work: str,
                    say: ty.Callable[[str], None]) -> str:
    """A virtualenv of the release's Nova as published, for a compute
    not yet patched: its sdist (sha256 checked) with the release's pins
    and the libvirt binding, nothing else. Reused while the sdist, the
    pins and the Python are the same.
    """
    venv = os.path.join(work, 'venv-unpatched')
    sdist = series_run.fetch(rel, os.path.join(series_run.DEFAULT_WORK,
                                               'cache'))
    requirements = [sdist, 'libvirt-python']
    key = venv_key(rel.pins, [rel.sha256] + requirements[1:])
    stamp = os.path.join(venv, '.cloud-stamp')
    if is_current(stamp, key):
        say('reusing %s' % venv)
        return venv
    series_run.step('install nova %s as published (own virtualenv)' %
                    rel.version)
    start = time.monotonic()
    shutil.rmtree(venv, ignore_errors=True)
    series_run.run([sys.executable, '-m', 'venv', venv])
    series_run.run([series_run.venv_python(venv), '-m', 'pip', 'install',
                    '-q', '--no-compile', '--progress-bar', 'off',
                    '-c', rel.pins, *requirements],
                   env=dict(series_run.PBR_ENV, PBR_VERSION=rel.version),
                   capture=True)
    with open(stamp, 'w') as f:
        f.write(key)
    say('installed in %.0f s' % (time.monotonic() - start))
    return venv
