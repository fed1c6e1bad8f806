"""Reports: terminal table, Markdown, JSON, JUnit XML and a self-contained
HTML grid (per-cell log links relative to the report directory; the page is
the Jinja2 template templates/report.html.j2)."""
from __future__ import annotations

import functools
import importlib.resources
import json
import os
import platform
import time
import xml.etree.ElementTree as ET

import jinja2

from . import model
from .progress import fmt_secs

SYMBOL = {'pass': 'PASS', 'xfail': 'XFAIL', 'fail': 'FAIL', 'error': 'ERROR',
          'xpass': 'XPASS', None: '-'}


def _cell_text(c: model.Cell, short=False) -> str:
    r = c.result
    status = SYMBOL.get(r.get('status'), '?')
    got = (r.get('probe') or {}).get('startup_path')
    want = c.expect.startup_path
    if got and got != want:
        path = f'{got}!={want}'
    else:
        path = got or f'({want})'
    return f'{status} {path}'


def columns(cells):
    cols = []
    for c in cells:
        key = (c.kernel.name, c.startup)
        if key not in cols:
            cols.append(key)
    return cols


def grid(cells, packaging: dict):
    rows = sorted({c.libfuse.version for c in cells} | set(packaging), key=model.row_key)
    cols = columns(cells)
    by = {(c.libfuse.version, c.kernel.name, c.startup): c for c in cells}
    return rows, cols, by


def terminal_table(cells, packaging: dict) -> str:
    rows, cols, by = grid(cells, packaging)
    head = ['libfuse'] + [f'{k}/{s}' for k, s in cols] + (['packaging'] if packaging else [])
    body = []
    for v in rows:
        line = [v]
        for k, s in cols:
            c = by.get((v, k, s))
            line.append(_cell_text(c) if c else '')
        if packaging:
            p = packaging.get(v)
            line.append(SYMBOL.get(p.get('status'), '?') if p else '')
        body.append(line)
    widths = [max(len(str(r[i])) for r in [head] + body) for i in range(len(head))]
    fmt = '  '.join('{:<%d}' % w for w in widths)
    out = [fmt.format(*head), fmt.format(*['-' * w for w in widths])]
    out += [fmt.format(*r) for r in body]
    return '\n'.join(out)


def problems_list(cells, packaging) -> list[str]:
    out = []
    for c in cells:
        st = c.result.get('status')
        if st != 'pass':
            why = '; '.join(c.result.get('judgement') or []) or c.expect.reason
            out.append(f'{c.id}: {SYMBOL.get(st, st)} - {why}')
    for v, p in sorted(packaging.items()):
        if p.get('status') != 'pass':
            why = p.get('error') or '; '.join(p.get('judgement') or [])
            out.append(f'packaging {v}: {SYMBOL.get(p.get("status"), "?")} - {why}')
    return out


def io_uring_text(probe: dict) -> str:
    """FUSE over io_uring as the probe saw it: compiled into the cell's
    libfuse, and what the kernel's enable_uring parameter offers."""
    u = probe.get('io_uring')
    if not u:
        return '-'
    lib = {True: 'compiled in', False: 'not compiled in'}.get(u.get('libfuse'), 'unknown')
    kern = {True: 'enabled', False: 'disabled (enable_uring=N)'}.get(
        u.get('kernel'), 'absent (no enable_uring parameter)')
    return f'{lib} / {kern}'


# ---------------------------------------------------------------- clients

def client_grid(clients: dict):
    """(cell ids in order, rows): one row per client, the real peer's run
    first, then fuseshim's per libfuse cell."""
    cols = []
    for r in clients.values():
        for cid in r['cells']:
            if cid not in cols:
                cols.append(cid)
    return cols, list(clients.items())


def client_cell_text(cr: dict | None) -> str:
    if not cr:
        return ''
    from .clients import side_text
    return f'{SYMBOL.get(cr.get("status"), "?")} {side_text(cr.get("fuseshim"))}'.strip()


def client_real_text(r: dict) -> str:
    from .clients import side_text
    if r.get('error'):
        return 'ERROR (install)'
    return side_text(r.get('real'))


