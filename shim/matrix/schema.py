"""Loading and checking matrix.yaml.

Hand-written checks (no jsonschema dependency) so that every error names the
file, the line and the dotted path of the offending value, e.g.::

    matrix.yaml:12: libfuse[1].version: 3.1 is a number; quote versions ("3.10")

All errors of a file are collected and raised together as one MatrixError.
"""
from __future__ import annotations

import fnmatch
import os
import re
from typing import Any

AXES = ('libfuse', 'kernel', 'startup')
STARTUP_MODES = ('auto', 'sync', 'classic')
LIBFUSE_SOURCES = ('apt-source', 'apt-binary', 'system')
KERNEL_TYPES = ('host', 'vm')
OUTCOMES = ('pass', 'fail')
STARTUP_PATHS = ('sync', 'classic')
VERSION_RE = re.compile(r'^\d+\.\d+(\.\d+)?$')
# a libfuse row: its upstream version, optionally with a variant of the same
# release built differently ("3.18.3-uring"); the variant names the row
LIBFUSE_ROW_RE = re.compile(r'^\d+\.\d+(\.\d+)?(-[a-z][a-z0-9]*)?$')
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]*$')

# vm_path '@path': the same suite as on the host; None (null): the probe only
# startup: run the suite only in cells of these startup modes (None: all)
# vm_extra: [{cells: [match...], args: [...]}]: more test files for the VM
#   cells that match (suites too slow under emulation for every VM cell)
DEFAULT_TESTS = {'path': 'compat_tests', 'args': [], 'vm_path': '@path', 'vm_args': None,
                 'startup': None, 'vm_extra': []}

TOP_KEYS = {'version', 'mirror', 'suites', 'busybox', 'libfuse', 'kernels', 'startup',
            'features', 'sync_init_since', 'rules', 'tests', 'timeouts', 'vm', 'presets',
            'clients'}

# clients: the peers fuseshim's layers stand in for ($FUSESHIM_PROVIDES entries,
# _fuseshim_provide.PROVIDES) and the module names each one provides
PEER_MODULES = {'pyfuse3': ('pyfuse3', 'pyfuse3.asyncio', 'pyfuse3_asyncio'),
                'mfusepy': ('mfusepy',), 'fusepy': ('fuse',)}
CLIENT_TEST_SOURCES = ('sdist', 'installed', 'scenario')
# a pinned release: 1.4.5, 2026.9.0, 2.0.0b23, 1.0rc1, 3.0.post1 (no ranges)
PINNED_RE = re.compile(r'^\d+(\.\d+)*((a|b|rc)\d+)?(\.post\d+)?(\.dev\d+)?$')
CLIENT_DEFAULT_TIMEOUT = 900


class MatrixError(ValueError):
    """matrix.yaml is malformed; ``errors`` lists every problem found."""

    def __init__(self, errors: list[str], source: str = 'matrix.yaml'):
        self.errors = list(errors)
        self.source = source
        n = len(self.errors)
        super().__init__(f'{source}: {n} problem{"s" if n != 1 else ""}:\n  '
                         + '\n  '.join(self.errors))


# ---------------------------------------------------------------- YAML with lines

class _LineDict(dict):
    line = 0


class _LineList(list):
    line = 0


def _loader():
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    def mapping(loader, node, deep=False):
        d = _LineDict(yaml.SafeLoader.construct_mapping(loader, node, deep=True))
        d.line = node.start_mark.line + 1
        d.key_lines = {}
        for k, _v in node.value:
            try:
                d.key_lines[loader.construct_object(k, deep=True)] = k.start_mark.line + 1
            except TypeError:  # unhashable key; reported by the checks
                pass
        return d

    def sequence(loader, node, deep=False):
        seq = _LineList(yaml.SafeLoader.construct_sequence(loader, node, deep=True))
        seq.line = node.start_mark.line + 1
        return seq

    def no_duplicates(loader, node, deep=False):
        seen = {}
        for k, _v in node.value:
            key = loader.construct_object(k, deep=True)
            try:
                if key in seen:
                    raise MatrixError([f'line {k.start_mark.line + 1}: duplicate key {key!r} '
                                       f'(first on line {seen[key]})'])
                seen[key] = k.start_mark.line + 1
            except TypeError:
                pass
        return mapping(loader, node, deep)

    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, no_duplicates)
    Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, sequence)
    return Loader


