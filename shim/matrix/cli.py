"""The fuseshim-matrix command line: parse the options, select the cells
and run them (or list them, or check the matrix file); see __main__ for the
entry point and docs/matrix.md."""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys

from . import build, model, report, schema, shard, util
from .progress import fmt_secs
from .util import cache_dir

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2
EXIT_INTERRUPTED = 128 + signal.SIGINT


@contextlib.contextmanager
def terminate_as_interrupt():
    """SIGTERM (a CI job cancelled, `timeout`, `kill`) stops the run as
    Ctrl-C does, children interrupted and mounts removed, instead of killing
    the runner and orphaning its children, which run in their own sessions.

    SIGINT too, even if the runner inherited it ignored (a background job of
    a non-interactive shell, as in CI): its children would inherit that as
    well, and stop_children()'s SIGINT, which lets a test suite unmount,
    would then do nothing.  Terminal signals never reach the children (own
    sessions), so this changes nothing else for them."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt
    old = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog='fuseshim-matrix',
        description='fuseshim-matrix / python -m fuseshim.matrix: run the migration test matrix.',
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='Exit status: 0 when every result was as expected, 1 when any was not, '
               '2 for a malformed matrix file or bad arguments.  See docs/matrix.md.')
    ap.add_argument('--matrix', metavar='FILE',
                    help='matrix file (default: ./matrix.yaml, else the source tree\'s)')
    ap.add_argument('--preset', help='a preset from the matrix file (e.g. ci, full, host)')
    ap.add_argument('--cells', metavar='PATTERNS',
                    help='comma-separated cell globs LIBFUSE/KERNEL/STARTUP or axis=glob terms '
                         'joined by + (kernel=7.2+startup=auto)')
    ap.add_argument('-k', dest='keyword', metavar='EXPR',
                    help='pytest-like expression over cell ids, e.g. "host and not classic"')
    ap.add_argument('--jobs', '-j', type=int, help='parallel builds / cells / VMs (default 1)')
    ap.add_argument('--tests', metavar='PATH',
                    help='run this test suite in every cell (also inside VMs) instead of the '
                         'matrix file\'s')
    ap.add_argument('--pytest-args', metavar='ARGS',
                    help='extra pytest arguments, one string: --pytest-args="-x -k startup"')
    ap.add_argument('--no-tests', action='store_true', help='run the probe only')
    ap.add_argument('--parallel-tests', action='store_true',
                    help='let host test suites run at the same time with --jobs (by default '
                         'they take turns: suites look at the global mount table)')
    cl = ap.add_mutually_exclusive_group()
    cl.add_argument('--clients', metavar='NAMES',
                    help='run these entries of the "clients" section (comma-separated, or '
                         '"all") in the selected host cells of startup auto: each project\'s '
                         'suite with the real peer, then with fuseshim providing its module')
    cl.add_argument('--no-clients', action='store_true',
                    help='skip the clients stage even if the preset runs it')
    pk = ap.add_mutually_exclusive_group()
    pk.add_argument('--packaging', dest='packaging', action='store_true', default=None,
                    help='run the packaging stage for every libfuse in the selection')
    pk.add_argument('--no-packaging', dest='packaging', action='store_false')
    ap.add_argument('--report-dir', default='matrix-report', metavar='DIR',
                    help='where report.md/json, junit.xml, index.html and logs go '
                         '(default: ./matrix-report)')
    ap.add_argument('--cache', metavar='DIR',
                    help='build cache (default: $FUSESHIM_CACHE or ~/.cache/fuseshim)')
    ap.add_argument('--source', metavar='DIR', help='fuseshim source tree to build')
    ap.add_argument('--rebuild', action='store_true', help='ignore cached builds and kernels')
    ap.add_argument('--refresh', action='store_true', help='apt-get update the private lists')
    ap.add_argument('--shard', metavar='K/N',
                    help='run only shard K of N of the selection (the split --list --shards N '
                         'prints; see docs/matrix.md)')
    ap.add_argument('--list', action='store_true', help='list the selected cells and exit')
    ap.add_argument('--shards', type=int, default=1, metavar='N',
                    help='with --list: split the selection into N shards')
    ap.add_argument('--format', choices=('text', 'json', 'github'), default='text',
                    help='with --list: text, JSON entries (one per shard) or a $GITHUB_OUTPUT '
                         'line "matrix={include: [...]}"')
    ap.add_argument('--check', action='store_true', help='check the matrix file and exit')
    ap.add_argument('--install-prereqs', action='store_true',
                    help='install what the runner needs (qemu-system-x86, e2fsprogs, '
                         'liburing-dev, libnuma-dev via apt; the packages of fuseshim\'s '
                         '"matrix" extra via pip) and exit')
    ap.add_argument('--quiet', '-q', action='store_true', help='no live progress')
    return ap


def find_matrix(arg: str | None) -> str:
    if arg:
        return arg
    if os.path.exists('matrix.yaml'):
        return 'matrix.yaml'
    here = os.path.dirname(os.path.abspath(__file__))
    for up in (os.path.dirname(os.path.dirname(here)), os.path.dirname(here)):
        cand = os.path.join(up, 'matrix.yaml')
        if os.path.exists(cand):
            return cand
    return 'matrix.yaml'


def list_cells(cells, shards, args) -> int:
    if args.format == 'text':
        for s in shards:
            if len(shards) > 1:
                print(f'# shard {s.spec}: {len(s.cells)} cells'
                      + (f', packaging {", ".join(s.packaging)}' if s.packaging else ''))
            for c in s.cells:
                e = c.expect
                feats = ','.join(k for k, v in sorted(e.features.items()) if v) or '-'
                print(f'{c.id:<26} {c.kernel.type:<4} expect path={e.startup_path:<8} '
                      f'soname={e.soname} features={feats}'
                      + (f' outcome={e.outcome} ({e.reason})' if e.outcome != 'pass' else ''))
        return EXIT_OK
    items = shard.entries(shards, args.preset, args.matrix)
    print(shard.github_output(items) if args.format == 'github' else json.dumps(items, indent=2))
    return EXIT_OK


def list_clients(cfg, cells, client_names) -> None:
    """The clients a run would run, on stderr: stdout stays the list of cells
    (scripts read it, e.g. to check a shard's split)."""
    from .runner import clients_cells
    where = ', '.join(c.id for c in clients_cells(cells)) or 'no host/auto cell selected'
    for name in client_names:
        e = cfg.client(name)
        t = e.tests
        what = (f'scenario {t.scenario}' if t.from_ == 'scenario' else
                f'pytest {" ".join(t.args)} (from its '
                f'{"sdist" if t.from_ == "sdist" else "installed package"})')
        print(f'client {name:<12} {e.project}=={e.version} imports {e.module} '
              f'({e.peer}): {what}; real peer, then fuseshim in: {where}', file=sys.stderr)


def run(argv: list[str]) -> int:
    """Run (or list, or check) the selected cells; see parser()."""
    args = parser().parse_args(argv)
    path = find_matrix(args.matrix)
    try:
        cfg = schema.load(path)
    except schema.MatrixError as e:
        print(f'fuseshim-matrix: {e}', file=sys.stderr)
        return EXIT_USAGE
    if args.check:
        cells = model.all_cells(cfg)
        print(f'{path}: OK ({len(cfg.libfuse)} libfuse versions, {len(cfg.kernels)} '
              f'kernels, {len(cfg.startup)} startup modes, {len(cells)} cells, '
              f'{len(cfg.clients)} clients, presets: {", ".join(cfg.presets) or "none"})')
        return EXIT_OK
    preset = None
    if args.preset:
        if args.preset not in cfg.presets:
            print(f'fuseshim-matrix: no preset {args.preset!r} in {path} (have: '
                  f'{", ".join(cfg.presets) or "none"})', file=sys.stderr)
            return EXIT_USAGE
        preset = cfg.presets[args.preset]
    try:
        cells = model.all_cells(cfg)
        if preset and preset.cells:
            cells = model.select(cells, preset.cells)
        if args.cells:
            cells = model.select(cells, model.parse_cell_patterns(args.cells, cfg.axis_values()))
        if args.keyword:
            cells = model.select(cells, keyword=args.keyword)
    except schema.MatrixError as e:
        print(f'fuseshim-matrix: {e}', file=sys.stderr)
        return EXIT_USAGE
    if not cells:
        print('fuseshim-matrix: the selection is empty (see --list)', file=sys.stderr)
        return EXIT_USAGE
    try:
        client_names = select_clients(cfg, preset, args)
    except ValueError as e:
        print(f'fuseshim-matrix: {e}', file=sys.stderr)
        return EXIT_USAGE
    packaging = args.packaging
    if packaging is None:
        packaging = bool(preset and preset.packaging)
    all_packaging = sorted({c.libfuse.version for c in cells}, key=model.row_key) \
        if packaging else []
    selection = [c.id for c in cells]
    packaging_versions = None
    try:
        if args.shard:
            k, n = shard.parse_spec(args.shard)
            mine = shard.split(cells, all_packaging, n)[k - 1]
            cells, packaging_versions = mine.cells, mine.packaging
        shards = shard.split(cells, all_packaging if not args.shard else packaging_versions,
                             args.shards)
    except schema.MatrixError as e:
        print(f'fuseshim-matrix: {e}', file=sys.stderr)
        return EXIT_USAGE
    if args.list:
        rc = list_cells(cells, shards, args)
        if args.format == 'text':
            list_clients(cfg, cells, client_names)
        return rc
    if not cells and not packaging_versions:
        print(f'fuseshim-matrix: shard {args.shard} is empty', file=sys.stderr)
        return EXIT_OK

    tests = (preset and preset.tests) or cfg.tests
    base = os.path.dirname(os.path.abspath(path))
    if args.tests:
        tests = schema.Tests(path=os.path.abspath(args.tests), startup=tests.startup)
    if args.pytest_args:
        extra = shlex.split(args.pytest_args)
        tests = tests.model_copy(update={
            'args': tests.args + extra,
            'vm_args': tests.vm_args + extra if tests.vm_args is not None else None})
    jobs = args.jobs or (preset and preset.jobs) or 1

    from .runner import Options, Runner
    opts = Options(cache=os.path.abspath(args.cache or cache_dir()),
                   report_dir=os.path.realpath(args.report_dir), source=args.source,
                   jobs=jobs, tests=tests, tests_base=base, packaging=packaging,
                   rebuild=args.rebuild, refresh=args.refresh, no_tests=args.no_tests,
                   quiet=args.quiet, preset=args.preset, parallel_tests=args.parallel_tests,
                   packaging_versions=packaging_versions, clients=client_names)
    print(f'fuseshim-matrix: {len(cells)} cells ({sum(c.is_vm for c in cells)} in VMs)'
          f'{", packaging" if packaging else ""}'
          f'{", clients " + ",".join(client_names) if client_names else ""}; jobs {jobs}; '
          f'cache {opts.cache}; '
          f'report {opts.report_dir}', file=sys.stderr, flush=True)
    runner = Runner(cfg, opts)
    try:
        with terminate_as_interrupt():
            summary = runner.run(cells)
    except KeyboardInterrupt:
        # runner.run has stopped its children and lazily unmounted what they
        # left below the report and cache directories
        print('fuseshim-matrix: interrupted; no report written', file=sys.stderr)
        return EXIT_INTERRUPTED
    meta = {'preset': args.preset, 'matrix': os.path.abspath(path), 'argv': argv, 'jobs': jobs,
            # what `fuseshim-matrix merge` checks shard reports against
            'matrix_sha256': util.file_sha256(path),
            'fuseshim_revision': build.source_revision(runner.src),
            'selection': selection, 'packaging_selection': all_packaging,
            'shard': args.shard}
    paths = report.write_all(opts.report_dir, cfg, cells, runner, summary, meta)
    print()
    print(report.terminal_table(cells, runner.packaging))
    if runner.clients:
        print()
        print(report.clients_terminal_table(runner.clients))
    probs = (report.problems_list(cells, runner.packaging)
             + report.client_problems(runner.clients))
    if probs:
        print('\nnot as expected / known failures:')
        for p in probs:
            print('  ' + p)
    if summary['leftover_mounts']:
        print(f'\nleft-over FUSE mounts were unmounted: {summary["leftover_mounts"]}')
    n_unexp = len(summary['unexpected'])
    counts = {}
    for c in cells:
        counts[c.result.get('status')] = counts.get(c.result.get('status'), 0) + 1
    print(f'\n{len(cells)} cells: ' + ', '.join(f'{v} {k}' for k, v in sorted(
        counts.items(), key=lambda kv: str(kv[0]))) + f'; unexpected: {n_unexp}; '
        f'total {fmt_secs(summary["timings"].get("total", 0))}')
    print('reports: ' + ', '.join(os.path.relpath(p) for p in paths.values()))
    return EXIT_UNEXPECTED if n_unexp else EXIT_OK


def select_clients(cfg: schema.Matrix, preset: schema.Preset | None, args) -> list[str]:
    """Client names to run: --clients, else the preset's; none with --no-clients."""
    if args.no_clients:
        return []
    known = [e.name for e in cfg.clients]
    if args.clients is None:
        return list((preset and preset.clients) or [])
    if args.clients.strip() == 'all':
        return known
    names = [n.strip() for n in args.clients.split(',') if n.strip()]
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f'--clients: {", ".join(bad) or "nothing named"} (known: '
                         f'{", ".join(known) or "none in the matrix file"}; or "all")')
    return names


