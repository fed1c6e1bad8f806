"""The clients stage: real projects from PyPI on fuseshim's compat layers.

Each ``clients:`` entry of matrix.yaml names a released project, the peer it
imports and the pytest command of its own test suite (from its sdist or its
installed package), or a scenario shipped in ``scenarios/`` for projects whose
sdists carry no tests.  The project is installed once into a venv of its own
under ``$FUSESHIM_CACHE/clients`` (Debian build dependencies first, through
apt-get), then its suite runs

* once with the real peer (the venv's own pyfuse3 / mfusepy / fusepy, the
  system libfuse): the reference;
* once per libfuse cell with fuseshim providing the peer's module, exactly as
  a user would migrate with zero lines changed: ``$FUSESHIM_PROVIDES`` and the
  ``fuseshim-provide.pth`` start-up hook of the cell's build (made a site
  directory of the venv's interpreter by a ``sitecustomize``).

Results are compared per test id (JUnit XML): fuseshim must pass every test
the real peer passes.  A test failing on both sides is reported, not counted
against fuseshim; ``known_failures`` entries mark differences with a reason
(a known failure that passes is unexpected: remove the entry).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

from .schema import Client, KnownFailure
from .util import Log, StageError, run

SCENARIOS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'scenarios')
FAILED = ('failed', 'error')

# Put on PYTHONPATH of the fuseshim runs: the cell's fuseshim build becomes a
# site directory, so its fuseshim-provide.pth runs as from an installed wheel.
SITECUSTOMIZE = '''\
# Written by fuseshim.matrix (clients stage): the matrix cell's fuseshim build
# ($FUSESHIM_CLIENT_SITE, directories separated by ":") becomes a site
# directory of this interpreter, as if its wheel were installed: its
# fuseshim-provide.pth installs the import hook that reads $FUSESHIM_PROVIDES.
import os as _os
import site as _site
for _d in _os.environ.get('FUSESHIM_CLIENT_SITE', '').split(_os.pathsep):
    if _d:
        _site.addsitedir(_d)
del _os, _site
'''

# Variables of the runner's own environment that must not leak into a
# client's runs (another interpreter's paths, a cell's libfuse, the hook).
SCRUB = ('PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'LD_LIBRARY_PATH', 'FUSESHIM_PROVIDES',
         'FUSESHIM_CLIENT_SITE', 'VIRTUAL_ENV', 'PYTEST_ADDOPTS', 'PYTEST_PLUGINS')


def scenario_path(name: str) -> str:
    return os.path.join(SCENARIOS, f'test_{name}.py')


def requirement(entry: Client) -> str:
    extras = f'[{",".join(entry.extras)}]' if entry.extras else ''
    return f'{entry.project}{extras}=={entry.version}'


def client_key(entry: Client) -> str:
    """Identity of a client's venv: what is installed into it, and by which
    interpreter (a changed entry gets a new venv; the old one is removed)."""
    ident = json.dumps([requirement(entry), sorted(entry.pip), entry.tests.from_,
                        sys.version], sort_keys=True)
    return hashlib.sha256(ident.encode()).hexdigest()[:12]


# ---------------------------------------------------------------- install

def missing_apt(packages) -> list[str]:
    out = []
    for p in packages:
        r = subprocess.run(['dpkg-query', '-W', '-f=${Status}', p], capture_output=True,
                           text=True)
        if r.returncode != 0 or not r.stdout.endswith('install ok installed'):
            out.append(p)
    return out


def ensure_apt(packages, log: Log, timeout=900) -> list[str]:
    """Install the Debian packages a client builds against (as `make setup`
    does); returns those it installed."""
    missing = missing_apt(packages)
    if not missing:
        return []
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    cmd = ['apt-get', 'install', '-y', '-q', '--no-install-recommends', *missing]
    if run(cmd, env=env, log=log, timeout=timeout, check=False).returncode != 0:
        # a fresh machine may have no (or stale) package lists
        run(['apt-get', 'update', '-q'], env=env, log=log, timeout=timeout)
        run(cmd, env=env, log=log, timeout=timeout)
    return missing


def ensure_client(entry: Client, cache: str, log: Log, timeout=1800, rebuild=False) -> dict:
    """The client's venv (and unpacked sdist when its tests come from there),
    made once under ``$CACHE/clients``; a run interrupted half-way is redone."""
    from . import sdists
    base = os.path.join(cache, 'clients')
    key = client_key(entry)
    root = os.path.join(base, f'{entry.name}-{key}')
    stamp = os.path.join(root, '.complete')
    python = os.path.join(root, 'venv', 'bin', 'python')
    info = {'root': root, 'python': python, 'key': key, 'requirement': requirement(entry)}
    t0 = time.monotonic()
    info['apt_installed'] = ensure_apt(entry.apt, log)
    if rebuild or not os.path.exists(stamp):
        for old in os.listdir(base) if os.path.isdir(base) else ():
            if old.startswith(entry.name + '-') and old != os.path.basename(root) and \
                    len(old) == len(os.path.basename(root)):
                shutil.rmtree(os.path.join(base, old), ignore_errors=True)   # superseded
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root)
        log.section(f'venv for {info["requirement"]}')
        run([sys.executable, '-m', 'venv', os.path.join(root, 'venv')], log=log, timeout=300)
        env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
        run([python, '-m', 'pip', 'install', '-q', info['requirement'], *entry.pip],
            env=env, log=log, timeout=timeout)
        if entry.tests.from_ == 'sdist':
            log.section(f'sdist of {entry.project} {entry.version} (its tests)')
            top = sdists.fetch_sdist(entry.project, entry.version,
                                     Path(root) / 'sdist')
            log.write(f'unpacked into {top}')
        freeze = run([python, '-m', 'pip', 'freeze', '--all'], env=env, log=log, timeout=120,
                     capture=True)
        with open(os.path.join(root, 'pip-freeze.txt'), 'w') as f:
            f.write(freeze.output_text)
        with open(stamp, 'w') as f:
            f.write(info['requirement'] + '\n')
        info['reused'] = False
    else:
        info['reused'] = True
        log.write(f'reusing {root}')
    info['elapsed'] = round(time.monotonic() - t0, 1)
    info['sdist'] = _sdist_top(root) if entry.tests.from_ == 'sdist' else None
    try:
        with open(os.path.join(root, 'pip-freeze.txt')) as f:
            info['installed'] = f.read().split()
    except OSError:
        info['installed'] = []
    return info


def _sdist_top(root: str) -> str | None:
    src = os.path.join(root, 'sdist')
    for d in os.listdir(src) if os.path.isdir(src) else ():
        cand = os.path.join(src, d, 'src')
        tops = [os.path.join(cand, t) for t in os.listdir(cand)] if os.path.isdir(cand) else []
        tops = [t for t in tops if os.path.isdir(t)]
        if len(tops) == 1:
            return tops[0]
    return None


# ---------------------------------------------------------------- running

def sites_of_this_fuseshim(workdir: str) -> str:
    """$FUSESHIM_CLIENT_SITE for the fuseshim this interpreter imports (the
    matrix cells use their builds' site directories instead): an installed
    fuseshim's site-packages, which holds fuseshim-provide.pth; for an
    editable install, the directory of its finder's .pth, then one holding a
    copy of fuseshim-provide.pth (the editable install has none)."""
    import importlib.util

    import fuseshim
    pkg = os.path.dirname(os.path.abspath(fuseshim.__file__))
    if os.path.basename(pkg) == 'fuseshim':
        return os.path.dirname(pkg)
    loaders = [sys.modules[type(f).__module__].__file__ for f in sys.meta_path
               if type(f).__module__ == '_fuseshim_editable_loader']
    if not loaders:
        raise RuntimeError(f'cannot tell where fuseshim ({pkg}) is installed')
    hook = importlib.util.find_spec('_fuseshim_provide').origin
    provide = os.path.join(workdir, 'provide-site')
    os.makedirs(provide, exist_ok=True)
    shutil.copy2(os.path.join(os.path.dirname(hook), 'fuseshim-provide.pth'), provide)
    return os.pathsep.join([os.path.dirname(loaders[0]), provide])


def write_sitecustomize(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'sitecustomize.py'), 'w') as f:
        f.write(SITECUSTOMIZE)
    return directory


def copy_scenario(name: str, rundir: str) -> str:
    """The scenario and its helper, copied into the run directory: run in
    place, pytest would import fuseshim's package (the directories above
    them) into the client's interpreter, and a project config of ours could
    apply (hence also ``-c /dev/null``)."""
    d = os.path.join(rundir, 'scenario')
    os.makedirs(d, exist_ok=True)
    for f in (scenario_path(name), os.path.join(SCENARIOS, 'scenario_util.py')):
        shutil.copy2(f, d)
    return os.path.join(d, os.path.basename(scenario_path(name)))


def pytest_command(entry: Client, python: str, rundir: str) -> list[str]:
    t = entry.tests
    if t.from_ == 'scenario':
        args = [copy_scenario(t.scenario, rundir), '-c', os.devnull, f'--rootdir={rundir}']
    else:
        args = list(t.args)
    return [python, '-m', 'pytest', *args, '-p', 'no:cacheprovider', '-q', '-rfEs',
            # a module that does not import (e.g. a test of examples the sdist
            # lacks) is one failed id, not the end of the run
            '--continue-on-collection-errors',
            f'--junitxml={os.path.join(rundir, "junit.xml")}',
            f'--basetemp={os.path.join(rundir, "tmp")}']


def run_env(entry: Client, rundir: str, fuseshim: dict | None = None) -> dict:
    """The environment of one run; ``fuseshim``: {'site', 'shims', 'startup',
    'libfuse_env'} for a run with fuseshim providing the peer's module."""
    env = {k: v for k, v in os.environ.items()
           if k not in SCRUB and not k.startswith('FUSESHIM_MATRIX_')}
    env.update(entry.env)
    # TMPDIR short: multiprocessing puts AF_UNIX sockets there (108-byte
    # paths: pyfuse3's tests failed below the report directory)
    env['TMPDIR'] = tempfile.mkdtemp(prefix='fuseshim-client-')
    env['PYTHONDONTWRITEBYTECODE'] = '1'
    if fuseshim:
        env.update({k: v for k, v in fuseshim.get('libfuse_env', {}).items()
                    if k == 'LD_LIBRARY_PATH'})
        env['PYTHONPATH'] = fuseshim['shims']
        env['FUSESHIM_CLIENT_SITE'] = fuseshim['site']
        env['FUSESHIM_PROVIDES'] = entry.peer
        env['FUSESHIM_STARTUP'] = fuseshim.get('startup', 'auto')
    return env