def load_yaml_text(text: str, source: str = 'matrix.yaml') -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency of the matrix extra
        raise MatrixError(['PyYAML is not installed: pip install "fuseshim[matrix]" '
                           '(or pip install PyYAML)'], source) from None
    try:
        return yaml.load(text, Loader=_loader())
    except MatrixError as e:
        raise MatrixError(e.errors, source) from None
    except yaml.YAMLError as e:
        mark = getattr(e, 'problem_mark', None)
        where = f'line {mark.line + 1}, column {mark.column + 1}: ' if mark else ''
        problem = getattr(e, 'problem', None) or str(e)
        ctx = getattr(e, 'context', None)
        raise MatrixError([f'{where}not valid YAML: {problem}' + (f' ({ctx})' if ctx else '')],
                          source) from None


# ---------------------------------------------------------------- checker

class Checker:
    def __init__(self):
        self.errors: list[str] = []

    def err(self, path: str, msg: str, node=None, key=None):
        line = None
        if isinstance(node, _LineDict) and key is not None:
            line = node.key_lines.get(key, node.line)
        elif node is not None:
            line = getattr(node, 'line', None)
        self.errors.append(f'{"line %d: " % line if line else ""}{path}: {msg}')

    # typed getters -------------------------------------------------
    def mapping(self, value, path, node=None, key=None) -> bool:
        if not isinstance(value, dict):
            self.err(path, f'expected a mapping (key: value), got {_kind(value)}', node, key)
            return False
        return True

    def section_list(self, doc, key: str, what: str):
        """doc[key] as a non-empty list; None (reported) if it is not one,
        and also None (not an error) if the section is absent."""
        if key not in doc:
            return None
        lst = doc[key]
        if not isinstance(lst, list) or not lst:
            self.err(key, f'expected a non-empty list of {what}, got {_kind(lst)}', doc, key)
            return None
        return lst

    def entries(self, doc, key: str, what: str):
        """(index, path, mapping) for each mapping in the list doc[key] (the
        others reported)."""
        lst = self.section_list(doc, key, what)
        for i, e in enumerate(lst or ()):
            if self.mapping(e, f'{key}[{i}]', lst):
                yield i, f'{key}[{i}]', e

    def unique_name(self, e, p, seen: set, key='name'):
        """e[key] as a name (letters, digits, . _ + -) not listed before."""
        name = self.string(e, key, p, pattern=NAME_RE,
                           pattern_msg='must be letters, digits, ".", "_", "+" or "-"')
        if name is not None:
            if name in seen:
                self.err(f'{p}.{key}', f'{name!r} is listed twice', e, key)
            seen.add(name)
        return name

    def keys(self, d: dict, path: str, allowed: set, required: set = frozenset()):
        for k in d:
            if k not in allowed:
                hint = _close(k, allowed)
                self.err(f'{path}.{k}' if path else str(k), 'unknown key'
                         + (f' (did you mean {hint!r}?)' if hint else
                            f' (allowed: {", ".join(sorted(allowed))})'), d, k)
        for k in sorted(required):
            if k not in d:
                self.err(path or '(top level)', f'missing required key {k!r}', d)

    def string(self, d, key, path, required=False, choices=None, pattern=None,
               pattern_msg=''):
        if key not in d:
            if required:
                self.err(path, f'missing required key {key!r}', d)
            return None
        v = d[key]
        p = f'{path}.{key}' if path else key
        if isinstance(v, float) and pattern in (VERSION_RE, LIBFUSE_ROW_RE):
            self.err(p, f'{v!r} is a number and YAML drops trailing zeros (3.10 becomes 3.1); '
                     f'quote versions: "{v}"', d, key)
            return None
        if isinstance(v, bool) or not isinstance(v, (str, int)):
            self.err(p, f'expected a string, got {_kind(v)}', d, key)
            return None
        v = str(v)
        if choices is not None and v not in choices:
            self.err(p, f'{v!r} is not one of {", ".join(map(repr, choices))}', d, key)
            return None
        if pattern is not None and not pattern.match(v):
            self.err(p, f'{v!r} {pattern_msg or "is malformed"}', d, key)
            return None
        return v

    def number(self, d, key, path, minimum=0, integer=False):
        if key not in d:
            return None
        v = d[key]
        p = f'{path}.{key}' if path else key
        if isinstance(v, bool) or not isinstance(v, (int, float)) or (integer and
                                                                      not isinstance(v, int)):
            self.err(p, f'expected {"a whole number" if integer else "a number"}, '
                     f'got {_kind(v)}', d, key)
            return None
        if v <= minimum:
            self.err(p, f'must be greater than {minimum}, not {v}', d, key)
            return None
        return v

    def boolean(self, d, key, path):
        if key not in d:
            return None
        v = d[key]
        if not isinstance(v, bool):
            self.err(f'{path}.{key}' if path else key, f'expected true or false, got {_kind(v)}',
                     d, key)
            return None
        return v

    def str_list(self, d, key, path, required=False, choices=None, allow_scalar=False):
        if key not in d:
            if required:
                self.err(path, f'missing required key {key!r}', d)
            return None
        v = d[key]
        p = f'{path}.{key}' if path else key
        if allow_scalar and isinstance(v, (str, int, float)) and not isinstance(v, bool):
            v = [v]
        if not isinstance(v, list):
            self.err(p, f'expected a list, got {_kind(v)}', d, key)
            return None
        out = []
        for i, item in enumerate(v):
            if isinstance(item, float):
                self.err(f'{p}[{i}]', f'{item!r} is a number; quote it (YAML turns 3.10 into '
                         f'3.1): "{item}"', v)
                continue
            if isinstance(item, bool) or not isinstance(item, (str, int)):
                self.err(f'{p}[{i}]', f'expected a string, got {_kind(item)}', v)
                continue
            item = str(item)
            if choices is not None and item not in choices:
                self.err(f'{p}[{i}]', f'{item!r} is not one of {", ".join(map(repr, choices))}',
                         v)
                continue
            out.append(item)
        return out


