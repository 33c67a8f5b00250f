"""What one release's series directory holds.

``series/RELEASE/`` has:

``series``
    the patch file names in order, one a line, as quilt reads them
    (``#`` starts a comment).
``NNNN-*.patch``
    the patches, in ``git format-patch`` form.
``release.ini``
    the release, its sdist and what proves the series on it::

        [release]
        package = nova
        version = 29.4.0
        sha256 = <sha256 of the sdist on PyPI>
        pins = upper-constraints.txt      ; relative to the directory
        extra-requirements = openstack-placement==11.0.0

        [tests]
        ; modules run besides those the selection rules pick
        unit = nova.tests.unit.objects.test_objects
        functional =
        ; environment the release's tests need (its tox.ini's setenv)
        env = OS_NOVA_DISABLE_EVENTLET_PATCHING=False
        ; the extras its tox.ini installs for the unit tests
        extras = zvm vmware
        ; test files of another release run unchanged on the patched
        ; tree: one sdist a line, with its sha256 and the files
        upstream =
            nova==30.3.0 <sha256> nova/tests/functional/libvirt/test_x.py
        ; source file -> more test modules touching it tells to run
        [tests:map]
        nova/objects/image_meta.py = nova.tests.unit.objects.test_objects

        [boot]
        script = boot_check.py            ; run with the venv's python
        requirements = libvirt-python     ; for it only (pip --target)
        arguments = --architecture aarch64 ; given to it by the runner

The tests a patch runs in CI are chosen from the files and lines it changes
by the rules of ``tools/series/selection.py``.
"""

import configparser
import dataclasses
import os
import re

from tools.series import selection

#: Where series live, relative to the repository root.
SERIES_DIR = 'series'

_DIFF_FILE = re.compile(r'^diff --git a/(\S+) b/(\S+)$', re.M)
_HUNK = re.compile(r'^@@ -\d+(?:,(\d+))? \+\d+(?:,(\d+))? @@')


class SeriesError(Exception):
    """The series directory is incomplete or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Upstream:
    """Test files of another release's sdist, run on the patched tree."""

    package: str
    version: str
    sha256: str
    paths: tuple[str, ...]

    @property
    def sdist_name(self) -> str:
        return '%s-%s.tar.gz' % (self.package, self.version)

    @property
    def requirement(self) -> str:
        return '%s==%s' % (self.package, self.version)


_SHA256 = re.compile(r'^[0-9a-f]{64}$')


def parse_upstream(value: str) -> tuple[Upstream, ...]:
    """``[tests] upstream``: ``PKG==VERSION SHA256 PATH...`` a line."""
    found = []
    for line in value.splitlines():
        words = line.split()
        if not words:
            continue
        package, sep, version = words[0].partition('==')
        if (not sep or not package or not version or len(words) < 3 or
                not _SHA256.match(words[1].lower())):
            raise SeriesError(
                '[tests] upstream: %r is not "PACKAGE==VERSION SHA256 '
                'PATH..."' % line.strip())
        for path in words[2:]:
            if (path.startswith('/') or '..' in path.split('/') or
                    not path.endswith('.py')):
                raise SeriesError(
                    '[tests] upstream: %r is not a relative path of a '
                    'Python test file' % path)
        found.append(Upstream(package, version, words[1].lower(),
                              tuple(words[2:])))
    return tuple(found)


@dataclasses.dataclass(frozen=True)
class Patch:
    name: str
    path: str

    def files(self) -> list[str]:
        """Paths the patch changes or adds (the ``b/`` side)."""
        with open(self.path, encoding='utf-8') as f:
            text = f.read()
        return [m.group(2) for m in _DIFF_FILE.finditer(text)]

    def changed_lines(self) -> dict[str, list[str]]:
        """Path -> the lines the patch adds or removes in it."""
        changed: dict[str, list[str]] = {}
        current: list[str] = []
        old = new = 0  # lines of the current hunk still to read
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                line = line.rstrip('\n')
                if old or new:
                    tag, text = line[:1], line[1:]
                    if tag in ('-', ' ', ''):
                        old -= 1
                    if tag in ('+', ' ', ''):
                        new -= 1
                    if tag in ('+', '-'):
                        current.append(text)
                    continue
                match = _DIFF_FILE.match(line)
                if match:
                    current = changed.setdefault(match.group(2), [])
                    continue
                match = _HUNK.match(line)
                if match:
                    old = int(match.group(1) or 1)
                    new = int(match.group(2) or 1)
        return changed

    def subject(self) -> str:
        with open(self.path, encoding='utf-8') as f:
            for line in f:
                if line.startswith('Subject: '):
                    return re.sub(r'^\[PATCH[^\]]*\]\s*', '',
                                  line[len('Subject: '):].strip())
        return self.name