MODULE_PROBE = ('import importlib, json, sys; m = importlib.import_module(sys.argv[1]); '
                'print(json.dumps({"name": m.__name__, "file": getattr(m, "__file__", None)}))')


def module_origin(python: str, module: str, env: dict, cwd: str, log: Log) -> dict:
    """Which file ``import <module>`` loads in a run's environment: the real
    peer, or (with the hook) fuseshim's layer."""
    cp = run([python, '-c', MODULE_PROBE, module], env=env, cwd=cwd, log=log, timeout=120,
             check=False, capture=True)
    lines = (cp.output_text or '').strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {'error': f'import {module} failed (exit {cp.returncode}): '
                         + ' '.join(lines[-3:])}


def run_suite(entry: Client, prepared: dict, rundir: str, log: Log,
              fuseshim: dict | None = None) -> dict:
    """One run of the client's suite; returns counts and per-id outcomes."""
    shutil.rmtree(rundir, ignore_errors=True)
    os.makedirs(rundir)
    env = run_env(entry, rundir, fuseshim)
    cwd = prepared['sdist'] if entry.tests.from_ == 'sdist' else rundir
    res = {'side': 'fuseshim' if fuseshim else 'real', 'dir': rundir}
    origin = module_origin(prepared['python'], entry.module, env, cwd, log)
    res['module'] = origin
    layer = (origin.get('name') or '').startswith('fuseshim.compat.')
    if origin.get('error') or bool(fuseshim) != layer:
        res['error'] = origin.get('error') or (
            f'import {entry.module} gave {origin.get("file")}: '
            + ('not fuseshim\'s layer (the import hook did not act)' if fuseshim
               else 'fuseshim\'s layer instead of the real peer'))
        remove_tmpdir(env['TMPDIR'])
        return res
    cmd = pytest_command(entry, prepared['python'], rundir)
    t0 = time.monotonic()
    log.section(f'{entry.name}: {res["side"]} run')
    try:
        cp = run(cmd, env=env, cwd=cwd, log=log, timeout=entry.timeout, check=False)
        res['exit'] = cp.returncode
        output = cp.output_text or ''
    except StageError as e:
        res['exit'] = None
        res['error'] = str(e)
        output = ''
    res['elapsed'] = round(time.monotonic() - t0, 1)
    remove_tmpdir(env['TMPDIR'])
    from .runner import pytest_summary
    res['summary'] = pytest_summary(output)
    res['outcomes'] = junit_outcomes(os.path.join(rundir, 'junit.xml'))
    res['counts'] = count(res['outcomes'])
    if not res.get('error') and res['exit'] not in (0, 1, 2):
        res['error'] = f'pytest exit {res["exit"]}: {res["summary"]}'
    elif not res.get('error') and not res['outcomes']:
        res['error'] = f'the suite reported no test (exit {res["exit"]}): {res["summary"]}'
    return res