def _kind(v) -> str:
    if v is None:
        return 'nothing (null)'
    if isinstance(v, bool):
        return f'a boolean ({v})'
    if isinstance(v, dict):
        return 'a mapping'
    if isinstance(v, list):
        return 'a list'
    if isinstance(v, (int, float)):
        return f'a number ({v!r})'
    if isinstance(v, str):
        return f'a string ({v!r})'
    return type(v).__name__


def _close(word, choices):
    import difflib
    m = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return m[0] if m else None


# ---------------------------------------------------------------- the schema

def check(doc, source: str = 'matrix.yaml') -> dict:
    """Validate a parsed matrix document; return it normalised (plain types,
    defaults filled in).  Raises MatrixError listing every problem."""
    c = Checker()
    if not isinstance(doc, dict):
        raise MatrixError([f'the file must be a mapping with keys like version, libfuse, '
                           f'kernels, startup; got {_kind(doc)}'], source)
    c.keys(doc, '', TOP_KEYS, {'version', 'libfuse', 'kernels', 'startup'})
    out: dict[str, Any] = {}
    v = doc.get('version')
    if 'version' in doc and v != 1:
        c.err('version', f'only version 1 is understood, got {_kind(v)}', doc, 'version')
    out['version'] = 1
    mirror = c.string(doc, 'mirror', '')
    if mirror is not None and mirror != 'auto' and not re.match(r'^(https?|file)://', mirror):
        c.err('mirror', f'{mirror!r} must be "auto" (read from /etc/apt) or a URL', doc, 'mirror')
        mirror = None
    out['mirror'] = mirror or 'auto'
    out['suites'] = c.str_list(doc, 'suites', '') or []
    out['sync_init_since'] = c.string(doc, 'sync_init_since', '', pattern=VERSION_RE,
                                      pattern_msg='is not a version like "6.18"') or '6.18'

    out['busybox'] = {'package': 'busybox-static', 'suite': 'bookworm'}
    if 'busybox' in doc and c.mapping(doc['busybox'], 'busybox', doc, 'busybox'):
        b = doc['busybox']
        c.keys(b, 'busybox', {'package', 'suite'})
        out['busybox'].update({k: c.string(b, k, 'busybox') or out['busybox'][k]
                               for k in ('package', 'suite')})

    out['libfuse'] = _check_libfuse(c, doc)
    out['kernels'] = _check_kernels(c, doc)
    out['startup'] = c.str_list(doc, 'startup', '', required=False, choices=STARTUP_MODES) or []
    if 'startup' in doc and not out['startup'] and isinstance(doc['startup'], list):
        c.err('startup', 'must list at least one startup mode', doc, 'startup')
    _dupes(c, out['startup'], 'startup', doc)

    out['features'] = {}
    if 'features' in doc and c.mapping(doc['features'], 'features', doc, 'features'):
        for name in doc['features']:
            ver = c.string(doc['features'], name, 'features', pattern=VERSION_RE,
                           pattern_msg='is not a libfuse version like "3.17"')
            if ver is not None:
                out['features'][str(name)] = ver

    axis_values = {'libfuse': [e['version'] for e in out['libfuse'] if e],
                   'kernel': [k['name'] for k in out['kernels'] if k],
                   'startup': list(out['startup'])}
    out['rules'] = _check_rules(c, doc, axis_values)
    out['tests'] = _check_tests(c, doc.get('tests'), 'tests', doc, 'tests', axis_values) \
        if 'tests' in doc else dict(DEFAULT_TESTS)

    out['timeouts'] = {'cell': 900, 'vm_boot': 240, 'build': 1200, 'vm_cell': 900}
    if 'timeouts' in doc and c.mapping(doc['timeouts'], 'timeouts', doc, 'timeouts'):
        t = doc['timeouts']
        c.keys(t, 'timeouts', set(out['timeouts']))
        for k in out['timeouts']:
            val = c.number(t, k, 'timeouts')
            if val is not None:
                out['timeouts'][k] = val

    out['vm'] = {'memory': 2048, 'smp': 1, 'qemu': 'qemu-system-x86_64', 'cpu': 'max',
                 'accel': 'tcg'}
    if 'vm' in doc and c.mapping(doc['vm'], 'vm', doc, 'vm'):
        m = doc['vm']
        c.keys(m, 'vm', set(out['vm']))
        for k in ('memory', 'smp'):
            val = c.number(m, k, 'vm', integer=True)
            if val is not None:
                out['vm'][k] = val
        for k in ('qemu', 'cpu'):
            val = c.string(m, k, 'vm')
            if val is not None:
                out['vm'][k] = val
        val = c.string(m, 'accel', 'vm', choices=('tcg', 'kvm'))
        if val is not None:
            out['vm']['accel'] = val

    out['clients'] = _check_clients(c, doc, out['libfuse'])
    client_names = [e['name'] for e in out['clients']]

    out['presets'] = {}
    if 'presets' in doc and c.mapping(doc['presets'], 'presets', doc, 'presets'):
        for name, p in doc['presets'].items():
            path = f'presets.{name}'
            if not c.mapping(p, path, doc['presets'], name):
                continue
            c.keys(p, path, {'description', 'cells', 'tests', 'packaging', 'jobs', 'clients'})
            preset = {'description': c.string(p, 'description', path) or '',
                      'cells': None, 'tests': None,
                      'clients': _check_client_selection(c, p, path, client_names),
                      'packaging': c.boolean(p, 'packaging', path),
                      'jobs': c.number(p, 'jobs', path, integer=True)}
            if 'cells' in p:
                cells = p['cells']
                if not isinstance(cells, list):
                    c.err(f'{path}.cells', f'expected a list of cell patterns, got {_kind(cells)}',
                          p, 'cells')
                else:
                    preset['cells'] = [_check_match(c, m, f'{path}.cells[{i}]', cells,
                                                    axis_values, extra=set())
                                       for i, m in enumerate(cells)]
            if p.get('tests') is False:      # the probe only (e.g. a clients-only preset)
                preset['tests'] = dict(DEFAULT_TESTS, path=None)
            elif 'tests' in p:
                preset['tests'] = _check_tests(c, p['tests'], f'{path}.tests', p, 'tests',
                                               axis_values)
            out['presets'][str(name)] = preset
    if c.errors:
        raise MatrixError(c.errors, source)
    return out