@dataclasses.dataclass(frozen=True)
class Release:
    name: str
    directory: str
    package: str
    version: str
    sha256: str
    pins: str
    extra_requirements: tuple[str, ...]
    unit: tuple[str, ...]
    functional: tuple[str, ...]
    test_map: dict[str, tuple[str, ...]]
    test_env: dict[str, str]
    extras: tuple[str, ...]
    upstream: tuple[Upstream, ...]
    boot_script: str | None
    boot_requirements: tuple[str, ...]
    boot_arguments: tuple[str, ...]
    patches: tuple[Patch, ...]

    @property
    def sdist_name(self) -> str:
        return '%s-%s.tar.gz' % (self.package, self.version)

    @property
    def series_file(self) -> str:
        return os.path.join(self.directory, 'series')


def _words(value: str) -> tuple[str, ...]:
    return tuple(value.split())


def read_series_file(path: str) -> list[str]:
    names = []
    with open(path, encoding='utf-8') as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if line:
                # quilt allows options after the name (e.g. -p1).
                names.append(line.split()[0])
    return names


def load(root: str, name: str) -> Release:
    """Read ``series/NAME`` under the repository ``root``.

    ``NAME`` may carry the ``series-`` prefix of its tox environment.
    """
    if name.startswith('series-'):
        name = name[len('series-'):]
    directory = os.path.join(root, SERIES_DIR, name)
    ini = os.path.join(directory, 'release.ini')
    if not os.path.isfile(ini):
        known = sorted(
            d for d in os.listdir(os.path.join(root, SERIES_DIR))
            if os.path.isfile(os.path.join(root, SERIES_DIR, d,
                                           'release.ini')))
        raise SeriesError('no series %r (known: %s)' % (
            name, ', '.join(known) or 'none'))
    cfg = configparser.ConfigParser(inline_comment_prefixes=(';',))
    cfg.optionxform = str  # keep file paths as written
    cfg.read(ini, encoding='utf-8')
    rel = cfg['release']
    patches = []
    for patch_name in read_series_file(os.path.join(directory, 'series')):
        path = os.path.join(directory, patch_name)
        if not os.path.isfile(path):
            raise SeriesError('%s lists %s, which does not exist' % (
                os.path.join(directory, 'series'), patch_name))
        patches.append(Patch(patch_name, path))
    listed = {p.name for p in patches}
    stray = sorted(f for f in os.listdir(directory)
                   if f.endswith('.patch') and f not in listed)
    if stray:
        raise SeriesError('patches not in the series file: %s' %
                          ', '.join(stray))
    tests = cfg['tests'] if cfg.has_section('tests') else {}
    test_map = {}
    if cfg.has_section('tests:map'):
        test_map = {k: _words(v) for k, v in cfg['tests:map'].items()}
    boot = cfg['boot'] if cfg.has_section('boot') else {}
    script = boot.get('script')
    return Release(
        name=name,
        directory=directory,
        package=rel['package'],
        version=rel['version'],
        sha256=rel['sha256'].lower(),
        pins=os.path.join(directory, rel['pins']),
        extra_requirements=_words(rel.get('extra-requirements', '')),
        unit=_words(tests.get('unit', '')),
        functional=_words(tests.get('functional', '')),
        test_map=test_map,
        test_env=dict(word.partition('=')[::2]
                      for word in _words(tests.get('env', ''))),
        extras=_words(tests.get('extras', '')),
        upstream=parse_upstream(tests.get('upstream', '')),
        boot_script=os.path.join(directory, script) if script else None,
        boot_requirements=_words(boot.get('requirements', '')),
        boot_arguments=_words(boot.get('arguments', '')),
        patches=tuple(patches),
    )


def select(release: Release, patches: tuple[Patch, ...], tree: str,
           extra: dict[str, str] | None = None
           ) -> list[selection.Selected]:
    """The tests the selection rules pick for ``patches`` in ``tree``.

    Each patch is selected for on its own (the ``inputs`` rule reads its
    lines); ``extra`` maps more selectors to the reason they run for.
    """
    picked = [selection.select(release.package, p.files(), tree,
                               release.test_map,
                               lines=p.changed_lines())
              for p in patches]
    picked.append(selection.select(release.package, [], tree,
                                   extra=extra))
    return selection.merge(picked)
