"""matrix.yaml: the schema as pydantic models, with errors that name file and line.

The file is read with PyYAML through a loader that remembers the line of
every mapping, key and list (and refuses duplicate keys), then validated by
the models below (pydantic v2, strict: unknown keys, wrong types and missing
keys are errors; rules between fields in validators; patterns and names are
checked against the file's own axis values and clients, passed as the
validation context).  The models are frozen: what ``load`` returns is the
configuration every stage reads (``cfg.libfuse[0].version``).  Every problem
is reported at once, as ``matrix.yaml: N problems:`` followed by lines like::

    line 12: libfuse[1].version: 3.1 is a number and YAML drops trailing zeros ...

Versions stay strings: YAML reads an unquoted 3.10 as the float 3.1, so a
float where a version belongs is an error that says to quote it.
"""
from __future__ import annotations

import difflib
import fnmatch
import os
import re
import typing
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

AXES = ('libfuse', 'kernel', 'startup')
StartupMode = Literal['auto', 'sync', 'classic']
VERSION_RE = re.compile(r'^\d+\.\d+(\.\d+)?$')
# a libfuse row: its upstream version, optionally with a variant of the same
# release built differently ("3.18.3-uring"); the variant names the row
LIBFUSE_ROW_RE = re.compile(r'^\d+\.\d+(\.\d+)?(-[a-z][a-z0-9]*)?$')
NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._+-]*$')

# clients: the peers fuseshim's layers stand in for ($FUSESHIM_PROVIDES entries,
# _fuseshim_provide.PROVIDES) and the module names each one provides
PEER_MODULES = {'pyfuse3': ('pyfuse3', 'pyfuse3.asyncio', 'pyfuse3_asyncio'),
                'mfusepy': ('mfusepy',), 'fusepy': ('fuse',)}
Peer = Literal['pyfuse3', 'mfusepy', 'fusepy']
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


# ---------------------------------------------------------------- scalar types

def _problem(error_type: str, message: str, at: str = '', **ctx) -> PydanticCustomError:
    """An error of a validator; ``at`` names the key below the validated
    model it is about (e.g. "debian.version"), so that its line is reported."""
    return PydanticCustomError(error_type, message, {**ctx, 'at': at})


def _text(v: Any) -> Any:
    """Strings stay strings; YAML's floats and booleans are refused (a
    version written 3.10 arrives as 3.1), integers become their text."""
    if isinstance(v, float):
        raise _problem('number', '{value} is a number and YAML drops trailing zeros (3.10 '
                       'becomes 3.1); quote it: "{value}"', value=repr(v))
    if isinstance(v, bool):
        raise _problem('not_text', 'expected a string, got a boolean ({value})', value=v)
    return str(v) if isinstance(v, int) else v


def _matching(regex, what: str):
    def check(v: Any) -> Any:
        v = _text(v)
        if isinstance(v, str) and not regex.match(v):
            raise _problem('pattern', '{value} ' + what, value=repr(v))
        return v
    return BeforeValidator(check)