def _dupes(c, values, path, node):
    seen = set()
    for v in values:
        if v in seen:
            c.err(path, f'{v!r} is listed twice', node)
        seen.add(v)


def _check_libfuse(c: Checker, doc) -> list:
    out = []
    seen = set()
    for _i, p, e in c.entries(doc, 'libfuse', 'libfuse versions'):
        c.keys(e, p, {'version', 'source', 'debian', 'soname', 'features', 'note', 'io_uring'},
               {'version', 'source'})
        ver = c.string(e, 'version', p, pattern=LIBFUSE_ROW_RE,
                       pattern_msg='is not a version like "3.14.0" (or "3.18.3-uring": a '
                                   'variant of that release)')
        src = c.string(e, 'source', p, choices=LIBFUSE_SOURCES)
        if ver is not None:
            if ver in seen:
                c.err(f'{p}.version', f'{ver!r} is listed twice', e, 'version')
            seen.add(ver)
        entry = {'version': ver, 'source': src, 'debian': None,
                 'soname': c.string(e, 'soname', p), 'note': c.string(e, 'note', p) or '',
                 'features': {}, 'io_uring': bool(c.boolean(e, 'io_uring', p))}
        if entry['io_uring'] and src != 'apt-source':
            c.err(f'{p}.io_uring', 'only a libfuse built from source (apt-source) can be '
                  'built with the io_uring transport', e, 'io_uring')
        if src in ('apt-source', 'apt-binary'):
            if 'debian' not in e:
                c.err(p, f'source {src!r} needs a "debian" mapping (package, version, suite)', e)
            elif c.mapping(e['debian'], f'{p}.debian', e, 'debian'):
                d = e['debian']
                dp = f'{p}.debian'
                c.keys(d, dp, {'package', 'version', 'suite', 'packages'},
                       {'version', 'suite'} | ({'packages'} if src == 'apt-binary' else set()))
                deb = {'package': c.string(d, 'package', dp) or 'fuse3',
                       'version': c.string(d, 'version', dp),
                       'suite': c.string(d, 'suite', dp),
                       'packages': c.str_list(d, 'packages', dp) or []}
                if src == 'apt-binary' and 'packages' in d and not deb['packages']:
                    c.err(f'{dp}.packages', 'list the binary packages to unpack '
                          '(e.g. [libfuse3-3, libfuse3-dev])', d, 'packages')
                if deb['version'] and ver and not deb['version'].startswith(upstream(ver)):
                    c.err(f'{dp}.version', f'Debian version {deb["version"]!r} does not belong '
                          f'to upstream version {ver!r}', d, 'version')
                entry['debian'] = deb
        if 'features' in e and c.mapping(e['features'], f'{p}.features', e, 'features'):
            for k in e['features']:
                b = c.boolean(e['features'], k, f'{p}.features')
                if b is not None:
                    entry['features'][str(k)] = b
        out.append(entry)
    return out


