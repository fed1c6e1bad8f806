"""The public surface of a module, as comparable observations (JSON).

``python api_surface.py MODULE`` imports MODULE and prints a JSON object
mapping an observation key ("<aspect> <name>") to what was observed, for
every public (not underscore-prefixed) name: what kind of object it is,
constants' values, signatures, classes' bases and public attributes,
ctypes structures' layouts, the outcome of setting each public attribute of
a fresh instance and reading it back, copy()/pickle of an instance, and
exceptions' class hierarchy and message.

test_compat_api_audit.py runs it once for a real peer and once for
fuseshim's layer (each in a fresh interpreter: the peers and the layers keep
process-wide state, and mfusepy's layouts depend on the libfuse it loads)
and compares the two.
"""
from __future__ import annotations

import copy
import ctypes
import enum
import errno
import importlib
import inspect
import json
import pickle
import sys
import types

# classes that need constructor arguments: name -> args
CTOR_ARGS = {'FuseOSError': (errno.ENOENT,), 'FUSEError': (errno.ENOENT,)}
# classes never instantiated here: FUSE mounts; pyfuse3's handle types refuse
# construction without a request behind them, which the key "new" records
NO_INSTANCE = {'FUSE'}
PROBES = (7, 2 ** 40 + 3)
SIMPLE = (int, float, str, bytes, bool, type(None), tuple, frozenset, list, dict, set)


def public(names):
    return sorted(n for n in names if not n.startswith('_'))


def outcome(fn):
    try:
        return ['ok', fn()]
    except Exception as e:      # the exception type is the observation
        return ['raises', type(e).__name__]


def ctype_desc(t) -> str:
    """A ctypes type by shape: the same C type gives the same text."""
    if t is None:
        return 'void'
    if isinstance(t, type) and issubclass(t, ctypes._SimpleCData):
        return f'{t._type_}{ctypes.sizeof(t)}'
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        return f'{ctype_desc(t._type_)}[{t._length_}]'
    if isinstance(t, type) and issubclass(t, ctypes._Pointer):
        return f'*{ctype_desc(t._type_)}' if not issubclass(
            t._type_, (ctypes.Structure, ctypes.Union)) else f'*struct {t._type_.__name__}'
    if isinstance(t, type) and issubclass(t, ctypes._CFuncPtr):
        args = ','.join(ctype_desc(a) for a in (t._argtypes_ or ()))
        return f'fn({args})->{ctype_desc(t._restype_)}'
    if isinstance(t, type) and issubclass(t, (ctypes.Structure, ctypes.Union)):
        return f'struct {t.__name__}'
    return f'?{t!r}'


def layout(cls) -> dict:
    fields = []
    for f in cls._fields_:
        name, t = f[0], f[1]
        d = getattr(cls, name)
        fields.append([name, ctype_desc(t), d.offset, d.size, f[2] if len(f) > 2 else None])
    return {'size': ctypes.sizeof(cls), 'fields': fields}


def signature(obj):
    """Parameter names, kinds and defaults (annotations are left out: the
    layers write them differently and a caller never sees them)."""
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    return [[p.name, p.kind.name, None if p.default is p.empty else repr(p.default)]
            for p in sig.parameters.values()]


def value_desc(v):
    if isinstance(v, types.ModuleType):
        return f'module {v.__name__}'
    if isinstance(v, enum.Enum):
        return f'enum {v!r}'
    if isinstance(v, SIMPLE):
        try:
            return f'value {v!r}'
        except Exception:
            return f'value of {type(v).__name__}'
    if isinstance(v, type):
        if issubclass(v, ctypes._SimpleCData) or issubclass(v, ctypes._Pointer) or \
                issubclass(v, ctypes._CFuncPtr) or issubclass(v, ctypes.Array):
            return f'ctype {ctype_desc(v)}'
        if v.__module__ in ('builtins', 'ctypes', 'typing', 'collections.abc', 'os'):
            return f'class {v.__module__}.{v.__qualname__}'
        return 'class'
    if inspect.isroutine(v) or type(v).__name__ == 'cython_function_or_method':
        mod = getattr(v, '__module__', None)
        if mod in ('builtins', 'ctypes', 'functools', 'signal', 'stat', 'traceback', 'platform',
                   'ctypes.util', 'typing', 'posix', 'os', '_signal', '_ctypes'):
            return f'routine {mod}.{v.__name__}'
        return 'routine'
    if type(v).__module__ == 'typing' or type(v).__name__ in ('GenericAlias', 'UnionType'):
        return f'typing {v!r}'
    if isinstance(v, ctypes._CFuncPtr):
        return 'libfuse function'
    return f'object of {type(v).__module__}.{type(v).__qualname__}'