def _number(v: Any) -> Any:
    """int or float as written (a whole number stays one in the reports)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _problem('number_type', 'expected a number, got {kind}', kind=_kind(v))
    return v


def _as_list(v: Any) -> Any:
    """A single value where a list of patterns is expected: a list of one."""
    return [v] if isinstance(v, (str, int, float)) and not isinstance(v, bool) else v


Text = Annotated[str, BeforeValidator(_text)]
LibfuseRow = Annotated[str, _matching(LIBFUSE_ROW_RE, 'is not a version like "3.14.0" (or '
                                                      '"3.18.3-uring": a variant of that release)')]
LibfuseVersion = Annotated[str, _matching(VERSION_RE, 'is not a libfuse version like "3.17"')]
KernelVersion = Annotated[str, _matching(VERSION_RE, 'is not a kernel version like "6.12"')]
PinnedVersion = Annotated[str, _matching(PINNED_RE, 'is not one pinned release like "1.4.5" '
                                                    'or "2.0.0b23"')]
Name = Annotated[str, _matching(NAME_RE, 'must be letters, digits, ".", "_", "+" or "-"')]
Patterns = Annotated[list[Text], BeforeValidator(_as_list)]
Positive = Annotated[int | float, BeforeValidator(_number), Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]


class Model(BaseModel):
    model_config = ConfigDict(extra='forbid', strict=True, frozen=True)


# ---------------------------------------------------------------- sections

class Debian(Model):
    package: Text = 'fuse3'
    version: Text
    suite: Text
    packages: list[Text] = []


class LibfuseEntry(Model):
    """One libfuse row; ``version`` names it ("3.18.3", or a variant of that
    release built differently: "3.18.3-uring")."""
    version: LibfuseRow
    source: Literal['apt-source', 'apt-binary', 'system']
    debian: Debian | None = None
    soname: Text | None = None
    features: dict[str, StrictBool] = {}
    note: Text = ''
    io_uring: StrictBool = False      # built with the io_uring transport (liburing)

    @property
    def upstream(self) -> str:
        return upstream(self.version)

    @model_validator(mode='after')
    def _debian(self):
        if self.io_uring and self.source != 'apt-source':
            raise _problem('io_uring', 'only a libfuse built from source (apt-source) can be '
                           'built with the io_uring transport', 'io_uring')
        if self.source in ('apt-source', 'apt-binary'):
            if self.debian is None:
                raise _problem('debian', 'source {source} needs a "debian" mapping (package, '
                               'version, suite)', source=repr(self.source))
            if self.source == 'apt-binary' and not self.debian.packages:
                raise _problem('debian', 'list the binary packages to unpack (e.g. '
                               '[libfuse3-3, libfuse3-dev])', 'debian.packages')
            if not self.debian.version.startswith(self.upstream):
                raise _problem('debian', 'Debian version {deb} does not belong to upstream '
                               'version {up}', 'debian.version', deb=repr(self.debian.version),
                               up=repr(self.version))
        return self


class Kernel(Model):
    name: Name
    type: Literal['host', 'vm']         # default: "host" for the row named host, else "vm"
    version: KernelVersion | None = None
    suite: Text | None = None
    image: Text | None = None
    modules: Text | None = None
    sync_init: StrictBool | None = None
    note: Text = ''
    cmdline: Text = ''

    @model_validator(mode='before')
    @classmethod
    def _default_type(cls, data):
        if isinstance(data, dict) and 'type' not in data:
            data = {**data, 'type': 'host' if data.get('name') == 'host' else 'vm'}
        return data

    @model_validator(mode='after')
    def _needs(self):
        if self.type == 'vm':
            missing = [k for k in ('version', 'suite', 'image') if getattr(self, k) is None]
            if missing:
                raise _problem('vm_kernel', 'a vm kernel needs {missing} (e.g. version: "6.1", '
                               'suite: bookworm, image: "linux-image-6.1.*-amd64-unsigned")',
                               missing=', '.join(map(repr, missing)))
        else:
            extra = [k for k in ('suite', 'image', 'modules') if getattr(self, k) is not None]
            if extra:
                raise _problem('host_kernel', 'a host kernel is the running one: nothing to '
                               'fetch ({extra})', extra[0], extra=', '.join(extra))
        return self


class Match(Model):
    """Cells by axis: each axis named gets one or more globs."""
    libfuse: Patterns | None = None
    kernel: Patterns | None = None
    startup: Patterns | None = None

    @model_validator(mode='after')
    def _some_axis(self, info: ValidationInfo):
        if all(getattr(self, a) is None for a in AXES):
            raise _problem('match', 'name at least one of {axes}', axes=', '.join(AXES))
        _match_known(self.globs(), info)
        return self

    def globs(self) -> dict[str, list[str]]:
        return {a: getattr(self, a) for a in AXES if getattr(self, a) is not None}


def _match_known(globs: dict, info: ValidationInfo):
    """Every glob must match a value of its axis (the file's own, passed by
    check() as the validation context)."""
    known = (info.context or {}).get('axes')
    if known is None:        # a pattern from the command line: checked by its caller
        return
    for axis, pats in globs.items():
        for g in pats:
            if not any(fnmatch.fnmatchcase(v, g) for v in known[axis]):
                raise _problem('no_match', '{glob} matches no {axis} (known: {known})', axis,
                               glob=repr(g), axis=axis, known=', '.join(known[axis]) or 'none')


class Expect(Match):
    outcome: Literal['pass', 'fail'] | None = None
    startup_path: Literal['sync', 'classic'] | None = None
    soname: Text | None = None
    reason: Text | None = None
    features: dict[str, StrictBool] = {}

    @model_validator(mode='after')
    def _says_something(self):
        if self.outcome == 'fail' and not self.reason:
            raise _problem('expect', 'an expected failure needs a "reason"')
        if not (self.outcome or self.startup_path or self.soname or self.features):
            raise _problem('expect', 'says nothing: give outcome, startup_path, soname or '
                           'features')
        return self


class Rules(Model):
    exclude: list[Match] = []
    include: list[Match] = []
    expect: list[Expect] = []


class VmExtra(Model):
    """More test files for the VM cells that match (suites too slow under
    emulation for every VM cell)."""
    cells: Annotated[list[Match], Field(min_length=1)]
    args: list[Text]


class Tests(Model):
    # None: the probe only (a preset's "tests: false")
    path: Text | None = 'compat_tests'
    args: list[Text] = []
    # '@path': the host's suite in VMs too; None: the probe only
    vm_path: Text | None = '@path'
    vm_args: list[Text] | None = None
    startup: list[StartupMode] | None = None   # run the suite in these modes only
    vm_extra: list[VmExtra] = []

    @model_validator(mode='before')
    @classmethod
    def _path_only(cls, data):
        return {'path': data} if isinstance(data, str) else data

    @field_validator('path')
    @classmethod
    def _path_given(cls, v):
        if v is None:
            raise _problem('path', 'give a test path')
        return v


PROBE_ONLY = Tests.model_construct(path=None)


class Timeouts(Model):
    cell: Positive = 900
    vm_boot: Positive = 240
    vm_cell: Positive = 900
    build: Positive = 1200


class VmSettings(Model):
    memory: PositiveInt = 2048
    smp: PositiveInt = 1
    qemu: Text = 'qemu-system-x86_64'
    cpu: Text = 'max'
    accel: Literal['tcg', 'kvm'] = 'tcg'


class Busybox(Model):
    package: Text = 'busybox-static'
    suite: Text = 'bookworm'


class ClientTests(Model):
    from_: Literal['sdist', 'installed', 'scenario'] = Field(alias='from')
    args: list[Text] = []
    scenario: Text | None = None

    @model_validator(mode='after')
    def _what_runs(self):
        if self.from_ == 'scenario' and not self.scenario:
            raise _problem('tests', 'from: scenario needs "scenario: NAME" (a file '
                           'shim/matrix/scenarios/test_NAME.py)')
        if self.from_ != 'scenario' and self.scenario:
            raise _problem('tests', 'only for "from: scenario", not {src}', 'scenario',
                           src=repr(self.from_))
        if self.from_ != 'scenario' and not self.args:
            raise _problem('tests', 'from: {src} needs "args": what pytest runs (e.g. [test/] '
                           'or [--pyargs, pkg.tests])', src=self.from_)
        if self.from_ == 'scenario' and not os.path.exists(self.scenario_file):
            raise _problem('tests', 'no scenario {name} ({file} does not exist)', 'scenario',
                           name=repr(self.scenario), file=self.scenario_file)
        return self

    @property
    def scenario_file(self) -> str | None:
        from .clients import scenario_path  # the scenarios shipped in the package
        return scenario_path(self.scenario) if self.scenario else None


class KnownFailure(Model):
    test: Text                              # a test id glob
    reason: Text
    libfuse: Patterns | None = None      # only in the cells of these versions (globs)

    @model_validator(mode='after')
    def _known_libfuse(self, info: ValidationInfo):
        if self.libfuse:
            _match_known({'libfuse': self.libfuse}, info)
        return self


class Client(Model):
    """A released project whose own suite (or a scenario) runs once with the
    real peer and once with fuseshim providing the peer's module."""
    name: Name
    project: Text
    version: PinnedVersion
    extras: list[Text] = []
    peer: Peer
    module: Text
    apt: list[Text] = []
    pip: list[Text] = []
    tests: ClientTests
    env: dict[str, Text] = {}
    timeout: Positive = CLIENT_DEFAULT_TIMEOUT
    known_failures: list[KnownFailure] = []
    note: Text = ''

    @model_validator(mode='after')
    def _module_of_peer(self):
        if self.module not in PEER_MODULES[self.peer]:
            raise _problem('module', '{module} is not a module fuseshim provides for {peer} '
                           '({modules})', 'module', module=repr(self.module), peer=self.peer,
                           modules=', '.join(PEER_MODULES[self.peer]))
        return self