def _check_kernels(c: Checker, doc) -> list:
    out = []
    seen = set()
    for _i, p, e in c.entries(doc, 'kernels', 'kernels'):
        c.keys(e, p, {'name', 'type', 'version', 'suite', 'image', 'modules', 'sync_init',
                      'note', 'cmdline'}, {'name'})
        name = c.unique_name(e, p, seen)
        ktype = c.string(e, 'type', p, choices=KERNEL_TYPES)
        if ktype is None:
            ktype = 'host' if name == 'host' else 'vm'
        k = {'name': name, 'type': ktype,
             'version': c.string(e, 'version', p, pattern=VERSION_RE,
                                 pattern_msg='is not a kernel version like "6.12"'),
             'suite': c.string(e, 'suite', p), 'image': c.string(e, 'image', p),
             'modules': c.string(e, 'modules', p), 'sync_init': c.boolean(e, 'sync_init', p),
             'note': c.string(e, 'note', p) or '', 'cmdline': c.string(e, 'cmdline', p) or ''}
        if ktype == 'vm':
            for req in ('version', 'suite', 'image'):
                if req not in e:
                    c.err(p, f'a vm kernel needs {req!r} (e.g. version: "6.1", suite: bookworm, '
                          f'image: "linux-image-6.1.*-amd64-unsigned")', e)
        else:
            for bad in ('suite', 'image', 'modules'):
                if bad in e:
                    c.err(f'{p}.{bad}', 'a host kernel is the running one: nothing to fetch',
                          e, bad)
        out.append(k)
    return out


