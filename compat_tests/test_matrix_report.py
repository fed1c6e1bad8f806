"""The HTML page of the matrix report (index.html), checked as a parsed
document: every anchor a user or another report links to (``#<cell slug>``,
``#pkg-<version>``), the status class and hover title of every grid cell,
the log and file links, and that text from a run (a judgement, a test id, a
client's problem) stays text even when it looks like markup.  Nothing here
mounts or builds anything."""
from __future__ import annotations

import html.parser
import textwrap

import pytest

import matrix_extra

matrix_extra.require()

from fuseshim.matrix import model, report, schema  # noqa: E402
from fuseshim.matrix.progress import fmt_secs  # noqa: E402
from matrix_samples import MINIMAL  # noqa: E402

# text from a run that looks like markup: it must reach the page as text
SCRIPT = '<script>alert("x") & \'y\'</script>'
TEST_ID = 't.py::test_<script>&"q"'


# ---------------------------------------------------------------- a parsed page

class Node:
    def __init__(self, tag, attrs, parent):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self) -> str:
        return ''.join(c if isinstance(c, str) else c.text() for c in self.children)

    def words(self) -> str:
        """The text with whitespace collapsed; elements separate words
        (``host<br><span>auto</span>`` reads "host auto")."""
        parts = (' '.join(c.split()) if isinstance(c, str) else c.words()
                 for c in self.children)
        return ' '.join(p for p in parts if p)

    def all(self, tag=None, **attrs) -> list[Node]:
        """Descendants with this tag (any, if None) and these attributes
        (``class_`` for class)."""
        out = []
        for c in self.children:
            if isinstance(c, Node):
                if ((tag is None or c.tag == tag) and
                        all(c.attrs.get(k.rstrip('_')) == v for k, v in attrs.items())):
                    out.append(c)
                out += c.all(tag, **attrs)
        return out

    def one(self, tag=None, **attrs) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, (tag, attrs, len(found))
        return found[0]

    def direct(self, tag) -> list[Node]:
        return [c for c in self.children if isinstance(c, Node) and c.tag == tag]


VOID = {'meta', 'br', 'hr', 'img', 'input', 'link'}