def remove_tmpdir(path: str) -> None:
    """Remove a run's TMPDIR unless something is still mounted below it
    (never delete through a mount; the runner unmounts leftovers)."""
    with open('/proc/self/mountinfo') as f:
        if any(line.split()[4].startswith(path + '/') for line in f):
            return
    shutil.rmtree(path, ignore_errors=True)


def junit_outcomes(path: str) -> dict[str, str]:
    """test id -> passed | failed | error | skipped, from a JUnit XML file
    (a test reported twice, e.g. a teardown error, keeps its worst outcome)."""
    rank = {'passed': 0, 'skipped': 1, 'failed': 2, 'error': 3}
    out: dict[str, str] = {}
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return out
    for tc in root.iter('testcase'):
        cls, name = tc.get('classname') or '', tc.get('name') or ''
        tid = f'{cls}::{name}' if cls else name
        if tc.find('error') is not None:
            o = 'error'
        elif tc.find('failure') is not None:
            o = 'failed'
        elif tc.find('skipped') is not None:
            o = 'skipped'
        else:
            o = 'passed'
        if rank[o] >= rank.get(out.get(tid, 'passed'), 0):
            out[tid] = o
    return out


def count(outcomes: dict) -> dict:
    c = {'passed': 0, 'failed': 0, 'error': 0, 'skipped': 0}
    for o in outcomes.values():
        c[o] += 1
    c['total'] = len(outcomes)
    return c