def _check_match(c: Checker, m, path, parent, axis_values, extra) -> dict | None:
    if not c.mapping(m, path, parent):
        return None
    c.keys(m, path, set(AXES) | extra)
    if not any(a in m for a in AXES):
        c.err(path, f'name at least one of {", ".join(AXES)}', m)
    out = {}
    for axis in AXES:
        vals = c.str_list(m, axis, path, allow_scalar=True)
        if vals is None:
            continue
        for v in vals:
            if not any(fnmatch.fnmatchcase(known, v) for known in axis_values[axis]):
                c.err(f'{path}.{axis}', f'{v!r} matches no {axis} (known: '
                      f'{", ".join(axis_values[axis]) or "none"})', m, axis)
        out[axis] = vals
    return out


def _check_rules(c: Checker, doc, axis_values) -> dict:
    out = {'exclude': [], 'include': [], 'expect': []}
    if 'rules' not in doc:
        return out
    r = doc['rules']
    if not c.mapping(r, 'rules', doc, 'rules'):
        return out
    c.keys(r, 'rules', set(out))
    for kind in ('exclude', 'include'):
        if kind in r:
            lst = r[kind]
            if not isinstance(lst, list):
                c.err(f'rules.{kind}', f'expected a list, got {_kind(lst)}', r, kind)
                continue
            for i, m in enumerate(lst):
                got = _check_match(c, m, f'rules.{kind}[{i}]', lst, axis_values, set())
                if got is not None:
                    out[kind].append(got)
    if 'expect' in r:
        lst = r['expect']
        if not isinstance(lst, list):
            c.err('rules.expect', f'expected a list, got {_kind(lst)}', r, 'expect')
        else:
            extra = {'outcome', 'startup_path', 'reason', 'features', 'soname'}
            for i, m in enumerate(lst):
                p = f'rules.expect[{i}]'
                got = _check_match(c, m, p, lst, axis_values, extra)
                if got is None:
                    continue
                got['outcome'] = c.string(m, 'outcome', p, choices=OUTCOMES)
                got['startup_path'] = c.string(m, 'startup_path', p, choices=STARTUP_PATHS)
                got['soname'] = c.string(m, 'soname', p)
                got['reason'] = c.string(m, 'reason', p)
                got['features'] = {}
                if 'features' in m and c.mapping(m['features'], f'{p}.features', m, 'features'):
                    for k in m['features']:
                        b = c.boolean(m['features'], k, f'{p}.features')
                        if b is not None:
                            got['features'][str(k)] = b
                if got['outcome'] == 'fail' and not got['reason']:
                    c.err(p, 'an expected failure needs a "reason"', m)
                if not any(got[k] for k in ('outcome', 'startup_path', 'soname', 'features')):
                    c.err(p, 'says nothing: give outcome, startup_path, soname or features', m)
                out['expect'].append(got)
    return out


