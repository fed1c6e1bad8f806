"""fuseshim-matrix merge: join shard reports into one report.

Each shard (``fuseshim-matrix --shard K/N``, one CI job each) writes a report
directory.  ``merge DIR... --report-dir OUT`` reads their report.json files,
refuses shards of another matrix file or another fuseshim revision, copies
each shard's logs under ``OUT/shards/<name>/``, and judges every cell of the
selection against the matrix file again, exactly as a single run does
(model.judge): a cell no shard reported is an error that names it.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys

from . import clients, model, report, schema
from .util import file_sha256

EXIT_OK, EXIT_UNEXPECTED, EXIT_USAGE = 0, 1, 2


class MergeError(Exception):
    pass


class MergedRun:
    """What report.write_all needs of a Runner, gathered from the shards."""

    def __init__(self):
        self.packaging: dict[str, dict] = {}
        self.builds: dict[str, dict] = {}
        self.kernels: dict[str, dict] = {}
        self.prep_errors: dict[str, str] = {}
        self.clients: dict[str, dict] = {}


def load_shard(directory: str) -> dict:
    path = os.path.join(directory, 'report.json')
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise MergeError(f'{directory}: no report.json (not a matrix report directory, or '
                         'its shard did not finish)') from None
    except ValueError as e:
        raise MergeError(f'{path}: not valid JSON: {e}') from None
    if 'selection' not in data.get('meta', {}):
        raise MergeError(f'{path}: written by a fuseshim-matrix that does not record its '
                         'selection; re-run the shard')
    return data


def _consistent(shards: list[tuple[str, dict]], matrix_path: str) -> dict:
    """The meta all shards agree on; MergeError naming the odd one out."""
    want_sha = file_sha256(matrix_path)
    first_dir, first = shards[0]
    for d, data in shards:
        meta = data['meta']
        if meta.get('matrix_sha256') != want_sha:
            raise MergeError(f'{d} was run with another matrix file than {matrix_path} '
                             f'(sha256 {meta.get("matrix_sha256")}, here {want_sha})')
        for key, what in (('fuseshim_revision', 'fuseshim revision'),
                          ('selection', 'selection of cells'),
                          ('packaging_selection', 'selection of packaging stages'),
                          ('preset', 'preset')):
            if meta.get(key) != first['meta'].get(key):
                raise MergeError(f'{d} and {first_dir} differ in their {what}: '
                                 f'{meta.get(key)!r} vs {first["meta"].get(key)!r}')
    return first['meta']


def _special_files(directory: str, names: list[str]) -> set[str]:
    """copytree's ignore: the test suites' scratch directories inside a
    report can hold FIFOs and sockets, which cannot be copied (CI's merge
    of the ci preset's shards failed on a FIFO); a report needs its logs."""
    out = set()
    for n in names:
        mode = os.lstat(os.path.join(directory, n)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode) or stat.S_ISLNK(mode)):
            out.add(n)
    return out


def _rebase(value, shard_dir: str, prefix: str):
    """``value`` with every path into the shard's report directory (a
    relative path that exists there: logs, junit files, consoles) moved
    under ``prefix``; the keys that hold paths differ by stage, so they are
    found, not listed."""
    if isinstance(value, dict):
        return {k: _rebase(v, shard_dir, prefix) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebase(v, shard_dir, prefix) for v in value]
    if (isinstance(value, str) and value and not os.path.isabs(value) and '\n' not in value
            and os.path.exists(os.path.join(shard_dir, value))):
        return f'{prefix}/{value}'
    return value


