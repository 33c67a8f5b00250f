"""Run the benchmarks: ``python -m benchmarks [--only NAME,...]``.

Prints each figure with its goal and PASS/MISS as it is measured, then a
table of all of them, which is also written (as RST) to
``benchmarks/results.rst`` unless ``--results`` says otherwise.
"""

import argparse
import datetime
import logging
import os
import platform
import shutil
import sys
import tempfile
import traceback
import warnings

import benchmarks
from benchmarks import capabilities
from benchmarks import control_plane
from benchmarks import environment
from benchmarks import firmware_state
from benchmarks import scheduling
from benchmarks import spawn_overhead

#: In the order they run: the cheap ones first, scheduling (the 10,000
#: provider case) last.
MODULES = (capabilities, control_plane, spawn_overhead, firmware_state,
           scheduling)

DEFAULT_RESULTS = os.path.join(os.path.dirname(__file__), 'results.rst')


def _parse_args(argv: list[str]) -> argparse.Namespace:
    names = [m.NAME for m in MODULES]
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks', description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--only', default=','.join(names),
        help='comma-separated benchmarks to run, of: %s (default: all)' %
             ', '.join(names))
    parser.add_argument(
        '--runs', type=int, default=5,
        help='runs per side of each timed comparison (default: 5)')
    parser.add_argument(
        '--providers', default='1000,10000',
        help='provider counts of the scheduling benchmark '
             '(default: 1000,10000)')
    parser.add_argument(
        '--sync-sample', type=int, default=100,
        help='providers whose trait sync is measured (default: 100)')
    parser.add_argument(
        '--upstream-venv',
        default=os.environ.get('NOVA_BENCH_UPSTREAM_VENV',
                               control_plane.DEFAULT_UPSTREAM_VENV),
        help='virtualenv with upstream Nova for the control plane '
             'comparison (default: $NOVA_BENCH_UPSTREAM_VENV or %s); '
             'see doc/source/admin/benchmarks.rst to create it' %
             control_plane.DEFAULT_UPSTREAM_VENV)
    parser.add_argument(
        '--results', default=DEFAULT_RESULTS,
        help='where to write the RST table (default: %(default)s); '
             'an empty value writes nothing')
    args = parser.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(',') if n.strip()]
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error('unknown benchmark(s): %s' % ', '.join(sorted(unknown)))
    return args


def _print_figure(fig: benchmarks.Figure) -> None:
    value = fig.skipped or fig.value
    goal = ' (goal %s)' % fig.goal if fig.goal else ''
    print('  [%s] %s: %s%s' % (fig.status, fig.name, value, goal))
    if fig.detail:
        print('         %s' % fig.detail)
    sys.stdout.flush()


def _write_results(path: str, figures: list[benchmarks.Figure],
                   argv: list[str], seconds: float) -> None:
    command = ' '.join(['tox -e bench'] + (['--'] + argv if argv else []))
    header = [
        '..',
        '   Written by "python -m benchmarks"; do not edit by hand.',
        '',
        'Produced by ``%s`` on %s (%s, Python %s, %d CPUs) in %.0f s.' % (
            command, datetime.date.today().isoformat(), platform.platform(),
            platform.python_version(), os.cpu_count() or 0, seconds),
        '',
    ]
    details = ['', 'Each benchmark alone:', '']
    for name in dict.fromkeys(fig.benchmark for fig in figures):
        details.append('* ``%s``: ``%s``' % (
            name, benchmarks.Figure(name, '', '').command))
    details += ['', 'Details:', '']
    for fig in figures:
        if fig.detail:
            details.append('* %s, %s: %s' % (fig.benchmark, fig.name,
                                             fig.detail))
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(header) + '\n')
        f.write(benchmarks.rst_table(figures))
        f.write('\n'.join(details) + '\n')


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = _parse_args(argv)
    # The code under test logs at INFO for every placement write; keep the
    # benchmark's own output readable.
    logging.basicConfig(level=logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    # A library below placement imports eventlet, which warns that it is
    # deprecated; nothing here uses it.
    warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')
    workdir = tempfile.mkdtemp(prefix='nova-bench-')
    options = benchmarks.Options(
        runs=args.runs,
        provider_counts=tuple(int(n) for n in args.providers.split(',')
                              if n.strip()),
        sync_sample=args.sync_sample,
        upstream_python=control_plane.upstream_python(args.upstream_venv),
        workdir=workdir)
    environment.configure(workdir)

    figures: list[benchmarks.Figure] = []
    failed = False
    with benchmarks.Stopwatch() as total:
        for module in MODULES:
            if module.NAME not in args.only:
                continue
            print('== %s: %s' % (module.NAME,
                                 module.__doc__.splitlines()[0]))
            sys.stdout.flush()
            with benchmarks.Stopwatch() as sw:
                try:
                    results = module.run(options)
                except Exception as ex:
                    traceback.print_exc()
                    failed = True
                    results = [benchmarks.Figure(
                        module.NAME, 'benchmark', '', skipped='failed: %s' %
                        ' '.join(str(ex).split())[:200])]
            for fig in results:
                _print_figure(fig)
            print('   (%.0f s)' % sw.seconds)
            figures.extend(results)
    shutil.rmtree(workdir, ignore_errors=True)

    print()
    print(benchmarks.text_table(figures))
    print('\n%d figures: %d PASS, %d MISS, %d INFO, %d SKIP in %.0f s' % (
        len(figures),
        *(sum(1 for f in figures if f.status == s)
          for s in (benchmarks.PASS, benchmarks.MISS, benchmarks.INFO,
                    benchmarks.SKIP)),
        total.seconds))
    if args.results:
        _write_results(args.results, figures, argv, total.seconds)
        print('Table written to %s' % args.results)
    # A missed goal is a result, not an error; a benchmark that crashed is.
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