def client_problems(clients: dict) -> list[str]:
    out = []
    for name, r in clients.items():
        if r.get('error'):
            out.append(f'client {name}: ERROR - {r["error"]}')
        if (r.get('real') or {}).get('error'):
            out.append(f'client {name} (real peer): {r["real"]["error"]}')
        for cid, cr in r['cells'].items():
            if cr.get('status') != 'pass':
                out.append(f'client {name} on {cid}: {SYMBOL.get(cr.get("status"), "?")} - '
                           + ('; '.join(cr.get('problems') or []) or
                              '; '.join(f'{k["test"]} ({k["reason"]})'
                                        for k in cr.get('known') or [])))
    return out


def clients_terminal_table(clients: dict) -> str:
    cols, rows = client_grid(clients)
    head = ['client', 'real peer'] + [f'fuseshim {c}' for c in cols]
    body = [[name, client_real_text(r)] + [client_cell_text(r['cells'].get(c)) for c in cols]
            for name, r in rows]
    widths = [max(len(str(x[i])) for x in [head] + body) for i in range(len(head))]
    fmt = '  '.join('{:<%d}' % w for w in widths)
    return '\n'.join([fmt.format(*head), fmt.format(*['-' * w for w in widths])]
                     + [fmt.format(*b) for b in body])


def clients_markdown(clients: dict) -> list[str]:
    if not clients:
        return []
    cols, rows = client_grid(clients)
    lines = ['## Clients: real projects, real peer vs fuseshim', '',
             'Each project\'s own suite (or scenario) with the real peer (its venv, the '
             'system libfuse), then with fuseshim providing the peer\'s module '
             '(`FUSESHIM_PROVIDES`) in each libfuse cell. PASS: fuseshim passes every test '
             'the real peer passes (compared per test id).', '',
             '| client | project | imports | real peer | ' + ' | '.join(
                 f'fuseshim {c}' for c in cols) + ' |', '|' + '---|' * (4 + len(cols))]
    for name, r in rows:
        e = r['entry']
        lines.append(f'| {name} | {e["project"]} {e["version"]} | `{e["module"]}` | '
                     f'{client_real_text(r)} | '
                     + ' | '.join(client_cell_text(r['cells'].get(c)) for c in cols) + ' |')
    details = []
    for name, r in rows:
        for cid, cr in r['cells'].items():
            for key, what in (('regressions', 'pass with the real peer only'),
                              ('known', 'known differences'),
                              ('both_failed', 'fail with both (not counted)'),
                              ('only_fuseshim_passed', 'pass with fuseshim only')):
                items = cr.get(key) or []
                if items:
                    ids = [i['test'] if isinstance(i, dict) else i for i in items]
                    details.append(f'- {name} on {cid}, {what}: '
                                   + ', '.join(f'`{t}`' for t in ids[:20])
                                   + (f' (+{len(ids) - 20})' if len(ids) > 20 else ''))
    if details:
        lines += [''] + details
    lines += ['', '| client | install | real run | log |', '|---|---|---|---|']
    for name, r in rows:
        p = r.get('prepare') or {}
        lines.append(f'| {name} | {("reused" if p.get("reused") else "built")} '
                     f'{p.get("elapsed", "-")} s | {(r.get("real") or {}).get("elapsed", "-")} s'
                     f' | [log]({r.get("log")}) |')
    return lines + ['']


def host_info() -> dict:
    return {'host_kernel': platform.release(), 'python': platform.python_version(),
            'machine': platform.machine(), 'nproc': os.cpu_count(),
            'date': time.strftime('%Y-%m-%d %H:%M:%S %Z')}


def to_json(cfg, cells, runner, summary, meta) -> dict:
    return {
        'meta': meta, 'host': host_info(), 'summary': summary,
        'cells': [{'id': c.id, 'libfuse': c.libfuse.version, 'kernel': c.kernel.name,
                   'kernel_type': c.kernel.type, 'startup': c.startup,
                   'expect': c.expect.to_dict(), 'result': c.result} for c in cells],
        'packaging': runner.packaging if runner else {},
        'builds': {v: {k: b.get(k) for k in ('soname', 'needed', 'resolved', 'site', 'log',
                                              'libfuse_log', 'libfuse_reused', 'problems')}
                   for v, b in (runner.builds.items() if runner else [])},
        'kernels': runner.kernels if runner else {},
        'prep_errors': runner.prep_errors if runner else {},
        'clients': getattr(runner, 'clients', {}) if runner else {},
    }