class Preset(Model):
    description: Text = ''
    cells: list[Match] | None = None
    tests: Tests | None = None
    packaging: StrictBool | None = None
    jobs: PositiveInt | None = None
    # client names ("all" in the file: every client; resolved by Matrix)
    clients: Literal['all'] | Patterns | None = None

    @field_validator('clients')
    @classmethod
    def _known_clients(cls, v, info: ValidationInfo):
        names = (info.context or {}).get('clients')
        if names is not None and v != 'all':
            for n in v or ():
                if n not in names:
                    raise _problem('client', '{name} is no client of the file (known: {known}; '
                                   'or "all")', name=repr(n), known=', '.join(names) or 'none')
        return v

    @model_validator(mode='before')
    @classmethod
    def _probe_only(cls, data):
        """tests: false -- the probe only (e.g. a clients-only preset)."""
        if isinstance(data, dict) and data.get('tests') is False:
            data = {**data, 'tests': PROBE_ONLY}
        return data


class Matrix(Model):
    version: Literal[1]
    mirror: Text = 'auto'
    suites: list[Text] = []
    busybox: Busybox = Busybox()
    libfuse: Annotated[list[LibfuseEntry], Field(min_length=1)]
    kernels: Annotated[list[Kernel], Field(min_length=1)]
    startup: Annotated[list[StartupMode], Field(min_length=1)]
    features: dict[str, LibfuseVersion] = {}
    sync_init_since: KernelVersion = '6.18'
    rules: Rules = Rules()
    tests: Tests = Tests()
    timeouts: Timeouts = Timeouts()
    vm: VmSettings = VmSettings()
    clients: list[Client] = []
    presets: dict[str, Preset] = {}

    @field_validator('version', mode='before')
    @classmethod
    def _version_1(cls, v):
        if v != 1 or isinstance(v, bool):
            raise _problem('version', 'only version 1 is understood, got {kind}', kind=_kind(v))
        return v

    @field_validator('mirror')
    @classmethod
    def _mirror(cls, v):
        if v != 'auto' and not re.match(r'^(https?|file)://', v):
            raise _problem('mirror', '{value} must be "auto" (read from /etc/apt) or a URL',
                           value=repr(v))
        return v

    @model_validator(mode='after')
    def _all_clients(self):
        """A preset's ``clients: all`` becomes the list of every client."""
        if not any(p.clients == 'all' for p in self.presets.values()):
            return self
        names = [c.name for c in self.clients]
        return self.model_copy(update={'presets': {
            k: p.model_copy(update={'clients': names}) if p.clients == 'all' else p
            for k, p in self.presets.items()}})

    def axis_values(self) -> dict[str, list[str]]:
        return {'libfuse': [e.version for e in self.libfuse],
                'kernel': [k.name for k in self.kernels], 'startup': list(self.startup)}

    def libfuse_entry(self, version: str) -> LibfuseEntry:
        return next(e for e in self.libfuse if e.version == version)

    def kernel(self, name: str) -> Kernel:
        return next(k for k in self.kernels if k.name == name)

    def client(self, name: str) -> Client:
        return next(c for c in self.clients if c.name == name)


