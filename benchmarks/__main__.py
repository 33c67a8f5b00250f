"""Run the benchmarks: ``python -m benchmarks [--only NAME,...]``.

Prints each figure with its interval, goal and status as it is measured,
then a table of all of them and of the machine they came from. The table
is written (as RST) to ``benchmarks/results.rst``, which the admin guide
includes, only with ``--write-results``: a run leaves the tree as it was.
"""

import argparse
import datetime
import logging
import os
import shutil
import sys
import tempfile
import traceback
import warnings

import benchmarks
from benchmarks import capabilities
from benchmarks import environment
from benchmarks import feature_cost
from benchmarks import firmware_state
from benchmarks import growth
from benchmarks import machine
from benchmarks import scheduling
from benchmarks import sides
from benchmarks import spawn_overhead

#: In the order they run: the cheap ones first, scheduling (the 10,000
#: provider case) last.
MODULES = (capabilities, feature_cost, spawn_overhead, firmware_state,
           growth, scheduling)

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
        '--quick', action='store_true',
        help='caps of pairs and seconds at a quarter, 1,000 providers and '
             'fewer guests: a smoke test while developing, not a result')
    parser.add_argument(
        '--cap-scale', type=float, default=None,
        help='multiply every cap of pairs and seconds (default 1, or 0.25 '
             'with --quick)')
    parser.add_argument(
        '--providers', default=None,
        help='provider counts of the scheduling benchmark '
             '(default: 1000,10000; 1000 with --quick)')
    parser.add_argument(
        '--sync-sample', type=int, default=20,
        help='computes per side whose periodic sync is counted '
             '(default: 20)')
    parser.add_argument(
        '--guests', type=int, default=None,
        help='guests already running in the growth benchmark '
             '(default: 16; 4 with --quick)')
    parser.add_argument(
        '--upstream-venv',
        default=os.environ.get('NOVA_BENCH_UPSTREAM_VENV',
                               sides.DEFAULT_UPSTREAM_VENV),
        help='virtualenv with upstream Nova 34.0.0 (default: '
             '$NOVA_BENCH_UPSTREAM_VENV or %s); benchmarks/upstream-venv.sh '
             'creates it' % sides.DEFAULT_UPSTREAM_VENV)
    parser.add_argument(
        '--side', action='append', metavar='LABEL=VENV',
        default=[s for s in os.environ.get('NOVA_BENCH_SIDES', '').split(',')
                 if s.strip()],
        help='another Nova to compare, e.g. one patched by a series: the '
             'label to print and its virtualenv (repeatable; default: '
             '$NOVA_BENCH_SIDES, comma-separated)')
    parser.add_argument(
        '--series-dir',
        default=(os.environ.get('NOVA_BENCH_SERIES_DIR') or
                 sides.DEFAULT_SERIES_DIR),
        help='where tools/series builds its virtualenvs (RELEASE/venv): '
             'every series of this tree (series/RELEASE/release.ini) is '
             'the side "patched RELEASE" (default: $NOVA_BENCH_SERIES_DIR '
             'or %s)' % sides.DEFAULT_SERIES_DIR)
    parser.add_argument(
        '--no-build', dest='build', action='store_false',
        help="build no side: a virtualenv that is missing (upstream's, a "
             "series') or built from an earlier state of its series is "
             'reported as SKIP with the command that builds it (default: '
             "build them, with upstream's script and the series' runner)")
    parser.add_argument(
        '--write-results', nargs='?', const=DEFAULT_RESULTS, default=None,
        metavar='PATH',
        help='write the table as RST to PATH (default: %s), for the '
             'admin guide; without it nothing is written' % DEFAULT_RESULTS)
    args = parser.parse_args(argv)
    args.only = [n.strip() for n in args.only.split(',') if n.strip()]
    unknown = set(args.only) - set(names)
    if unknown:
        parser.error('unknown benchmark(s): %s' % ', '.join(sorted(unknown)))
    if args.cap_scale is None:
        args.cap_scale = 0.25 if args.quick else 1.0
    if args.providers is None:
        args.providers = '1000' if args.quick else '1000,10000'
    if args.guests is None:
        args.guests = 4 if args.quick else 16
    try:
        args.sides = sides.parse_sides(args.upstream_venv, args.side,
                                       args.series_dir)
    except ValueError as ex:
        parser.error(str(ex))
    return args