def markdown(cells, packaging, summary, meta, clients=None) -> str:
    rows, cols, by = grid(cells, packaging)
    head = ['libfuse'] + [f'{k} / {s}' for k, s in cols] + (['packaging'] if packaging else [])
    lines = ['# fuseshim matrix report', '',
             f'{meta.get("date")} on kernel {meta.get("host_kernel")} '
             f'({meta.get("nproc")} CPUs); preset `{meta.get("preset") or "-"}`; '
             f'{len(cells)} cells; total {fmt_secs(summary["timings"].get("total", 0))}.', '',
             'Each cell: status, then the startup path seen (`seen!=expected` when they differ; '
             'in parentheses: expected, when the probe did not run).', '',
             '| ' + ' | '.join(head) + ' |', '|' + '---|' * len(head)]
    for v in rows:
        line = [f'**{v}**']
        for k, s in cols:
            c = by.get((v, k, s))
            line.append(_cell_text(c) if c else '')
        if packaging:
            p = packaging.get(v)
            line.append(SYMBOL.get(p.get('status'), '?') if p else '')
        lines.append('| ' + ' | '.join(line) + ' |')
    probs = problems_list(cells, packaging) + client_problems(clients or {})
    lines += ['', f'**Unexpected results: {len(summary["unexpected"])}**'
              + (' (' + ', '.join(summary['unexpected']) + ')' if summary['unexpected'] else ''),
              '']
    if probs:
        lines += ['## Problems', ''] + [f'- {p}' for p in probs] + ['']
    lines += ['## Cells', '', '| cell | status | expected path | seen | kernel | libfuse '
              '(runtime) | soname | io_uring (libfuse / kernel) | tests | time | log |',
              '|---|---|---|---|---|---|---|---|---|---|---|']
    for c in cells:
        r = c.result
        p = r.get('probe') or {}
        t = r.get('tests') or {}
        tests = (f'{t.get("passed", 0)} passed, {t.get("failures", 0) + t.get("errors", 0)} '
                 f'failed, {t.get("skipped", 0)} skipped' if t else '-')
        lines.append(f'| {c.id} | {SYMBOL.get(r.get("status"))} | {c.expect.startup_path} | '
                     f'{p.get("startup_path", "-")} | {r.get("kernel_release") or "-"} | '
                     f'{p.get("libfuse_runtime_version", "-")} | {r.get("soname") or "-"} | '
                     f'{io_uring_text(p)} | {tests} | {r.get("elapsed", "-")} s | '
                     f'{"[log](" + r["log"] + ")" if r.get("log") else "-"} |')
    if packaging:
        lines += ['', '## Packaging', '', '| libfuse | status | wheel | soname | twine | '
                  'tests on the wheel | log |', '|---|---|---|---|---|---|---|']
        for v, p in sorted(packaging.items(), key=lambda kv: model.row_key(kv[0])):
            t = p.get('tests') or {}
            lines.append(f'| {v} | {SYMBOL.get(p.get("status"))} | {p.get("wheel", "-")} | '
                         f'{p.get("soname", "-")} | {p.get("twine", "-")} | '
                         f'{t.get("summary", "-") if t else "-"} | [log]({p.get("log")}) |')
    lines += [''] + clients_markdown(clients or {})
    t = summary['timings']
    lines += ['', '## Timings', ''] + [f'- {k}: {fmt_secs(v)}' for k, v in t.items()]
    return '\n'.join(lines) + '\n'


