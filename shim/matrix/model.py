"""The matrix as cells, and what each cell is expected to show.

A cell is one (libfuse version, kernel, startup mode).  Its expectation is
derived from the matrix file:

* startup path: "classic" when startup is "classic"; for "auto" it is "sync"
  when the kernel has FUSE_DEV_IOC_SYNC_INIT (kernel version >=
  ``sync_init_since``, or the kernel's own ``sync_init`` flag), else
  "classic"; for "sync" it is "sync", or "unavailable" (SyncInitUnavailable)
  on kernels without it.
* build features: every feature in ``features`` whose minimum libfuse version
  is <= the cell's libfuse version is compiled in, the others are not; a
  libfuse entry's own ``features`` overrides that.
* NEEDED soname: libfuse3.so.4 from libfuse 3.17 on, libfuse3.so.3 before
  (or the entry's ``soname``).
* outcome: "pass", unless a ``rules.expect`` entry says "fail" (with a reason).
``rules.expect`` entries may override any of these for the cells they match.
"""
from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field

from .schema import AXES, Kernel, LibfuseEntry, Match, Matrix, MatrixError


def vtuple(version: str) -> tuple[int, ...]:
    """'6.12.38+deb13-amd64' -> (6, 12, 38); '3.17' -> (3, 17)."""
    m = re.match(r'^(\d+(?:\.\d+)*)', str(version))
    if not m:
        raise ValueError(f'not a version: {version!r}')
    return tuple(int(x) for x in m.group(1).split('.'))


def row_key(row_version: str) -> tuple:
    """Order of libfuse rows: by version, a variant ("3.18.3-uring") after
    its release -- a total order, so every machine sorts (and shards) alike."""
    return vtuple(row_version), row_version


def version_ge(a: str, b: str) -> bool:
    ta, tb = vtuple(a), vtuple(b)
    n = max(len(ta), len(tb))
    return ta + (0,) * (n - len(ta)) >= tb + (0,) * (n - len(tb))


def host_kernel_release() -> str:
    return os.uname().release


@dataclass
class Expectation:
    startup_path: str            # 'sync' | 'classic' | 'unavailable'
    soname: str
    libfuse_version: str
    features: dict
    outcome: str = 'pass'        # 'pass' | 'fail' (known failure)
    reason: str = ''
    sync_init: bool = False      # does the kernel have FUSE_DEV_IOC_SYNC_INIT
    io_uring: bool = False       # FUSE-over-io_uring transport compiled into libfuse

    def to_dict(self):
        return dict(self.__dict__)


@dataclass
class Cell:
    libfuse: LibfuseEntry
    kernel: Kernel
    startup: str
    expect: Expectation = None
    kernel_release: str = ''     # host: uname -r; vm: resolved at run time
    result: dict = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f'{self.libfuse.version}/{self.kernel.name}/{self.startup}'

    @property
    def slug(self) -> str:
        return f'lf{self.libfuse.version}-{self.kernel.name}-{self.startup}'

    @property
    def is_vm(self) -> bool:
        return self.kernel.type == 'vm'

    def axes(self) -> dict:
        return {'libfuse': self.libfuse.version, 'kernel': self.kernel.name,
                'startup': self.startup}


def matches(rule: Match, axes: dict) -> bool:
    """A rule matches a cell when every axis it names has a matching glob."""
    return all(any(fnmatch.fnmatchcase(axes[axis], p) for p in pats)
               for axis, pats in rule.globs().items())


def kernel_sync_init(cfg: Matrix, kernel: Kernel, host_release: str | None = None) -> bool:
    if kernel.sync_init is not None:
        return kernel.sync_init
    if kernel.type == 'host':
        version = host_release if host_release is not None else host_kernel_release()
    else:
        version = kernel.version
    return version_ge(version, cfg.sync_init_since)


def expected_soname(lf: LibfuseEntry) -> str:
    if lf.soname:
        return lf.soname
    return 'libfuse3.so.4' if version_ge(lf.version, '3.17') else 'libfuse3.so.3'


def expected_features(cfg: Matrix, lf: LibfuseEntry) -> dict:
    feats = {name: version_ge(lf.version, since) for name, since in cfg.features.items()}
    feats.update(lf.features)
    return feats


