"""Which of a release's tests the CI run of a series picks, by rule.

A patch's side effects show in tests far from the files it changes: a
payload version bump in the notification samples, a report client change
in the provider tree tests, a change of the UEFI guest XML in the libvirt
driver's functional tests of UEFI guests. Running only
``nova/tests/unit/x/test_y.py`` for a changed ``nova/x/y.py`` misses all
three. The CI selection of a patch is the union of what these rules pick:

``own``
    A changed or added test module runs itself.
``module``
    ``nova/x/y.py`` runs ``nova/tests/unit/x/test_y.py``.
``map``
    ``[tests:map]`` of the series' ``release.ini``: what only someone who
    knows the release can say.
the path rules of :data:`RULES`
    A changed path that matches one of a rule's patterns runs its test
    modules and packages; each says why in :attr:`Rule.why`.
``inputs``
    The image properties (fields of the release's ``ImageMetaProps``) and
    flavor extra specs (``hw:...``, ``os:...``) that the patch's changed
    lines in the package name run every functional test class of the
    release that names one of them (and its subclasses in its module):
    the tests that boot, rebuild or move servers with the inputs whose
    handling the patch changes, through the API, the scheduler and the
    driver.

The full mode (``--full``) runs everything; see
``doc/source/contributor/testing.rst`` for what only it catches.

Selectors are dotted names of test modules, packages or classes
(``nova.tests.functional.libvirt.test_uefi.UEFIServersTest``); one ending
in ``*`` selects the modules whose name starts with what precedes it.
Selectors naming nothing in the release are dropped, so rules may name
tests some releases lack.
"""

import ast
import dataclasses
import fnmatch
import glob
import os
import re


@dataclasses.dataclass(frozen=True)
class Rule:
    name: str
    #: fnmatch patterns of repository paths (``*`` crosses ``/``)
    sources: tuple[str, ...]
    #: selectors of unit and functional test modules or packages
    tests: tuple[str, ...]
    why: str


RULES = (
    Rule('versioned objects',
         ('nova/objects/*', 'nova/notifications/*'),
         ('nova.tests.unit.objects.test_objects',
          'nova.tests.unit.notifications.objects.test_notification',
          'nova.tests.functional.notification_sample_tests'),
         'object and payload versions are pinned by the hashes of '
         'test_objects and test_notification, and by the notification '
         'samples that the functional tests compare what Nova emits with'),
    Rule('provider tree',
         ('nova/scheduler/client/report.py', 'nova/compute/provider_tree.py',
          'nova/compute/resource_tracker.py', 'nova/virt/driver.py'),
         ('nova.tests.functional.test_servers_provider_tree',
          'nova.tests.functional.test_report_client',
          'nova.tests.functional.compute.test_resource_tracker',
          'nova.tests.unit.compute.test_provider_tree'),
         'what a driver reports (inventory, traits) reaches placement '
         'through the resource tracker and the report client, which these '
         'tests run against real placement'),
    Rule('scheduler',
         ('nova/scheduler/*',),
         ('nova.tests.functional.test_scheduler',),
         'the placement query the scheduler builds from a request, run '
         'against real placement'),
    Rule('fake libvirt',
         ('nova/tests/fixtures/libvirt*.py',),
         ('nova.tests.unit.virt.libvirt.test_driver',
          'nova.tests.unit.virt.libvirt.test_host',
          'nova.tests.unit.virt.libvirt.test_config'),
         "the libvirt driver's unit tests run on the fake libvirt these "
         'files define'),
)

_TEST_MODULE = re.compile(r'^test_\w+\.py$')
_PROPERTY = re.compile(r'''['"]((?:hw|img|os)_[a-z0-9_]+)['"]\s*:\s*'''
                       r'''fields\.''')
_NAME = re.compile(r'\b(?:(?:hw|img|os)_[a-z0-9_]+|(?:hw|os):[a-z0-9_]+)\b')
_EXTRA_SPEC = re.compile(r'^(?:hw|os):')