def junit(cells, packaging, clients=None) -> bytes:
    suite = ET.Element('testsuite', name='fuseshim-matrix')
    n = fails = errors = skipped = 0
    total_time = 0.0

    def verdict(tc, status, msg, skip_msg):
        """A status as JUnit sees it: unexpected ones fail, known failures skip."""
        nonlocal fails, errors, skipped
        if status in ('fail', 'xpass'):
            fails += 1
            ET.SubElement(tc, 'failure', message=msg[:500]).text = msg
        elif status == 'error':
            errors += 1
            ET.SubElement(tc, 'error', message=msg[:500]).text = msg
        elif status == 'xfail':
            skipped += 1
            ET.SubElement(tc, 'skipped', message=skip_msg)
    for c in cells:
        r = c.result
        tc = ET.SubElement(suite, 'testcase', classname=f'matrix.libfuse-{c.libfuse.version}',
                           name=f'{c.kernel.name}/{c.startup}', time=str(r.get('elapsed', 0)))
        total_time += float(r.get('elapsed') or 0)
        n += 1
        verdict(tc, r.get('status'), '; '.join(r.get('judgement') or []),
                f'expected failure: {c.expect.reason}')
        out = ET.SubElement(tc, 'system-out')
        p = r.get('probe') or {}
        out.text = (f'expected path {c.expect.startup_path}, seen {p.get("startup_path")}; '
                    f'libfuse {p.get("libfuse_runtime_version")}; soname {r.get("soname")}; '
                    f'log {r.get("log")}')
    for v, p in sorted(packaging.items()):
        n += 1
        tc = ET.SubElement(suite, 'testcase', classname=f'matrix.libfuse-{v}', name='packaging',
                           time=str(p.get('elapsed', 0)))
        if p.get('status') == 'error':
            errors += 1
            ET.SubElement(tc, 'error', message=str(p.get('error'))[:500]).text = p.get('error')
        elif p.get('status') != 'pass':
            fails += 1
            msg = '; '.join(p.get('judgement') or [])
            ET.SubElement(tc, 'failure', message=msg[:500]).text = msg
    for name, r in (clients or {}).items():
        for cid, cr in r['cells'].items():
            n += 1
            tc = ET.SubElement(suite, 'testcase', classname=f'matrix.clients.{name}', name=cid,
                               time=str((cr.get('fuseshim') or {}).get('elapsed', 0)))
            verdict(tc, cr.get('status'), '; '.join(cr.get('problems') or []),
                    'known differences: ' + '; '.join(f'{k["test"]} ({k["reason"]})'
                                                      for k in cr.get('known') or []))
            ET.SubElement(tc, 'system-out').text = (
                f'real peer: {client_real_text(r)}; fuseshim: {client_cell_text(cr)}')
        if r.get('error') or not r['cells']:
            n += 1
            tc = ET.SubElement(suite, 'testcase', classname=f'matrix.clients.{name}',
                               name='install + real peer')
            err = r.get('error') or (r.get('real') or {}).get('error')
            if err:
                errors += 1
                ET.SubElement(tc, 'error', message=str(err)[:500]).text = str(err)
    suite.set('tests', str(n))
    suite.set('failures', str(fails))
    suite.set('errors', str(errors))
    suite.set('skipped', str(skipped))
    suite.set('time', f'{total_time:.1f}')
    root = ET.Element('testsuites')
    root.append(suite)
    return ET.tostring(root, encoding='utf-8', xml_declaration=True)


@functools.cache
def _templates() -> jinja2.Environment:
    # the template is read as a resource of this package (importlib.resources),
    # not from a path next to this file: the same from an installed wheel and
    # from the editable install, whose package directory is not shim/matrix
    def source(name):
        return (importlib.resources.files(__package__) / 'templates' / name).read_text(
            encoding='utf-8')
    return jinja2.Environment(loader=jinja2.FunctionLoader(source), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True,
                              lstrip_blocks=True)


def _grid_cell(c: model.Cell | None) -> dict | None:
    if not c:
        return None
    r = c.result
    return {'status': r.get('status') or 'none', 'slug': c.slug, 'text': _cell_text(c),
            'title': '; '.join(r.get('judgement') or []) or 'as expected', 'log': r.get('log')}


def _grid_packaging(p: dict | None) -> dict | None:
    if not p:
        return None
    st = p.get('status') or 'none'
    return {'status': st, 'symbol': SYMBOL.get(st, st), 'log': p.get('log') or ''}