def merge(dirs: list[str], out_dir: str, matrix_path: str) -> tuple[list, MergedRun, dict, dict]:
    cfg = schema.load(matrix_path)
    if not dirs:
        raise MergeError('name at least one shard report directory')
    shards = [(d, load_shard(d)) for d in dirs]
    meta = _consistent(shards, matrix_path)
    by_id = {c.id: c for c in model.all_cells(cfg)}
    unknown = [i for i in meta['selection'] if i not in by_id]
    if unknown:
        raise MergeError(f'the shards selected cells {matrix_path} does not have: '
                         f'{", ".join(unknown)}')
    cells = [by_id[i] for i in meta['selection']]
    run = MergedRun()
    reported: dict[str, str] = {}
    timings: dict[str, float] = {}
    leftovers: list[str] = []
    os.makedirs(out_dir, exist_ok=True)
    for i, (d, data) in enumerate(shards, 1):
        name = (data['meta'].get('shard') or str(i)).replace('/', '-of-')
        prefix = f'shards/{name}'
        dest = os.path.join(out_dir, prefix)
        if os.path.realpath(d) != os.path.realpath(dest):
            shutil.rmtree(dest, ignore_errors=True)
            shutil.copytree(d, dest, symlinks=True, ignore=_special_files)
        for row in data.get('cells', []):
            if row['id'] not in by_id or row['id'] not in meta['selection']:
                raise MergeError(f'{d} reports cell {row["id"]}, which is not in the selection')
            if row['id'] in reported:
                raise MergeError(f'cell {row["id"]} is reported by both {reported[row["id"]]} '
                                 f'and {d}')
            reported[row['id']] = d
            by_id[row['id']].result = _rebase(row.get('result') or {}, d, prefix)
            by_id[row['id']].kernel_release = by_id[row['id']].result.get('kernel_release', '')
        for version, p in (data.get('packaging') or {}).items():
            if version in run.packaging:
                raise MergeError(f'packaging {version} is reported by two shards')
            run.packaging[version] = _rebase(p, d, prefix)
        for key in ('builds', 'kernels', 'prep_errors'):
            for k, v in (data.get(key) or {}).items():
                getattr(run, key).setdefault(k, _rebase(v, d, prefix))
        for cname, r in (data.get('clients') or {}).items():
            try:
                clients.merge_shards(run.clients, cname, _rebase(r, d, prefix), d)
            except ValueError as e:
                raise MergeError(str(e)) from None
        for k, v in (data.get('summary', {}).get('timings') or {}).items():
            # the shards ran side by side: the merged run took as long as the slowest
            timings[k] = max(timings.get(k, 0), v)
        leftovers += data.get('summary', {}).get('leftover_mounts') or []
    for cell in cells:
        if cell.id not in reported:
            cell.result = {'error': f'no shard reported this cell (merged: {", ".join(dirs)})'}
        cell.result['status'], cell.result['judgement'] = model.judge(cell)
    for version in meta.get('packaging_selection') or []:
        run.packaging.setdefault(version, {
            'status': 'error', 'error': f'no shard reported packaging {version}'})
    unexpected = [c.id for c in cells if c.result['status'] in model.UNEXPECTED]
    unexpected += [f'packaging {v}' for v, p in run.packaging.items() if p.get('status') != 'pass']
    unexpected += clients.unexpected(run.clients)
    if leftovers:
        unexpected.append('leftover mounts')
    summary = {'unexpected': unexpected, 'timings': timings, 'leftover_mounts': leftovers,
               'missing': [c.id for c in cells if c.id not in reported]}
    merged_meta = {k: meta.get(k) for k in ('preset', 'matrix_sha256', 'fuseshim_revision',
                                            'selection', 'packaging_selection')}
    merged_meta.update({'matrix': os.path.abspath(matrix_path), 'shard': None,
                        'merged_from': [os.path.abspath(d) for d in dirs]})
    return cells, run, summary, merged_meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog='fuseshim-matrix merge',
        description='Join the report directories of shards (fuseshim-matrix --shard K/N) '
                    'into one report, judged against the matrix file as a single run is.')
    ap.add_argument('dirs', nargs='+', metavar='DIR', help='shard report directories')
    ap.add_argument('--report-dir', required=True, metavar='OUT')
    ap.add_argument('--matrix', metavar='FILE', help='the matrix file the shards ran '
                                                     '(default: as fuseshim-matrix finds it)')
    args = ap.parse_args(argv)
    from .cli import find_matrix
    path = find_matrix(args.matrix)
    try:
        cells, run, summary, meta = merge(args.dirs, args.report_dir, path)
    except (MergeError, schema.MatrixError) as e:
        print(f'fuseshim-matrix merge: {e}', file=sys.stderr)
        return EXIT_USAGE
    cfg = schema.load(path)
    paths = report.write_all(os.path.realpath(args.report_dir), cfg, cells, run, summary, meta)
    print(report.terminal_table(cells, run.packaging))
    if summary['missing']:
        print(f'\nmissing (no shard reported them): {", ".join(summary["missing"])}')
    if run.clients:
        print(report.clients_terminal_table(run.clients))
    for p in report.problems_list(cells, run.packaging) + report.client_problems(run.clients):
        print('  ' + p)
    print(f'\n{len(cells)} cells from {len(args.dirs)} shards; unexpected: '
          f'{len(summary["unexpected"])}')
    print('reports: ' + ', '.join(os.path.relpath(p) for p in paths.values()))
    return EXIT_UNEXPECTED if summary['unexpected'] else EXIT_OK