@dataclasses.dataclass
class Selected:
    """A selector and the reasons it was picked for."""

    selector: str
    kind: str  # 'unit' or 'functional'
    reasons: list[str] = dataclasses.field(default_factory=list)


def kind_of(selector: str) -> str:
    return 'functional' if '.tests.functional' in selector else 'unit'


def module_of(path: str) -> str:
    return path[:-len('.py')].replace('/', '.')


def exists(tree: str, selector: str) -> bool:
    """Whether ``selector`` names a test module, package or class."""
    parts = selector.rstrip('*').split('.')
    base = os.path.join(tree, *parts)
    if selector.endswith('*'):
        return any(_TEST_MODULE.match(os.path.basename(p))
                   for p in glob.glob(base + '*.py'))
    if (os.path.isfile(base + '.py') or
            os.path.isfile(os.path.join(base, '__init__.py'))):
        return True
    # A class: its module exists and defines it.
    module = os.path.join(tree, *parts[:-1]) + '.py'
    try:
        with open(module, encoding='utf-8') as f:
            return re.search(r'^class %s\b' % re.escape(parts[-1]), f.read(),
                              re.M) is not None
    except OSError:
        return False


def stestr_filter(selector: str) -> str:
    """The regular expression stestr selects ``selector``'s tests with."""
    if selector.endswith('*'):
        return '^' + re.escape(selector[:-1])
    return '^%s\\.' % re.escape(selector)


def derived(package: str, path: str) -> list[tuple[str, str]]:
    """(selector, rule) pairs of the ``own`` and ``module`` rules."""
    if not path.endswith('.py'):
        return []
    parts = path.split('/')
    if parts[0] != package:
        return []
    base = parts[-1]
    if parts[1] == 'tests':
        if _TEST_MODULE.match(base):
            return [(module_of(path), 'own')]
        return []
    if base == '__init__.py':
        return []
    return [('.'.join([package, 'tests', 'unit'] + parts[1:-1] +
                      ['test_' + base[:-3]]), 'module')]


def image_properties(tree: str, package: str) -> set[str]:
    """The image properties the release knows (``ImageMetaProps``)."""
    path = os.path.join(tree, package, 'objects', 'image_meta.py')
    try:
        with open(path, encoding='utf-8') as f:
            return set(_PROPERTY.findall(f.read()))
    except OSError:
        return set()


def named_inputs(lines: list[str], properties: set[str]) -> set[str]:
    """The image properties and flavor extra specs ``lines`` name."""
    found = set()
    for line in lines:
        for name in _NAME.findall(line):
            if name in properties or _EXTRA_SPEC.match(name):
                found.add(name)
    return found


def classes_naming(tree: str, package: str, names: set[str]
                   ) -> dict[str, set[str]]:
    """Functional test classes whose source names one of ``names``.

    Class selector -> the names it names. A class named is taken with
    its subclasses in the same module; a class is kept when it or a base
    in its module defines tests.
    """
    if not names:
        return {}
    pattern = re.compile(r'\b(%s)\b' % '|'.join(
        re.escape(n) for n in sorted(names)))
    root = os.path.join(tree, package, 'tests', 'functional')
    found: dict[str, set[str]] = {}
    for path in sorted(glob.glob(os.path.join(root, '**', 'test_*.py'),
                                 recursive=True)):
        with open(path, encoding='utf-8') as f:
            source = f.read()
        if not pattern.search(source):
            continue
        try:
            module = ast.parse(source)
        except SyntaxError:
            continue
        classes = {n.name: n for n in module.body
                   if isinstance(n, ast.ClassDef)}
        bases = {name: {b.id for b in node.bases if isinstance(b, ast.Name)}
                 & set(classes) for name, node in classes.items()}
        named = {}
        for name, node in classes.items():
            segment = ast.get_source_segment(source, node) or ''
            hits = set(pattern.findall(segment))
            if hits:
                named[name] = hits

        def ancestors(name: str) -> set[str]:
            seen: set[str] = set()
            todo = list(bases[name])
            while todo:
                base = todo.pop()
                if base not in seen:
                    seen.add(base)
                    todo.extend(bases[base])
            return seen

        def has_tests(name: str) -> bool:
            return any(isinstance(n, ast.FunctionDef) and
                       n.name.startswith('test_')
                       for c in {name} | ancestors(name)
                       for n in classes[c].body)

        dotted = module_of(os.path.relpath(path, tree))
        for name in classes:
            hits = set()
            for origin in {name} | ancestors(name):
                hits |= named.get(origin, set())
            if hits and has_tests(name):
                found['%s.%s' % (dotted, name)] = hits
    return found