# ---------------------------------------------------------------- errors with lines

UNION_TAGS = ('str', 'int', 'float')

MESSAGES = {
    'literal_error': lambda e: f'{e["input"]!r} is not one of '
                               f'{e["ctx"]["expected"].replace(" or ", ", ")}',
    'model_type': lambda e: f'expected a mapping (key: value), got {_kind(e["input"])}',
    'model_attributes_type': lambda e: f'expected a mapping (key: value), got '
                                       f'{_kind(e["input"])}',
    'list_type': lambda e: f'expected a list, got {_kind(e["input"])}',
    'dict_type': lambda e: f'expected a mapping (key: value), got {_kind(e["input"])}',
    'string_type': lambda e: f'expected a string, got {_kind(e["input"])}',
    'bool_type': lambda e: f'expected true or false, got {_kind(e["input"])}',
    'int_type': lambda e: f'expected a whole number, got {_kind(e["input"])}',
    'float_type': lambda e: f'expected a number, got {_kind(e["input"])}',
    'greater_than': lambda e: f'must be greater than {e["ctx"]["gt"]:g}, not {e["input"]}',
    'too_short': lambda e: f'must not be empty (got {_kind(e["input"])})',
}


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


def _where(doc, loc) -> tuple[str, int | None]:
    """(dotted path, line) of ``loc`` in the YAML document."""
    path, line, node = '', getattr(doc, 'line', None), doc
    for part in loc:
        if isinstance(part, int) and isinstance(node, list):
            path += f'[{part}]'
            node = node[part] if part < len(node) else None
            line = getattr(node, 'line', line)
        elif isinstance(node, dict):
            path += f'.{part}' if path else str(part)
            line = getattr(node, 'key_lines', {}).get(part, getattr(node, 'line', line))
            node = node.get(part)
        # else a place pydantic adds (a union branch): not in the file
    return path, line


