"""fuseshim-matrix compare: do two reports of the same selection agree?

A sharded run (``--shard K/N`` per CI job, then ``merge``) must judge every
cell exactly as a single run of the same selection does; so must a re-run of
the same matrix on another machine.  ``compare A B`` reads the two report
directories and lists every difference in what was decided — the selection,
each cell's expectation, status, judgement and startup path, each packaging
stage, each client's status and known failures per cell, and the JUnit test
cases with their verdicts — leaving out what legitimately varies between
runs (times, log paths, the shards' directory names).  Exit 0 when they
agree, 1 with the list when they do not, 2 when a report cannot be read.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import xml.etree.ElementTree as ET

EXIT_SAME, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2

# the run's identity: two reports of different selections are not comparable
META_KEYS = ('preset', 'matrix_sha256', 'fuseshim_revision', 'selection',
             'packaging_selection')


class CompareError(Exception):
    pass


def decisions(report_dir: str) -> dict:
    """What a report decided, as plain comparable data."""
    try:
        with open(os.path.join(report_dir, 'report.json')) as f:
            data = json.load(f)
        junit = ET.parse(os.path.join(report_dir, 'junit.xml')).getroot()
    except (OSError, ValueError, ET.ParseError) as e:
        raise CompareError(f'{report_dir}: not a readable matrix report: {e}') from None
    cells = {}
    for c in data.get('cells', []):
        r = c.get('result') or {}
        cells[c['id']] = {'expect': c.get('expect'), 'status': r.get('status'),
                          'judgement': r.get('judgement'),
                          'startup_path': (r.get('probe') or {}).get('startup_path')}
    packaging = {v: {'status': p.get('status'), 'judgement': p.get('judgement')}
                 for v, p in (data.get('packaging') or {}).items()}
    clients = {}
    for name, r in (data.get('clients') or {}).items():
        clients[name] = {'error': bool(r.get('error'))}
        for cid, cr in r.get('cells', {}).items():
            clients[name][cid] = {'status': cr.get('status'),
                                  'known': sorted(k['test'] for k in cr.get('known') or []),
                                  'regressions': sorted(k['test']
                                                        for k in cr.get('regressions') or [])}
    cases = {}
    for tc in junit.iter('testcase'):
        verdict = sorted(ch.tag for ch in tc if ch.tag != 'system-out') or ['passed']
        cases[f'{tc.get("classname")}::{tc.get("name")}'] = verdict
    meta = data.get('meta') or {}
    return {'meta': {k: meta.get(k) for k in META_KEYS}, 'cells': cells,
            'packaging': packaging, 'clients': clients, 'junit': cases}


def differences(a: dict, b: dict, names=('A', 'B')) -> list[str]:
    """Every difference between two decisions() results, one line each."""
    out = []

    def walk(path, x, y):
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y), key=str):
                if k not in x:
                    out.append(f'{path}{k}: only in {names[1]}')
                elif k not in y:
                    out.append(f'{path}{k}: only in {names[0]}')
                else:
                    walk(f'{path}{k}.', x[k], y[k])
        elif x != y:
            out.append(f'{path.rstrip(".")}: {names[0]} {x!r}, {names[1]} {y!r}')
    walk('', a, b)
    return out


def compare_dirs(a_dir: str, b_dir: str) -> list[str]:
    return differences(decisions(a_dir), decisions(b_dir), (a_dir, b_dir))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(
        prog='fuseshim-matrix compare',
        description='Compare what two matrix reports decided (e.g. a merged sharded run '
                    'and a single run of the same selection); exit 1 on any difference.')
    ap.add_argument('a', metavar='REPORT_A')
    ap.add_argument('b', metavar='REPORT_B')
    args = ap.parse_args(argv)
    try:
        diffs = compare_dirs(args.a, args.b)
    except CompareError as e:
        print(f'fuseshim-matrix compare: {e}', file=sys.stderr)
        return EXIT_USAGE
    if diffs:
        print(f'{len(diffs)} differences between {args.a} and {args.b}:')
        for d in diffs:
            print('  ' + d)
        return EXIT_DIFFERENT
    a = decisions(args.a)
    print(f'{args.a} and {args.b} agree: {len(a["cells"])} cells, '
          f'{len(a["packaging"])} packaging stages, {len(a["clients"])} clients, '
          f'{len(a["junit"])} JUnit cases')
    return EXIT_SAME