def compare(real: dict, shim: dict, known_failures: Sequence[KnownFailure] = ()) -> dict:
    """Judge a fuseshim run against the real peer's, per test id.

    status: pass (fuseshim passes every test the real peer passes), xfail
    (only listed known failures), fail (a regression), xpass (a listed known
    failure no longer happens: remove it), error (a run produced nothing)."""
    for side in (real, shim):
        if side.get('error'):
            return {'status': 'error', 'problems': [f'{side["side"]} run: {side["error"]}']}
    ro, so = real['outcomes'], shim['outcomes']
    if not any(o == 'passed' for o in ro.values()):
        return {'status': 'error',
                'problems': ['the real peer passed no test: nothing to compare with']}
    lost = sorted(t for t, o in ro.items() if o == 'passed' and so.get(t) != 'passed')
    known, regressions = [], []
    for t in lost:
        k = next((k for k in known_failures if fnmatch.fnmatchcase(t, k.test)), None)
        (known if k else regressions).append(
            {'test': t, 'real': 'passed', 'fuseshim': so.get(t, 'missing'),
             **({'reason': k.reason} if k else {})})
    stale = [k.model_dump() for k in known_failures
             if not any(fnmatch.fnmatchcase(x['test'], k.test) for x in known)]
    out = {
        'regressions': regressions, 'known': known, 'stale_known': stale,
        'both_failed': sorted(t for t, o in ro.items() if o in FAILED and so.get(t) in FAILED),
        'only_fuseshim_passed': sorted(t for t, o in ro.items()
                                       if o != 'passed' and so.get(t) == 'passed'),
        'only_in_fuseshim_run': sorted(set(so) - set(ro)),
    }
    problems = [f'{r["test"]}: passes with the real peer, {r["fuseshim"]} with fuseshim'
                for r in regressions]
    problems += [f'known failure {k["test"]!r} ({k["reason"]}) passed: remove it from '
                 f'known_failures' for k in stale]
    out['problems'] = problems
    if regressions:
        out['status'] = 'fail'
    elif stale:
        out['status'] = 'xpass'
    else:
        out['status'] = 'xfail' if known else 'pass'
    return out


def unexpected(clients: dict) -> list[str]:
    """The clients-stage results that make a run unexpected (exit 1)."""
    out = []
    for name, r in clients.items():
        if r.get('error'):
            out.append(f'client {name}')
        out += [f'client {name} on {cid}' for cid, cr in r['cells'].items()
                if cr.get('status') in ('fail', 'error', 'xpass')]
    return out


def merge_shards(into: dict, name: str, r: dict, where: str) -> None:
    """Add one shard's result for client ``name`` (the shards of a matrix
    run each ran the client in their own cells) to ``into``."""
    have = into.setdefault(name, {**r, 'cells': {}})
    for cid, cr in r['cells'].items():
        if cid in have['cells']:
            raise ValueError(f'client {name} on {cid} is reported twice (again by {where})')
        have['cells'][cid] = cr
    if r.get('error') and not have.get('error'):
        have['error'] = r['error']


def known_in(known_failures: Sequence[KnownFailure], libfuse_version: str) -> list:
    """The known failures that apply in a cell of this libfuse version."""
    return [k for k in known_failures
            if not k.libfuse or any(fnmatch.fnmatchcase(libfuse_version, v)
                                    for v in k.libfuse)]


def side_text(res: dict | None) -> str:
    """'18 passed, 8 skipped' (or the error) for a report cell."""
    if not res:
        return '-'
    if res.get('error') and not res.get('outcomes'):
        return 'ERROR'
    c = res.get('counts') or {}
    parts = [f'{c.get("passed", 0)} passed']
    for k, word in (('failed', 'failed'), ('error', 'error'), ('skipped', 'skipped')):
        if c.get(k):
            parts.append(f'{c[k]} {word}{"s" if k == "error" and c[k] > 1 else ""}')
    return ', '.join(parts)