def _message(err: dict, doc) -> str:
    # drop the places pydantic adds (validator and union branch tags): not in the file
    loc = tuple(p for p in err['loc'] if not (isinstance(p, str) and (
        p.startswith(('function-', 'literal[', 'union[', 'list[')) or p in UNION_TAGS)))
    at = (err.get('ctx') or {}).get('at')
    if at:
        loc += tuple(at.split('.')) if isinstance(at, str) else at
    path, line = _where(doc, loc)
    last = loc[-1] if loc else ''
    if err['type'] == 'extra_forbidden':
        allowed = sorted(_fields_at(loc[:-1]))
        hint = difflib.get_close_matches(str(last), allowed, n=1, cutoff=0.6)
        msg = 'unknown key' + (f' (did you mean {hint[0]!r}?)' if hint
                               else f' (allowed: {", ".join(allowed)})')
    elif err['type'] == 'missing':
        path = path.rsplit('.', 1)[0] if '.' in path else '(top level)'
        msg = f'missing required key {last!r}'
    elif err['type'] in MESSAGES:
        msg = MESSAGES[err['type']](err)
    else:
        msg = err['msg']
    return f'{"line %d: " % line if line else ""}{path or "(top level)"}: {msg}'


def _fields_at(loc: tuple) -> set[str]:
    """The keys the model at ``loc`` accepts (for 'did you mean')."""
    model: Any = Matrix
    for part in loc:
        field = model.model_fields.get(part) if hasattr(model, 'model_fields') else None
        if field is None:      # a list index or a dict key such as a preset's name
            continue
        model = _model_of(field.annotation)
    if not hasattr(model, 'model_fields'):
        return set()
    return {f.alias or name for name, f in model.model_fields.items()}


def _model_of(tp):
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return tp
    for arg in typing.get_args(tp):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------- reading

def check(doc, source: str = 'matrix.yaml') -> Matrix:
    """Validate a parsed matrix document into a Matrix; MatrixError lists
    every problem found, each with its line."""
    if not isinstance(doc, dict):
        raise MatrixError([f'the file must be a mapping with keys like version, libfuse, '
                           f'kernels, startup; got {_kind(doc)}'], source)
    written = {section: _written(doc, section, key) for section, key in LISTED.items()}
    problems = {_message({'loc': (section, i, key) if key else (section, i), 'type': 'twice',
                          'msg': f'{v!r} is listed twice'}, doc)
                for (section, key), values in zip(LISTED.items(), written.values())
                for i, v in _repeated(values)}
    try:
        m = Matrix.model_validate(doc, context={
            'axes': {AXIS_OF[section]: [v for _i, v in values]
                     for section, values in written.items() if section in AXIS_OF},
            'clients': [v for _i, v in written['clients']]})
    except ValidationError as e:
        problems |= {_message(err, doc) for err in e.errors()}
    if problems:
        raise MatrixError(sorted(problems, key=_line_order), source) from None
    return m


# the lists whose entries are named (by this key), and the axis each one is
LISTED = {'libfuse': 'version', 'kernels': 'name', 'startup': None, 'clients': 'name'}
AXIS_OF = {'libfuse': 'libfuse', 'kernels': 'kernel', 'startup': 'startup'}


def _written(doc: dict, section: str, key: str | None) -> list[tuple[int, str]]:
    """(index, name) of the entries of a list as written: the names patterns
    and presets elsewhere in the file are checked against, in the same pass
    as the models, so that every problem is reported at once (a malformed
    entry is reported by its model and just missing here)."""
    items = doc.get(section)
    if not isinstance(items, list):
        return []
    out = []
    for i, e in enumerate(items):
        if key is None:
            v = e
        elif isinstance(e, dict):
            v = e.get(key)
        else:
            continue
        if isinstance(v, (str, int)) and not isinstance(v, bool):
            out.append((i, str(v)))
    return out


def _repeated(values: list[tuple[int, str]]):
    seen = set()
    for i, v in values:
        if v in seen:
            yield i, v
        seen.add(v)


def _line_order(message: str):
    found = re.match(r'line (\d+): ', message)
    return (int(found.group(1)) if found else 0, message)


def upstream(row_version: str) -> str:
    """'3.18.3-uring' -> '3.18.3': the libfuse release a matrix row builds."""
    return row_version.split('-', 1)[0]


def load(path) -> Matrix:
    """Read and check a matrix file; MatrixError on any problem."""
    source = os.fspath(path)
    try:
        with open(source, encoding='utf-8') as f:
            text = f.read()
    except OSError as e:
        raise MatrixError([f'cannot read it: {e.strerror}'], source) from None
    return check(load_yaml_text(text, source), source)