def expected_path(startup: str, sync_ok: bool) -> str:
    if startup == 'classic':
        return 'classic'
    if startup == 'sync':
        return 'sync' if sync_ok else 'unavailable'
    return 'sync' if sync_ok else 'classic'


def expectation(cfg: Matrix, lf: LibfuseEntry, kernel: Kernel, startup: str,
                host_release: str | None = None) -> Expectation:
    sync_ok = kernel_sync_init(cfg, kernel, host_release)
    e = Expectation(startup_path=expected_path(startup, sync_ok), soname=expected_soname(lf),
                    libfuse_version=lf.upstream,
                    features=expected_features(cfg, lf), sync_init=sync_ok,
                    io_uring=lf.io_uring)
    axes = {'libfuse': lf.version, 'kernel': kernel.name, 'startup': startup}
    for rule in cfg.rules.expect:
        if not matches(rule, axes):
            continue
        if rule.startup_path:
            e.startup_path = rule.startup_path
        if rule.soname:
            e.soname = rule.soname
        if rule.features:
            e.features = {**e.features, **rule.features}
        if rule.outcome:
            e.outcome = rule.outcome
            e.reason = rule.reason or ''
    return e


def all_cells(cfg: Matrix, host_release: str | None = None) -> list[Cell]:
    """Every cell of the matrix after rules.exclude / rules.include."""
    if host_release is None:
        host_release = host_kernel_release()
    cells = []
    for lf in cfg.libfuse:
        for k in cfg.kernels:
            for s in cfg.startup:
                axes = {'libfuse': lf.version, 'kernel': k.name, 'startup': s}
                excluded = any(matches(r, axes) for r in cfg.rules.exclude)
                included = any(matches(r, axes) for r in cfg.rules.include)
                if excluded and not included:
                    continue
                cell = Cell(lf, k, s, expectation(cfg, lf, k, s, host_release))
                if k.type == 'host':
                    cell.kernel_release = host_release
                cells.append(cell)
    return cells


# ---------------------------------------------------------------- selection

def parse_cell_patterns(text: str, axis_values: dict | None = None) -> list[Match]:
    """--cells: comma-separated patterns, each either a cell id glob
    'LIBFUSE/KERNEL/STARTUP' (missing parts mean '*'), axis=glob terms
    joined by '+' ('kernel=7.2+startup=auto'), or one bare word naming a
    value of any axis ('host', '7.2', 'classic', '3.17*')."""
    rules = []
    axis_values = axis_values or {}
    for part in filter(None, (p.strip() for p in text.split(','))):
        if '=' in part:
            rule = {}
            for term in part.split('+'):
                axis, _, val = term.partition('=')
                axis = axis.strip()
                if axis not in AXES:
                    raise MatrixError([f'--cells: unknown axis {axis!r} in {part!r} '
                                       f'(use {", ".join(AXES)})'], 'command line')
                rule.setdefault(axis, []).append(val.strip())
            rules.append(Match(**rule))
        elif '/' not in part and any(fnmatch.fnmatchcase(v, part)
                                     for vals in axis_values.values() for v in vals):
            for axis in AXES:
                if any(fnmatch.fnmatchcase(v, part) for v in axis_values.get(axis, ())):
                    rules.append(Match(**{axis: [part]}))
        else:
            bits = part.split('/')
            if len(bits) > 3:
                raise MatrixError([f'--cells: {part!r} has more than LIBFUSE/KERNEL/STARTUP'],
                                  'command line')
            bits += ['*'] * (3 - len(bits))
            rules.append(Match(**{a: [b or '*'] for a, b in zip(AXES, bits)}))
    return rules


_K_TOKEN = re.compile(r'\s*(\(|\)|[^\s()]+)')