def _cell_details(c: model.Cell, report_dir: str) -> dict:
    r = c.result
    p = r.get('probe') or {}
    st = r.get('status') or 'none'
    rows = [('expected', json.dumps(c.expect.to_dict(), sort_keys=True)),
            ('kernel', r.get('kernel_release')),
            ('startup path', f'{p.get("startup_path")} - {p.get("startup_reason")}'),
            ('INIT before mount returned', p.get('init_before_mount_returned')),
            ('protocol', p.get('protocol')),
            ('libfuse runtime / build', f'{p.get("libfuse_runtime_version")} / '
                                        f'{p.get("libfuse_build_version")}'),
            ('loaded', ', '.join(p.get('loaded_libfuse') or [])),
            ('NEEDED', r.get('soname')),
            ('build features', json.dumps(p.get('build_features'), sort_keys=True)),
            ('io_uring (libfuse / kernel)', io_uring_text(p)),
            ('problems', '; '.join(r.get('judgement') or []) or '-'),
            ('tests', (r.get('tests') or {}).get('summary')),
            ('failed tests', ', '.join((r.get('tests') or {}).get('failed_tests') or []) or '-'),
            ('time', f'{r.get("elapsed")} s')]
    files = []
    d = r.get('dir')
    for name in ('cell.log', 'probe.log', 'tests.log', 'probe.json', 'junit.xml'):
        if d and os.path.exists(os.path.join(report_dir, d, name)):
            files.append((f'{d}/{name}', name))
    console = (r.get('vm') or {}).get('console')
    if console:
        files.append((console, 'console.log'))
    return {'slug': c.slug, 'id': c.id, 'symbol': SYMBOL.get(st, st),
            'open': st in model.UNEXPECTED, 'rows': [(k, str(v)) for k, v in rows],
            'files': files}


def _packaging_details(v: str, p: dict) -> dict:
    st = p.get('status') or 'none'
    return {'version': v, 'symbol': SYMBOL.get(st, st), 'open': st != 'pass',
            'rows': [(k, str(p[k])) for k in ('sdist', 'wheel', 'soname', 'twine', 'error')
                     if p.get(k)],
            'tests': str((p.get('tests') or {}).get('summary', '-')),
            'problems': '; '.join(p.get('judgement') or []) or '-',
            'log': p.get('log') or '', 'files': p.get('files') or []}


def _client_table(clients: dict) -> dict:
    cols, rows = client_grid(clients)

    def cell(cr):
        if not cr:
            return None
        return {'status': cr.get('status') or 'none', 'text': client_cell_text(cr),
                'title': '; '.join(cr.get('problems') or []) or 'as with the real peer'}
    return {'columns': cols, 'problems': client_problems(clients),
            'rows': [{'name': name, 'log': r.get('log') or '', 'project': r['entry']['project'],
                      'version': r['entry']['version'], 'module': r['entry']['module'],
                      'real': client_real_text(r),
                      'cells': [cell(r['cells'].get(c)) for c in cols]}
                     for name, r in rows]}


def html_report(cells, packaging, summary, meta, clients=None) -> str:
    """index.html: templates/report.html.j2 rendered from plain data."""
    rows, cols, by = grid(cells, packaging)
    return _templates().get_template('report.html.j2').render(
        run={'date': str(meta.get('date')), 'host_kernel': str(meta.get('host_kernel')),
             'preset': str(meta.get('preset')), 'cells': len(cells),
             'total': fmt_secs(summary['timings'].get('total', 0))},
        unexpected=summary['unexpected'],
        columns=cols,
        grid=[{'version': v, 'cells': [_grid_cell(by.get((v, k, s))) for k, s in cols],
               'packaging': _grid_packaging(packaging.get(v))} for v in rows],
        cells=[_cell_details(c, meta.get('report_dir', '')) for c in cells],
        packaging=[_packaging_details(v, p) for v, p in
                   sorted(packaging.items(), key=lambda kv: model.row_key(kv[0]))],
        clients=_client_table(clients) if clients else None,
        timings=[(k, fmt_secs(v)) for k, v in summary['timings'].items()])


def write_all(report_dir, cfg, cells, runner, summary, meta) -> dict:
    os.makedirs(report_dir, exist_ok=True)
    meta = {**host_info(), **meta, 'report_dir': report_dir}
    packaging = runner.packaging if runner else {}
    paths = {k: os.path.join(report_dir, n) for k, n in (
        ('markdown', 'report.md'), ('json', 'report.json'), ('junit', 'junit.xml'),
        ('html', 'index.html'))}
    clients = getattr(runner, 'clients', None) or {}
    with open(paths['markdown'], 'w') as f:
        f.write(markdown(cells, packaging, summary, meta, clients))
    with open(paths['json'], 'w') as f:
        json.dump(to_json(cfg, cells, runner, summary, meta), f, indent=2, sort_keys=True,
                  default=str)
    with open(paths['junit'], 'wb') as f:
        f.write(junit(cells, packaging, clients))
    with open(paths['html'], 'w') as f:
        f.write(html_report(cells, packaging, summary, meta, clients))
    return paths