def select(package: str, files: list[str], tree: str,
           test_map: dict[str, tuple[str, ...]] | None = None,
           rules: tuple[Rule, ...] = RULES,
           extra: dict[str, str] | None = None,
           lines: dict[str, list[str]] | None = None) -> list[Selected]:
    """The tests that cover ``files`` in ``tree``, in a stable order.

    ``lines`` maps changed files to their added and removed lines (for the
    ``inputs`` rule); ``extra`` maps more selectors to the reason they run
    for.
    """
    picked: dict[str, Selected] = {}

    def add(selector: str, reason: str) -> None:
        if selector not in picked:
            if not exists(tree, selector):
                return
            picked[selector] = Selected(selector, kind_of(selector))
        if reason not in picked[selector].reasons:
            picked[selector].reasons.append(reason)

    for path in files:
        for selector, rule in derived(package, path):
            add(selector, '%s: %s' % (rule, path))
        for selector in (test_map or {}).get(path, ()):
            add(selector, 'map: %s' % path)
        for rule in rules:
            if any(fnmatch.fnmatchcase(path, p) for p in rule.sources):
                for selector in rule.tests:
                    add(selector, '%s: %s' % (rule.name, path))
    code = [line for path, changed in (lines or {}).items()
            if path.startswith(package + '/') and path.endswith('.py')
            for line in changed]
    if code:
        names = named_inputs(code, image_properties(tree, package))
        for selector, hits in classes_naming(tree, package, names).items():
            for name in sorted(hits):
                add(selector, 'inputs: %s' % name)
    for selector, reason in (extra or {}).items():
        add(selector, reason)
    return _without_covered(list(picked.values()))


def merge(selections: list[list[Selected]]) -> list[Selected]:
    """The union of several selections, reasons merged."""
    picked: dict[str, Selected] = {}
    for selected in selections:
        for item in selected:
            into = picked.setdefault(item.selector,
                                     Selected(item.selector, item.kind))
            into.reasons += [r for r in item.reasons
                             if r not in into.reasons]
    return _without_covered(list(picked.values()))


def covers(outer: str, inner: str) -> bool:
    """Whether ``outer`` selects every test ``inner`` selects."""
    if inner == outer:
        return False
    if outer.endswith('*'):
        # a.test_* covers a.test_b, not a.sub.test_b.
        return inner.startswith(outer[:-1])
    return inner.startswith(outer + '.')


def describe(item: Selected) -> str:
    """``item``'s reasons, by rule: ``module (2 files), inputs``."""
    by_rule: dict[str, list[str]] = {}
    for reason in item.reasons:
        rule, _, what = reason.partition(': ')
        by_rule.setdefault(rule, []).append(what)
    parts = []
    for rule, what in by_rule.items():
        if rule == 'inputs':
            parts.append('inputs (%s)' % ', '.join(what))
        elif len(what) > 1:
            parts.append('%s (%d files)' % (rule, len(what)))
        else:
            parts.append(rule)
    return ', '.join(parts)


def _without_covered(items: list[Selected]) -> list[Selected]:
    """Drop selectors a broader one already selects, keeping reasons."""
    kept = [i for i in items
            if not any(covers(o.selector, i.selector) for o in items)]
    for item in items:
        if item in kept:
            continue
        outer = next(o for o in kept if covers(o.selector, item.selector))
        outer.reasons += [r for r in item.reasons if r not in outer.reasons]
    return sorted(kept, key=lambda i: (i.kind != 'unit', i.selector))