def keyword_filter(expr: str):
    """-k: like pytest's -k: words are case-insensitive substrings of the cell
    id (e.g. '3.17.2/host/auto'), combined with and, or, not, parentheses."""
    tokens = _K_TOKEN.findall(expr)
    pos = 0

    def peek():
        return tokens[pos] if pos < len(tokens) else None

    def take():
        nonlocal pos
        pos += 1
        return tokens[pos - 1]

    def parse_or():
        left = parse_and()
        while peek() == 'or':
            take()
            right = parse_and()
            left = (lambda a, b: lambda s: a(s) or b(s))(left, right)
        return left

    def parse_and():
        left = parse_not()
        while peek() == 'and':
            take()
            right = parse_not()
            left = (lambda a, b: lambda s: a(s) and b(s))(left, right)
        return left

    def parse_not():
        if peek() == 'not':
            take()
            inner = parse_not()
            return lambda s: not inner(s)
        return parse_atom()

    def parse_atom():
        tok = peek()
        if tok is None or tok in (')', 'and', 'or'):
            raise MatrixError([f'-k {expr!r}: expected a word at {" ".join(tokens[pos:]) or "end"}'],
                              'command line')
        take()
        if tok == '(':
            inner = parse_or()
            if peek() != ')':
                raise MatrixError([f'-k {expr!r}: missing ")"'], 'command line')
            take()
            return inner
        word = tok.lower()
        return lambda s: word in s.lower()

    fn = parse_or()
    if peek() is not None:
        raise MatrixError([f'-k {expr!r}: unexpected {peek()!r}'], 'command line')
    return fn


def select(cells: list[Cell], patterns: list[Match] | None = None, keyword: str | None = None,
           vm: bool | None = None) -> list[Cell]:
    out = cells
    if patterns:
        out = [c for c in out if any(matches(p, c.axes()) for p in patterns)]
    if keyword:
        fn = keyword_filter(keyword)
        out = [c for c in out if fn(c.id)]
    if vm is not None:
        out = [c for c in out if c.is_vm == vm]
    return out


# ---------------------------------------------------------------- judging

def judge(cell: Cell) -> tuple[str, list[str]]:
    """Compare a cell's observed result with its expectation.

    Returns (status, problems): status is 'pass', 'xfail' (known failure
    reproduced), 'fail' (unexpected), 'xpass' (a known failure passed:
    unexpected too, so the rule gets removed) or 'error' (could not run)."""
    r = cell.result
    e = cell.expect
    if r.get('error'):
        return ('xfail' if e.outcome == 'fail' else 'error'), [r['error']]
    problems = []
    probe = r.get('probe') or {}
    if probe:
        if probe.get('libfuse_runtime_version') != e.libfuse_version:
            problems.append(f'libfuse_version() is {probe.get("libfuse_runtime_version")!r}, '
                            f'expected {e.libfuse_version!r}')
        if probe.get('libfuse_build_version') != e.libfuse_version:
            problems.append(f'built against libfuse {probe.get("libfuse_build_version")!r}, '
                            f'expected {e.libfuse_version!r}')
        got = probe.get('startup_path')
        if got != e.startup_path:
            problems.append(f'startup path {got!r}, expected {e.startup_path!r}'
                            + (f' ({probe.get("startup_reason")})'
                               if probe.get('startup_reason') else ''))
        feats = probe.get('build_features') or {}
        for name, want in sorted(e.features.items()):
            if name not in feats:
                problems.append(f'feature {name!r} is not reported by build_features() '
                                '(update "features" in the matrix file?)')
            elif bool(feats[name]) != want:
                problems.append(f'feature {name!r} is {feats[name]}, expected {want}')
        got_uring = (probe.get('io_uring') or {}).get('libfuse')
        if got_uring is not None and got_uring != e.io_uring:
            problems.append(f'io_uring transport {"in" if got_uring else "not in"} libfuse, '
                            f'expected {"in" if e.io_uring else "not in"}')
        for p in probe.get('problems') or []:
            problems.append(p)
    elif 'probe' in r:
        problems.append('the probe reported nothing')
    soname = r.get('soname')
    if soname is not None and soname != e.soname:
        problems.append(f'NEEDED {soname!r}, expected {e.soname!r}')
    for p in r.get('problems') or []:
        problems.append(p)
    tests = r.get('tests')
    if tests and tests.get('status') not in ('passed', 'no-tests', 'skipped'):
        problems.append(f'tests {tests.get("status")}: {tests.get("summary", "")}'.strip())
    if e.outcome == 'fail':
        return ('xfail', problems) if problems else ('xpass', [
            f'expected to fail ({e.reason}) but passed: remove the rules.expect entry'])
    return ('fail' if problems else 'pass'), problems


UNEXPECTED = ('fail', 'error', 'xpass')