def _check_tests(c: Checker, t, path, parent, key, axis_values) -> dict:
    out = dict(DEFAULT_TESTS)
    if isinstance(t, str):
        out['path'] = t
        return out
    if not c.mapping(t, path, parent, key):
        return out
    c.keys(t, path, {'path', 'args', 'vm_path', 'vm_args', 'startup', 'vm_extra'})
    if 'startup' in t:
        out['startup'] = c.str_list(t, 'startup', path, choices=STARTUP_MODES)
    for k in ('path', 'vm_path'):
        if k in t and t[k] is None:
            out[k] = None if k == 'vm_path' else 'compat_tests'
            if k == 'path':
                c.err(f'{path}.path', 'give a test path', t, k)
            continue
        v = c.string(t, k, path)
        if v is not None:
            out[k] = v
    for k in ('args', 'vm_args'):
        v = c.str_list(t, k, path)
        if v is not None:
            out[k] = v
    extra = t.get('vm_extra')
    if extra is not None:
        if not isinstance(extra, list):
            c.err(f'{path}.vm_extra', f'expected a list of {{cells, args}}, got {_kind(extra)}',
                  t, 'vm_extra')
        else:
            out['vm_extra'] = []
            for i, x in enumerate(extra):
                xp = f'{path}.vm_extra[{i}]'
                if not c.mapping(x, xp, extra):
                    continue
                c.keys(x, xp, {'cells', 'args'}, {'cells', 'args'})
                cells = x.get('cells')
                if not isinstance(cells, list) or not cells:
                    c.err(f'{xp}.cells', 'expected a non-empty list of cell patterns', x, 'cells')
                    continue
                out['vm_extra'].append({
                    'cells': [_check_match(c, m, f'{xp}.cells[{j}]', cells, axis_values, set())
                              for j, m in enumerate(cells)],
                    'args': c.str_list(x, 'args', xp, required=True) or []})
    return out