def member_desc(cls, name):
    raw = inspect.getattr_static(cls, name)
    kind = type(raw).__name__
    if isinstance(raw, staticmethod):
        return 'staticmethod', signature(raw.__func__)
    if isinstance(raw, classmethod):
        return 'classmethod', signature(raw.__func__)
    if inspect.isfunction(raw) or kind in ('cython_function_or_method', 'method_descriptor',
                                           'wrapper_descriptor', 'builtin_function_or_method'):
        return 'method', signature(getattr(cls, name))
    if kind in ('property', 'getset_descriptor', 'member_descriptor'):
        return 'data', None
    if kind == 'CField':
        return 'field', None
    return value_desc(raw), None


def probes_for(inst, attr):
    # an int stored in a char* field is read back through that address
    if isinstance(inst, (ctypes.Structure, ctypes.Union)):
        t = dict((f[0], f[1]) for f in type(inst)._fields_).get(attr)
        if t in (ctypes.c_char_p, ctypes.c_wchar_p):
            return (b'probe',)
    return PROBES


def attr_outcomes(make, name, out):
    obj = outcome(make)
    out[f'new {name}'] = obj[0] if obj[0] == 'ok' else obj
    if obj[0] != 'ok':
        return
    inst = make()
    for attr in public(dir(inst)):
        try:
            current = getattr(inst, attr)
        except Exception as e:
            out[f'get {name}.{attr}'] = ['raises', type(e).__name__]
            continue
        if callable(current):
            continue
        for probe in probes_for(inst, attr):
            def set_get(attr=attr, probe=probe):
                o = make()
                setattr(o, attr, probe)
                return repr(getattr(o, attr))
            out[f'set {name}.{attr}={probe}'] = outcome(set_get)
    out[f'copy {name}'] = outcome(lambda: type(copy.copy(make())).__name__)
    out[f'pickle {name}'] = outcome(lambda: type(pickle.loads(pickle.dumps(make()))).__name__)


def surface(modname: str) -> dict:
    mod = importlib.import_module(modname)
    out = {}
    star: dict = {}
    exec(f'from {modname} import *', star)      # what a star import binds
    out['star *'] = public(star)
    for name in public(dir(mod)):
        v = getattr(mod, name)
        desc = value_desc(v)
        out[f'name {name}'] = desc
        if desc == 'routine':
            out[f'signature {name}'] = signature(v)
        if desc != 'class':
            continue
        out[f'bases {name}'] = [c.__name__ for c in v.__mro__[1:]]
        out[f'signature {name}'] = signature(v)
        for m in public(dir(v)):
            kind, sig = member_desc(v, m)
            if kind == 'field':
                continue        # a ctypes field: "layout" has it
            out[f'member {name}.{m}'] = kind
            if sig is not None:
                out[f'signature {name}.{m}'] = sig
        # attributes an instance has that its class does not show (a factory
        # class, or instance attributes set by __init__)
        inst = outcome(lambda: v(*CTOR_ARGS.get(name, ()))) if name not in NO_INSTANCE else None
        if inst is not None and inst[0] == 'ok':
            for m in public(dir(inst[1])):
                if f'member {name}.{m}' not in out and not hasattr(v, m):
                    out[f'member {name}.{m}'] = ('method' if callable(getattr(inst[1], m, None))
                                                 else 'data')
        if issubclass(v, (ctypes.Structure, ctypes.Union)):
            out[f'layout {name}'] = layout(v)
        if issubclass(v, BaseException):
            e = outcome(lambda: v(*CTOR_ARGS.get(name, ())))
            if e[0] == 'ok':
                inst = e[1]
                e = ['ok', str(inst), repr(inst.args), getattr(inst, 'errno', None)]
            out[f'exception {name}'] = e
        if name not in NO_INSTANCE:
            attr_outcomes(lambda v=v: v(*CTOR_ARGS.get(name, ())), name, out)
    return out


if __name__ == '__main__':
    json.dump(surface(sys.argv[1]), sys.stdout, indent=0, sort_keys=True, default=repr)