class TreeParser(html.parser.HTMLParser):
    """The page as a tree (html.parser: what a browser sees as elements);
    a closing tag that does not match the open element is an error here,
    not silently repaired."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node('#root', {}, None)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, attrs, self.cur)
        self.cur.children.append(node)
        if tag not in VOID:
            self.cur = node

    def handle_endtag(self, tag):
        assert self.cur.tag == tag, f'</{tag}> closes <{self.cur.tag}>'
        self.cur = self.cur.parent

    def handle_data(self, data):
        self.cur.children.append(data)


def parse(page: str) -> Node:
    p = TreeParser()
    p.feed(page)
    p.close()
    assert p.cur is p.root, f'<{p.cur.tag}> left open'
    return p.root


# ---------------------------------------------------------------- the fixture

def _probe(path, **more):
    return {'startup_path': path, 'startup_reason': 'INIT answered before mount()',
            'init_before_mount_returned': path == 'sync', 'protocol': '7.41',
            'libfuse_runtime_version': '3.14.0', 'libfuse_build_version': '3.14.0',
            'loaded_libfuse': ['/cache/libfuse.so.3'], 'build_features': {'passthrough': False},
            'io_uring': {'libfuse': False, 'kernel': None}, **more}


@pytest.fixture
def page(tmp_path):
    return realistic_report(tmp_path)


def realistic_report(tmp_path) -> dict:
    """A report with every kind of cell, packaging result and client result
    (its files below ``tmp_path``, a pathlib.Path)."""
    cfg = schema.check(schema.load_yaml_text(textwrap.dedent(MINIMAL)))
    cells = {c.id: c for c in model.all_cells(cfg, host_release='6.18')}
    del cells['3.17.2/7.2/classic']            # a hole in the grid
    tests = {'summary': '3 passed, 1 failed', 'passed': 3, 'failures': 1, 'failed_tests': []}
    results = {
        '3.14.0/host/auto': {'status': 'pass', 'judgement': [], 'probe': _probe('sync'),
                             'tests': {'summary': '4 passed'}},
        '3.14.0/host/classic': {'status': 'fail', 'probe': _probe('sync'),
                                'judgement': ['startup path mismatch', SCRIPT],
                                'tests': {**tests, 'failed_tests': [TEST_ID, 't.py::test_b']}},
        '3.14.0/6.12/auto': {'status': 'xfail', 'judgement': [], 'probe': _probe('classic'),
                             'vm': {'console': 'cells/lf3.14.0-6.12-auto/console.log'}},
        '3.14.0/6.12/classic': {'status': 'error', 'judgement': ['build failed: no <fuse.h>']},
        '3.14.0/7.2/auto': {'status': 'xpass', 'judgement': ['passed; expected to fail'],
                            'probe': _probe('sync')},
        '3.14.0/7.2/classic': {},                       # never ran
    }
    for cid, c in cells.items():
        r = results[cid] if cid in results else {
            'status': 'pass', 'judgement': [], 'probe': _probe(c.expect.startup_path)}
        if r:
            r = {**r, 'elapsed': 2.5, 'kernel_release': '6.18.0', 'soname': 'libfuse3.so.3',
                 'dir': f'cells/{c.slug}', 'log': f'cells/{c.slug}/cell.log'}
        if c.kernel.type == 'vm' and r.get('status') == 'pass':
            r['vm'] = {'console': f'cells/{c.slug}/console.log'}
        c.result.update(r)
    # the files a cell's details link to exist for one cell only
    d = tmp_path / 'cells' / 'lf3.14.0-host-auto'
    d.mkdir(parents=True)
    for name in ('cell.log', 'probe.json', 'junit.xml'):
        (d / name).write_text('x')
    packaging = {
        '3.14.0': {'status': 'pass', 'sdist': 'fuseshim-0.1.0.tar.gz', 'wheel': 'w.whl',
                   'soname': 'libfuse3.so.3', 'twine': 'passed', 'log': 'packaging/3.14.0.log',
                   'tests': {'summary': '600 passed'}, 'judgement': [],
                   'files': ['fuseshim/__init__.py', 'fuseshim/_core.so']},
        '3.17.2': {'status': 'fail', 'wheel': 'w.whl', 'twine': 'failed',
                   'log': 'packaging/3.17.2.log', 'judgement': ['twine: <b>bad</b> & worse'],
                   'files': ['fuseshim/__init__.py', 'fuseshim/a<b>.py']},
        '3.99.0': {'status': 'error', 'error': 'no libfuse 3.99.0 & no "build"',
                   'log': 'packaging/3.99.0.log'},
    }
    clients = {
        'demo': {
            'entry': {'project': 'demo-fs', 'version': '1.2.0', 'module': 'fuse'},
            'log': 'clients/demo/client.log', 'prepare': {'reused': True, 'elapsed': 1.0},
            'real': {'counts': {'passed': 3, 'failed': 1}, 'outcomes': {'t::a': 'passed'}},
            'cells': {
                '3.14.0/host/auto': {'status': 'pass', 'fuseshim': {'counts': {'passed': 3}}},
                '3.17.2/host/auto': {'status': 'xfail', 'fuseshim': {'counts': {'passed': 2}},
                                     'known': [{'test': 't::k', 'reason': 'known <diff>'}]},
                '3.14.0/host/classic': {'status': 'fail',
                                        'fuseshim': {'counts': {'passed': 1, 'failed': 2}},
                                        'problems': [f'{TEST_ID}: passes with the real peer']},
            }},
        'broken': {
            'entry': {'project': 'broken & co', 'version': '0.1', 'module': 'fuse'},
            'log': 'clients/broken/client.log', 'error': 'pip install failed: <no wheel>',
            'real': None, 'cells': {}},
    }
    summary = {'unexpected': ['3.14.0/host/classic', '3.14.0/6.12/classic', '3.14.0/7.2/auto',
                              'client demo on 3.14.0/host/classic'],
               'timings': {'prepare': 12.0, 'cells': 95.5, 'total': 130.2}}
    meta = {'date': '2026-12-06 12:00:00 UTC', 'host_kernel': '6.18.0', 'preset': 'ci & <x>',
            'nproc': 2, 'report_dir': str(tmp_path)}
    text = report.html_report(list(cells.values()), packaging, summary, meta, clients)
    return {'text': text, 'doc': parse(text), 'cells': list(cells.values()),
            'packaging': packaging, 'clients': clients, 'summary': summary}


# ---------------------------------------------------------------- the checks

def test_markup_in_run_output_stays_text(page):
    doc, text = page['doc'], page['text']
    assert doc.all('script') == [] and '<script>' not in text and '<b>bad' not in text
    td = next(t for t in doc.all('td') if 'fail' == t.attrs.get('class')
              and SCRIPT in (t.attrs.get('title') or ''))
    assert td.attrs['title'] == f'startup path mismatch; {SCRIPT}'
    details = doc.one('details', id='lf3.14.0-host-classic')
    rows = {tr.one('th').text(): tr.one('td').text() for tr in details.all('tr')}
    assert rows['problems'] == f'startup path mismatch; {SCRIPT}'
    assert rows['failed tests'] == f'{TEST_ID}, t.py::test_b'
    assert doc.one('details', id='pkg-3.17.2').one('pre').text() == \
        'fuseshim/__init__.py\nfuseshim/a<b>.py'
    lis = [li.text() for li in doc.all('li')]
    assert f'client demo on 3.14.0/host/classic: FAIL - {TEST_ID}: passes with the real peer' \
        in lis
    assert 'client broken: ERROR - pip install failed: <no wheel>' in lis


def test_head_and_summary_lines(page):
    doc, summary = page['doc'], page['summary']
    assert doc.one('title').text() == 'fuseshim matrix'
    assert doc.one('meta').attrs == {'charset': 'utf-8'}
    assert 'td.pass{background:#d9f2d9}' in doc.one('style').text()
    assert doc.one('h1').text() == 'fuseshim migration matrix'
    first = doc.one('body').direct('p')[0]
    assert first.attrs == {'class': 'small'} and first.words() == (
        f'2026-12-06 12:00:00 UTC · host kernel 6.18.0 · preset ci & <x> · '
        f'{len(page["cells"])} cells · {fmt_secs(130.2)}')
    second = doc.one('body').direct('p')[1]
    assert second.one('b').text() == f'Unexpected results: {len(summary["unexpected"])}'
    assert second.words().endswith(', '.join(summary['unexpected']))
    assert [h.words() for h in doc.all('h2')] == [
        'Cells', 'Packaging', 'Clients: real projects, real peer vs fuseshim', 'Timings']
    timings = doc.all('ul')[-1]
    assert [li.text() for li in timings.all('li')] == [
        f'prepare: {fmt_secs(12.0)}', f'cells: {fmt_secs(95.5)}', f'total: {fmt_secs(130.2)}']


def test_grid_cells_link_their_details_with_status_class_and_title(page):
    doc, cells, packaging = page['doc'], page['cells'], page['packaging']
    grid = doc.all('table')[0]
    head = grid.direct('tr')[0]
    rows, cols, by = report.grid(cells, packaging)
    assert [th.words() for th in head.all('th')] == (
        ['libfuse'] + [f'{k} {s}' for k, s in cols] + ['packaging'])
    assert [th.one('span', class_='small').text() for th in head.all('th')[1:-1]] == \
        [s for _, s in cols]
    body = grid.direct('tr')[1:]
    assert [tr.direct('th')[0].text() for tr in body] == rows == ['3.14.0', '3.17.2', '3.99.0']
    for tr, v in zip(body, rows):
        tds = tr.direct('td')
        assert len(tds) == len(cols) + 1
        for td, (k, s) in zip(tds, cols):
            c = by.get((v, k, s))
            if c is None:
                assert td.attrs == {'class': 'none'} and td.text() == '-'
                continue
            r = c.result
            assert td.attrs == {'class': r.get('status') or 'none',
                                'title': '; '.join(r.get('judgement') or []) or 'as expected'}
            links = td.all('a')
            assert links[0].attrs == {'href': f'#{c.slug}'}
            assert links[0].text() == report._cell_text(c)
            if r.get('log'):
                assert links[1].attrs == {'class': 'small', 'href': r['log']}
                assert links[1].text() == 'log'
            else:
                assert len(links) == 1
        pkg = tds[-1]
        p = packaging[v]
        assert pkg.attrs == {'class': p['status']}
        assert pkg.all('a')[0].attrs == {'href': f'#pkg-{v}'}
        assert pkg.all('a')[0].text() == report.SYMBOL[p['status']]
        assert pkg.all('a')[1].attrs == {'class': 'small', 'href': p['log']}
    assert [td.words() for td in body[0].direct('td')][:2] == ['PASS sync log',
                                                                     'FAIL sync!=classic log']
    assert body[0].direct('td')[5].attrs == {'class': 'none', 'title': 'as expected'}


def test_every_anchor_exists_once_and_every_fragment_link_resolves(page):
    doc, cells = page['doc'], page['cells']
    ids = [n.attrs['id'] for n in doc.all() if 'id' in n.attrs]
    assert len(ids) == len(set(ids))
    assert set(ids) == {c.slug for c in cells} | {f'pkg-{v}' for v in page['packaging']}
    for a in doc.all('a'):
        href = a.attrs['href']
        if href.startswith('#'):
            assert href[1:] in ids, href


def test_cell_details(page):
    doc, cells = page['doc'], page['cells']
    for c in cells:
        d = doc.one('details', id=c.slug)
        st = c.result.get('status') or 'none'
        assert ('open' in d.attrs) == (st in model.UNEXPECTED), c.id
        assert d.one('summary').one('b').text() == c.id
        assert d.one('summary').text() == f'{c.id}: {report.SYMBOL.get(st, st)}'
        rows = [(tr.one('th').text(), tr.one('td')) for tr in d.all('tr')]
        assert [k for k, _ in rows] == [
            'expected', 'kernel', 'startup path', 'INIT before mount returned', 'protocol',
            'libfuse runtime / build', 'loaded', 'NEEDED', 'build features',
            'io_uring (libfuse / kernel)', 'problems', 'tests', 'failed tests', 'time', 'files']
        got = {k: td for k, td in rows}
        assert got['io_uring (libfuse / kernel)'].text() == report.io_uring_text(
            c.result.get('probe') or {})
        assert got['time'].text() == f'{c.result.get("elapsed")} s'
        files = [(a.attrs['href'], a.text()) for a in got['files'].all('a')]
        want = []
        if c.slug == 'lf3.14.0-host-auto':
            want = [(f'cells/{c.slug}/{n}', n) for n in ('cell.log', 'probe.json', 'junit.xml')]
        if (c.result.get('vm') or {}).get('console'):
            want.append((c.result['vm']['console'], 'console.log'))
        assert files == want, c.id
        if not want:
            assert got['files'].text() == '-'
    ok = doc.one('details', id='lf3.14.0-host-auto')
    files = ok.all('tr')[-1].one('td')
    assert files.words() == 'cell.log · probe.json · junit.xml'
    vm = doc.one('details', id='lf3.14.0-6.12-auto')
    assert 'open' not in vm.attrs and vm.all('a')[0].attrs['href'].endswith('/console.log')
    err = doc.one('details', id='lf3.14.0-6.12-classic')
    rows = {tr.one('th').text(): tr.one('td').text() for tr in err.all('tr')}
    assert rows['problems'] == 'build failed: no <fuse.h>' and rows['startup path'] == \
        'None - None'


def test_packaging_details(page):
    doc = page['doc']
    for v, p in page['packaging'].items():
        d = doc.one('details', id=f'pkg-{v}')
        assert ('open' in d.attrs) == (p['status'] != 'pass')
        assert d.one('summary').text() == f'libfuse {v}: {report.SYMBOL[p["status"]]}'
        rows = {tr.one('th').text(): tr.one('td') for tr in d.all('tr')}
        assert [k for k in rows] == [k for k in ('sdist', 'wheel', 'soname', 'twine', 'error')
                                     if p.get(k)] + [
            'tests on the wheel', 'problems', 'log', 'wheel files']
        assert rows['log'].one('a').attrs == {'href': p['log']}
        assert rows['problems'].text() == '; '.join(p.get('judgement') or []) or '-'
        assert rows['wheel files'].one('pre').text() == '\n'.join(p.get('files') or [])
    err = doc.one('details', id='pkg-3.99.0')
    assert err.all('tr')[0].one('td').text() == 'no libfuse 3.99.0 & no "build"'
    ok = {tr.one('th').text(): tr.one('td').text()
          for tr in doc.one('details', id='pkg-3.14.0').all('tr')}
    assert ok['tests on the wheel'] == '600 passed' and ok['problems'] == '-'


def test_clients_table(page):
    doc, clients = page['doc'], page['clients']
    table = doc.all('table')[-1]
    cols, rows = report.client_grid(clients)
    head = table.direct('tr')[0]
    assert [th.words() for th in head.all('th')] == (
        ['client', 'project', 'real peer'] + [f'fuseshim {c}' for c in cols])
    body = table.direct('tr')[1:]
    assert len(body) == len(rows)
    for tr, (name, r) in zip(body, rows):
        th = tr.direct('th')[0]
        assert th.one('a').attrs == {'href': r['log']} and th.text() == name
        tds = tr.direct('td')
        e = r['entry']
        assert tds[0].words() == f'{e["project"]} {e["version"]} {e["module"]}'
        assert tds[0].one('code').text() == e['module']
        assert tds[1].text() == report.client_real_text(r)
        for td, cid in zip(tds[2:], cols, strict=True):
            cr = r['cells'].get(cid)
            if not cr:
                assert td.attrs == {'class': 'none'} and td.text() == '-'
                continue
            assert td.attrs == {'class': cr['status'], 'title': '; '.join(
                cr.get('problems') or []) or 'as with the real peer'}
            assert td.text() == report.client_cell_text(cr)
    ul = table.parent.direct('ul')[0]
    assert [li.text() for li in ul.all('li')] == report.client_problems(clients)


def test_no_clients_no_packaging(tmp_path):
    """The sections of absent stages are left out, not shown empty."""
    cfg = schema.check(schema.load_yaml_text(textwrap.dedent(MINIMAL)))
    cells = model.all_cells(cfg, host_release='6.18')[:2]
    for c in cells:
        c.result.update({'status': 'pass', 'judgement': [], 'elapsed': 1.0})
    text = report.html_report(cells, {}, {'unexpected': [], 'timings': {'total': 1.0}},
                              {'report_dir': str(tmp_path)}, {})
    doc = parse(text)
    assert [h.text() for h in doc.all('h2')] == ['Cells', 'Timings']
    assert [th.words() for th in doc.all('table')[0].direct('tr')[0].all('th')] == [
        'libfuse', 'host auto', 'host classic']
    assert doc.all('details', id='pkg-3.14.0') == []