def _check_clients(c: Checker, doc, libfuse: list) -> list:
    """clients: real projects from PyPI whose own suites (or a scenario) run
    once with the real peer and once with fuseshim providing its module."""
    from .clients import scenario_path   # the scenarios shipped in the package
    out = []
    seen = set()
    for _i, p, e in c.entries(doc, 'clients', 'client projects'):
        c.keys(e, p, {'name', 'project', 'version', 'extras', 'peer', 'module', 'apt', 'pip',
                      'tests', 'env', 'timeout', 'known_failures', 'note'},
               {'name', 'project', 'version', 'peer', 'module', 'tests'})
        name = c.unique_name(e, p, seen)
        version = e.get('version')
        if isinstance(version, float):
            c.err(f'{p}.version', f'{version!r} is a number and YAML drops trailing zeros; '
                  f'quote versions: "{version}"', e, 'version')
            version = None
        else:
            version = c.string(e, 'version', p, pattern=PINNED_RE,
                               pattern_msg='is not one pinned release like "1.4.5" or '
                                           '"2.0.0b23"')
        peer = c.string(e, 'peer', p, choices=tuple(PEER_MODULES))
        module = c.string(e, 'module', p)
        if peer and module and module not in PEER_MODULES[peer]:
            c.err(f'{p}.module', f'{module!r} is not a module fuseshim provides for {peer} '
                  f'({", ".join(PEER_MODULES[peer])})', e, 'module')
        entry = {'name': name, 'project': c.string(e, 'project', p), 'version': version,
                 'extras': c.str_list(e, 'extras', p) or [], 'peer': peer, 'module': module,
                 'apt': c.str_list(e, 'apt', p) or [], 'pip': c.str_list(e, 'pip', p) or [],
                 'env': {}, 'timeout': c.number(e, 'timeout', p) or CLIENT_DEFAULT_TIMEOUT,
                 'known_failures': [], 'note': c.string(e, 'note', p) or '', 'tests': None}
        if 'env' in e and c.mapping(e['env'], f'{p}.env', e, 'env'):
            for k in e['env']:
                val = c.string(e['env'], k, f'{p}.env')
                if val is not None:
                    entry['env'][str(k)] = val
        t = e.get('tests')
        tp = f'{p}.tests'
        if 'tests' in e and c.mapping(t, tp, e, 'tests'):
            c.keys(t, tp, {'from', 'args', 'scenario'}, {'from'})
            src = c.string(t, 'from', tp, choices=CLIENT_TEST_SOURCES)
            tests = {'from': src, 'args': c.str_list(t, 'args', tp) or [],
                     'scenario': c.string(t, 'scenario', tp)}
            if src == 'scenario':
                if not tests['scenario']:
                    c.err(tp, 'from: scenario needs "scenario: NAME" (a file '
                          'shim/matrix/scenarios/test_NAME.py)', t)
                elif not os.path.exists(scenario_path(tests['scenario'])):
                    c.err(f'{tp}.scenario', f'no scenario {tests["scenario"]!r} '
                          f'({scenario_path(tests["scenario"])} does not exist)', t, 'scenario')
            elif tests['scenario']:
                c.err(f'{tp}.scenario', f'only for "from: scenario", not {src!r}', t,
                      'scenario')
            elif src and not tests['args']:
                c.err(tp, f'from: {src} needs "args": what pytest runs (e.g. [test/] or '
                      f'[--pyargs, pkg.tests])', t)
            entry['tests'] = tests
        if 'known_failures' in e:
            kf = e['known_failures']
            if not isinstance(kf, list):
                c.err(f'{p}.known_failures', f'expected a list, got {_kind(kf)}', e,
                      'known_failures')
            else:
                for j, k in enumerate(kf):
                    kp = f'{p}.known_failures[{j}]'
                    if not c.mapping(k, kp, kf):
                        continue
                    c.keys(k, kp, {'test', 'reason', 'libfuse'}, {'test', 'reason'})
                    test, reason = c.string(k, 'test', kp), c.string(k, 'reason', kp)
                    # libfuse: only in the cells of these versions (globs)
                    lf = c.str_list(k, 'libfuse', kp, allow_scalar=True)
                    for v in lf or ():
                        if not any(fnmatch.fnmatchcase(e['version'], v)
                                   for e in libfuse if e):
                            c.err(f'{kp}.libfuse', f'{v!r} matches no libfuse (known: '
                                  f'{", ".join(e["version"] for e in libfuse if e)})', k,
                                  'libfuse')
                    if test and reason:
                        entry['known_failures'].append({'test': test, 'reason': reason,
                                                        'libfuse': lf})
        out.append(entry)
    return out


def _check_client_selection(c: Checker, p, path, names) -> list | None:
    """A preset's ``clients``: a list of client names, or "all"."""
    if 'clients' not in p:
        return None
    v = p['clients']
    if v == 'all':
        return list(names)
    got = c.str_list(p, 'clients', path, allow_scalar=True)
    if got is None:
        return None
    for n in got:
        if n not in names:
            c.err(f'{path}.clients', f'{n!r} is no client of the file (known: '
                  f'{", ".join(names) or "none"}; or "all")', p, 'clients')
    return [n for n in got if n in names]


def upstream(row_version: str) -> str:
    """'3.18.3-uring' -> '3.18.3': the libfuse release a matrix row builds."""
    return row_version.split('-', 1)[0]


def load(path) -> dict:
    """Read and check a matrix file; MatrixError on any problem."""
    import os
    source = os.fspath(path)
    try:
        with open(source, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise MatrixError([f'cannot read it: {e.strerror}'], source) from None
    return check(load_yaml_text(text, source), source)
