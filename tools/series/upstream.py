"""Another release's test files, run unchanged on a patched tree.

A backport behaves as the release it backports from, so that release's
own tests of the feature should pass on it as they are. ``[tests]
upstream`` in ``release.ini`` names them (see ``release.py``); the runner
fetches that sdist, checks its sha256, and copies each file into the
patched tree beside where it lives upstream, under a name of its own:
``test_x.py`` of ``nova==30.3.0`` becomes ``test_x_from_nova_30_3_0.py``.
The series may carry a test at the same path as upstream's; the new name
keeps both. The copies live only while the tests run: the comparison of
the ``git am`` and ``patch`` trees never sees them, and they are removed
afterwards.
"""

import contextlib
import os
import re
import tarfile

from tools.series import release as release_mod
from tools.series import selection


def injected_path(path: str, upstream: release_mod.Upstream) -> str:
    """Where the copy of ``path`` from ``upstream`` goes in the tree."""
    directory, base = os.path.split(path)
    stem = base[:-len('.py')]
    origin = re.sub(r'\W+', '_', '%s_%s' % (upstream.package,
                                           upstream.version))
    return os.path.join(directory, '%s_from_%s.py' % (stem, origin))


def read_files(sdist: str, upstream: release_mod.Upstream
               ) -> dict[str, bytes]:
    """The named files' contents in the sdist, by their path upstream."""
    found = {}
    with tarfile.open(sdist) as tar:
        tops = {m.name.split('/', 1)[0] for m in tar.getmembers()}
        if len(tops) != 1:
            raise release_mod.SeriesError(
                '%s does not hold one directory' % os.path.basename(sdist))
        (top,) = tops
        for path in upstream.paths:
            try:
                member = tar.getmember('%s/%s' % (top, path))
            except KeyError:
                raise release_mod.SeriesError(
                    '%s has no %s' % (upstream.sdist_name, path))
            f = tar.extractfile(member)
            if f is None:
                raise release_mod.SeriesError(
                    '%s: %s is not a file' % (upstream.sdist_name, path))
            found[path] = f.read()
    return found


def plan(files: dict[release_mod.Upstream, dict[str, bytes]]
         ) -> dict[str, bytes]:
    """Tree path -> content of every copy, refusing two at one path."""
    copies: dict[str, bytes] = {}
    for upstream, contents in files.items():
        for path, data in contents.items():
            target = injected_path(path, upstream)
            if target in copies:
                raise release_mod.SeriesError(
                    'two upstream files would be copied to %s' % target)
            copies[target] = data
    return copies


def modules(copies: dict[str, bytes]) -> list[str]:
    """The dotted module names of the copies, as stestr ids start."""
    return [selection.module_of(path) for path in sorted(copies)]


@contextlib.contextmanager
def injected(tree: str, copies: dict[str, bytes]):
    """Write the copies into ``tree`` for the ``with`` block only.

    A copy never replaces a file of the tree, and goes only into a test
    package that exists there.
    """
    written = []
    try:
        for path, data in sorted(copies.items()):
            full = os.path.join(tree, path)
            package = os.path.dirname(full)
            if not os.path.isfile(os.path.join(package, '__init__.py')):
                raise release_mod.SeriesError(
                    '%s: no test package %s in the tree' % (
                        path, os.path.dirname(path)))
            if os.path.lexists(full):
                raise release_mod.SeriesError(
                    '%s already exists in the tree' % path)
            with open(full, 'xb') as f:
                written.append(full)
                f.write(data)
        yield sorted(copies)
    finally:
        for full in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(full)