def _print_figure(fig: benchmarks.Figure) -> None:
    # One line per figure as it is measured; the detail under it.
    value = fig.skipped or fig.value
    goal = ' (goal %s)' % fig.goal if fig.goal else ''
    print('  [%s] %s: %s%s' % (fig.status, fig.name, value, goal))
    if fig.detail:
        print('         %s' % fig.detail)
    sys.stdout.flush()


def _write_results(path: str, figures: list[benchmarks.Figure],
                   argv: list[str], seconds: float,
                   host: machine.Machine) -> None:
    command = ' '.join(['tox -e bench'] + (['--'] + argv if argv else []))
    header = [
        '..',
        '   Written by "python -m benchmarks --write-results"; do not edit',
        '   by hand.',
        '',
        'Produced by ``%s`` on %s in %.0f s, on this machine:' % (
            command, datetime.date.today().isoformat(), seconds),
        '',
    ]
    header += ['* %s: %s' % (k, v) for k, v in host.rows()]
    header += ['']
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
    # The embedded QEMU driver logs warnings to stderr, between the
    # figures (as root, the file labels it cannot restore); errors still
    # show. Set before libvirt is first used, which reads it then.
    os.environ.setdefault('LIBVIRT_LOG_OUTPUTS', '4:stderr')
    # The code under test logs at INFO for every placement write; keep the
    # benchmark's own output readable.
    logging.basicConfig(level=logging.WARNING,
                        format='%(levelname)s %(name)s: %(message)s')
    # A library below placement imports eventlet, which warns that it is
    # deprecated; nothing here uses it.
    warnings.filterwarnings('ignore', message='(?s).*Eventlet is deprecated')
    workdir = tempfile.mkdtemp(prefix='nova-bench-')
    options = benchmarks.Options(
        cap_scale=args.cap_scale,
        provider_counts=tuple(int(n) for n in args.providers.split(',')
                              if n.strip()),
        sync_sample=args.sync_sample,
        sides=args.sides,
        growth_guests=args.guests,
        workdir=workdir)
    environment.configure(workdir)
    host = machine.describe()
    print('Machine: %s' % '; '.join('%s: %s' % row for row in host.rows()))
    sys.stdout.flush()
    options.sides = sides.prepare(
        args.sides, args.upstream_venv, args.series_dir, build=args.build,
        say=lambda text: print(text, flush=True))
    for side in options.sides:
        print('Side %s: %s%s' % (
            side.label, side.python or 'SKIP: %s' % side.unavailable,
            '; %s' % side.note if side.note else ''))

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

    host.finish()
    print()
    print(benchmarks.text_table(figures))
    print('\nWhat each side does where this tree is compared with another '
          'Nova:')
    for comparison, ours, theirs in (feature_cost.SIDES +
                                     scheduling.SIDES):
        print('- %s\n    this tree: %s\n    other Nova: %s' % (
            comparison, ours, theirs))
    print('\nMachine: %s' % '; '.join('%s: %s' % row for row in host.rows()))
    print('%d figures: %s in %.0f s' % (
        len(figures), ', '.join(
            '%d %s' % (sum(1 for f in figures if f.status == s), s)
            for s in benchmarks.STATUSES),
        total.seconds))
    if args.write_results:
        _write_results(args.write_results, figures, argv, total.seconds,
                       host)
        print('Table written to %s' % args.write_results)
    # A missed goal is a result, not an error; a benchmark that crashed is.
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
