"""Building fuseshim against one libfuse, checking what was built, and the
packaging stage (sdist -> wheel in a clean venv -> twine check -> file list
-> NEEDED soname -> probe and tests against the installed wheel)."""
from __future__ import annotations

import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import zipfile

from .. import elf
from .libfuse import LibfusePrefix, build_tools_env, meson_cmd
from .util import Log, StageError, run

SITECUSTOMIZE = '''\
# Written by fuseshim.matrix: a matrix cell must import *its* fuseshim build
# from PYTHONPATH, so drop editable-install finders (meson-python puts one at
# the front of sys.meta_path) that would hand out another fuseshim.  Asking
# such a finder may start a rebuild (which can fail, e.g. as another user), so
# fuseshim's own is recognised by its module name; others are asked.
import sys as _sys
for _f in list(_sys.meta_path):
    _mod = type(_f).__module__ or ''
    if _mod == '_fuseshim_editable_loader':
        _sys.meta_path.remove(_f)
    elif _mod.endswith('_editable_loader'):
        try:
            _drop = _f.find_spec('fuseshim', None) is not None
        except Exception:
            _drop = True
        if _drop:
            _sys.meta_path.remove(_f)
del _sys
'''


def find_source(start: str | None = None) -> str:
    """The fuseshim source tree: --source, else upwards from the current
    directory, else around this package (an editable or in-tree run)."""
    cands = []
    if start:
        cands.append(start)
    cands.append(os.getcwd())
    cands.append(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    for c in cands:
        d = os.path.abspath(c)
        while True:
            pp = os.path.join(d, 'pyproject.toml')
            if os.path.exists(pp) and os.path.exists(os.path.join(d, 'shim', '_core.pyx')):
                with open(pp) as f:
                    if re.search(r'^name\s*=\s*"fuseshim"', f.read(), re.M):
                        return d
            if start and c == start:
                break
            parent = os.path.dirname(d)
            if parent == d:
                break
            d = parent
        if start and c == start:
            raise StageError(f'--source {start}: not a fuseshim source tree')
    raise StageError('no fuseshim source tree found (run from the repository, or pass '
                     '--source DIR): the matrix builds fuseshim against every libfuse')


TESTED_PATHS = ('shim', 'compat_tests', 'meson.build', 'meson.options', 'pyproject.toml',
                'matrix.yaml')


def source_revision(src: str | None) -> str | None:
    """Which fuseshim a run tested: the git commit of the source tree, with
    a digest of uncommitted changes (``<sha>+dirty.<digest>``) so that shard
    reports of different edits are never merged; None outside git."""
    if not src:
        return None
    git = ['git', '-C', src]
    try:
        head = subprocess.run(git + ['rev-parse', 'HEAD'], capture_output=True, text=True,
                              check=True).stdout.strip()
        diff = subprocess.run(git + ['diff', 'HEAD', '--binary'], capture_output=True,
                              check=True).stdout
        # new files count only where they are built or tested: report
        # directories and other leftovers in the checkout are not fuseshim
        untracked = subprocess.run(git + ['ls-files', '--others', '--exclude-standard', '-z',
                                          '--', *TESTED_PATHS],
                                   capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    if not diff and not untracked:
        return head
    h = hashlib.sha256(diff)
    for name in sorted(n for n in untracked.split(b'\0') if n):
        h.update(name)
        try:
            with open(os.path.join(src, os.fsdecode(name)), 'rb') as f:
                h.update(f.read())
        except OSError:
            pass
    return f'{head}+dirty.{h.hexdigest()[:12]}'


def write_shims(directory: str) -> str:
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, 'sitecustomize.py'), 'w') as f:
        f.write(SITECUSTOMIZE)
    return directory


def ldd_libfuse(so: str, env: dict) -> str | None:
    out = subprocess.run(['ldd', so], capture_output=True, text=True, env=env).stdout
    for line in out.splitlines():
        if 'libfuse3.so' in line:
            m = re.search(r'=>\s*(\S+)', line)
            return m.group(1) if m else line.strip()
    return None


def verify_so(so: str, lf: LibfusePrefix, log: Log) -> dict:
    """NEEDED soname and where the dynamic linker finds it."""
    libs = elf.needed(so)
    fuse = [n for n in libs if n.startswith('libfuse3.so')]
    resolved = ldd_libfuse(so, lf.env())
    log.write(f'{so}: NEEDED {libs}; libfuse3 resolves to {resolved}')
    problems = []
    if len(fuse) != 1:
        problems.append(f'{os.path.basename(so)} NEEDs {fuse or "no libfuse3"}')
    if lf.libdir and (not resolved or not os.path.realpath(resolved).startswith(
            os.path.realpath(lf.libdir))):
        problems.append(f'libfuse3 resolves to {resolved}, not into {lf.libdir}')
    return {'soname': fuse[0] if fuse else None, 'needed': libs, 'resolved': resolved,
            'problems': problems}


def build_ident(src: str, lf: LibfusePrefix) -> str:
    """What a configured build tree is for: the source tree, the libfuse
    build, and the interpreter -- its path too, not only its version: meson
    records the path (native.ini) and ninja runs it, so a tree configured by
    a venv since removed fails to build, and one of another venv builds for
    the wrong site."""
    lf_stamp = lf.stamp
    lf_mtime = os.path.getmtime(lf_stamp) if lf_stamp and os.path.exists(lf_stamp) else 0
    return f'{src}\n{lf.prefix}\n{lf_mtime}\n{sys.version}\n{sys.executable}'


def build_fuseshim(src: str, lf: LibfusePrefix, cache: str, log: Log, rebuild=False,
                   timeout=1200) -> dict:
    """meson build of the source tree against ``lf`` into
    $CACHE/fuseshim/<libfuse>/{build,site}; ninja makes re-runs incremental."""
    root = os.path.join(cache, 'fuseshim', lf.version)
    bdir = os.path.join(root, 'build')
    site = os.path.join(root, 'site')
    if rebuild:
        shutil.rmtree(root, ignore_errors=True)
    env = lf.env(build_tools_env())
    env.pop('LD_LIBRARY_PATH', None)
    stamp_src = os.path.join(bdir, 'fuseshim-matrix-source')
    ident = build_ident(src, lf)
    if os.path.exists(stamp_src):
        with open(stamp_src) as f:
            if f.read() != ident:  # see build_ident: start over
                log.write(f'{bdir}: configured for another source tree, libfuse or '
                          'interpreter; starting over')
                shutil.rmtree(root, ignore_errors=True)
    if not os.path.exists(os.path.join(bdir, 'build.ninja')):
        shutil.rmtree(bdir, ignore_errors=True)
        log.section(f'meson setup (fuseshim against libfuse {lf.version})')
        run(meson_cmd() + ['setup', bdir, src, f'--prefix={os.path.join(root, "prefix")}',
                           f'-Dpython.platlibdir={site}', f'-Dpython.purelibdir={site}',
                           f'--native-file={_native_file(root)}'],
            env=env, log=log, timeout=timeout)
        with open(stamp_src, 'w') as f:
            f.write(ident)
    log.section('ninja + install')
    run(meson_cmd() + ['compile', '-C', bdir], env=env, log=log, timeout=timeout)
    shutil.rmtree(site, ignore_errors=True)
    run(meson_cmd() + ['install', '-C', bdir, '--quiet', '--no-rebuild'], env=env, log=log,
        timeout=timeout)
    sos = glob.glob(os.path.join(site, 'fuseshim', '_core*.so'))
    if len(sos) != 1:
        raise StageError(f'expected one fuseshim/_core*.so in {site}, found {sos}')
    check = verify_so(sos[0], lf, log)
    return {'site': site, 'so': sos[0], 'build_dir': bdir, **check}


def _native_file(root):
    """Pin meson's python to this interpreter (the one the cells run)."""
    os.makedirs(root, exist_ok=True)
    path = os.path.join(root, 'native.ini')
    with open(path, 'w') as f:
        f.write(f"[binaries]\npython = '{sys.executable}'\n")
    return path


# ---------------------------------------------------------------- packaging

FORBIDDEN_IN_WHEEL = [r'\.pyx$', r'\.pxi$', r'\.pxd$', r'\.c$', r'\.h$', r'__pycache__',
                      r'\.pyc$', r'(^|/)compat_tests/', r'(^|/)build/', r'\.orig$', r'\.rej$',
                      r'~$', r'\.swp$', r'(^|/)\.']


def build_sdist(src: str, outdir: str, log: Log, env: dict, timeout=1200) -> str:
    os.makedirs(outdir, exist_ok=True)
    for old in glob.glob(os.path.join(outdir, '*.tar.gz')):
        os.remove(old)
    run([sys.executable, '-m', 'build', '--sdist', '--outdir', outdir, src], env=env, log=log,
        timeout=timeout)
    found = glob.glob(os.path.join(outdir, '*.tar.gz'))
    if len(found) != 1:
        raise StageError(f'python -m build --sdist left {found} in {outdir}')
    return found[0]


# files below shim/ that the wheel must carry as they are: the modules and
# the templates of the matrix report (not .pyx/.pxi: compiled into _core)
PACKAGE_FILE_SUFFIXES = ('.py', '.j2')


def sdist_modules(sdist: str) -> list[str]:
    """Package files (paths below shim/: modules, templates) that the sdist carries."""
    import tarfile
    out = []
    with tarfile.open(sdist) as t:
        for m in t.getmembers():
            parts = m.name.split('/', 2)
            if (len(parts) == 3 and parts[1] == 'shim' and m.name.endswith(PACKAGE_FILE_SUFFIXES)
                    and m.isfile()):
                out.append(parts[2])
    return sorted(out)


# files of shim/ installed at the top level of site-packages, not in the
# package: the start-up hook of $FUSESHIM_PROVIDES (see shim/meson.build)
TOP_LEVEL_FILES = ('_fuseshim_provide.py', 'fuseshim-provide.pth')


def check_wheel_files(wheel: str, modules: list[str]) -> tuple[list[str], list[str]]:
    """-> (file list, problems): stubs and py.typed present, every package
    module (``modules``: paths below shim/) shipped, nothing stray."""
    with zipfile.ZipFile(wheel) as z:
        names = sorted(z.namelist())
    problems = []
    pkg = [n for n in names if n.startswith('fuseshim/')]
    for n in names:
        top = n.split('/', 1)[0]
        if (top != 'fuseshim' and n not in TOP_LEVEL_FILES
                and not re.match(r'^fuseshim-[^/]+\.dist-info$', top)):
            problems.append(f'stray top-level entry {n}')
        for pat in FORBIDDEN_IN_WHEEL:
            if n.startswith('fuseshim/') and re.search(pat, n.split('/', 1)[-1]):
                problems.append(f'stray file {n}')
                break
    if not any(re.match(r'^fuseshim/_core\.[^/]*\.so$', n) for n in pkg):
        problems.append('no fuseshim/_core extension in the wheel')
    for req in ('fuseshim/py.typed', 'fuseshim/_core.pyi', 'fuseshim/__init__.py',
                *TOP_LEVEL_FILES):
        if req not in names:
            problems.append(f'{req} missing')
    for rel in modules:
        if '__pycache__' in rel:
            continue
        want = rel if rel in TOP_LEVEL_FILES else 'fuseshim/' + rel
        if want not in names:
            problems.append(f'{want} is in the sdist but not in the wheel '
                            '(missing from shim/meson.build install lists?)')
    return names, problems


def uncommitted_modules(src: str, modules: list[str]) -> list[str]:
    """Package files in the work tree that the sdist (git HEAD) lacks."""
    shim = os.path.join(src, 'shim')
    have = set(modules)
    out = []
    for path in sorted(p for p in glob.glob(os.path.join(shim, '**', '*'), recursive=True)
                       if p.endswith(PACKAGE_FILE_SUFFIXES)):
        rel = os.path.relpath(path, shim).replace(os.sep, '/')
        if '__pycache__' not in rel and rel not in have:
            out.append(rel)
    return out


def _wheel_key(sdist: str, lf: LibfusePrefix) -> str:
    """Identity of a wheel build: the sdist's contents (not its timestamps),
    the libfuse build and the interpreter."""
    import hashlib
    import tarfile
    h = hashlib.sha256()
    with tarfile.open(sdist) as t:
        for m in sorted(t.getmembers(), key=lambda m: m.name):
            h.update(m.name.encode() + b'\0')
            if m.isfile():
                h.update(t.extractfile(m).read())
    h.update(f'{lf.prefix}|{lf.stamp and os.path.getmtime(lf.stamp)}|{sys.version}'.encode())
    return h.hexdigest()[:20]


def packaging_stage(src: str, lf: LibfusePrefix, sdist: str, workdir: str, log: Log,
                    run_tests, timeout=1200, rebuild=False) -> dict:
    """Wheel from ``sdist`` in a fresh venv against ``lf``, then checks.

    ``run_tests(python, env, cwd) -> dict`` runs the probe + test suite with the
    venv's interpreter (from ``cwd``, outside the source tree)."""
    res: dict = {'problems': [], 'sdist': os.path.basename(sdist)}
    shutil.rmtree(workdir, ignore_errors=True)
    os.makedirs(workdir)
    venv = os.path.join(workdir, 'venv')
    log.section(f'packaging against libfuse {lf.version}: clean venv')
    run([sys.executable, '-m', 'venv', '--clear', venv], log=log, timeout=timeout)
    py = os.path.join(venv, 'bin', 'python')
    env = lf.env(build_tools_env())
    env.pop('PYTHONPATH', None)
    env['PIP_DISABLE_PIP_VERSION_CHECK'] = '1'
    env.pop('LD_LIBRARY_PATH', None)
    wheels = os.path.join(workdir, 'wheels')
    key = _wheel_key(sdist, lf)
    cached_dir = os.path.join(os.path.dirname(workdir), 'wheel-cache', lf.version)
    cached = glob.glob(os.path.join(cached_dir, key, 'fuseshim-*.whl'))
    if cached and not rebuild:
        os.makedirs(wheels, exist_ok=True)
        wheel = os.path.join(wheels, os.path.basename(cached[0]))
        shutil.copy2(cached[0], wheel)
        log.section('wheel: reusing the one built from an identical sdist against the same '
                    f'libfuse build ({cached[0]})')
        res['wheel_reused'] = True
    else:
        log.section('wheel from the sdist (pip, isolated build)')
        run([py, '-m', 'pip', 'wheel', '--no-deps', '-w', wheels, sdist], env=env, log=log,
            timeout=timeout, cwd=workdir)
        found = glob.glob(os.path.join(wheels, 'fuseshim-*.whl'))
        if len(found) != 1:
            raise StageError(f'pip wheel left {found} in {wheels}')
        wheel = found[0]
        shutil.rmtree(cached_dir, ignore_errors=True)
        os.makedirs(os.path.join(cached_dir, key))
        shutil.copy2(wheel, os.path.join(cached_dir, key))
        res['wheel_reused'] = False
    res['wheel'] = os.path.basename(wheel)
    log.section('twine check')
    tw = run([sys.executable, '-m', 'twine', 'check', '--strict', sdist, wheel], log=log,
             check=False, timeout=300)
    res['twine'] = 'passed' if tw.returncode == 0 else 'failed'
    if tw.returncode != 0:
        res['problems'].append('twine check --strict failed: ' +
                               ' '.join(tw.output_text.strip().splitlines()[-3:]))
    modules = sdist_modules(sdist)
    names, problems = check_wheel_files(wheel, modules)
    res['files'] = names
    res['problems'] += problems
    res['not_in_sdist'] = uncommitted_modules(src, modules)
    if res['not_in_sdist']:
        log.write('note: the sdist is made from git HEAD; these work-tree modules are not in '
                  'it (uncommitted?): ' + ', '.join(res['not_in_sdist']))
    log.write('wheel contents:\n  ' + '\n  '.join(names))
    log.section('install the wheel (+ pytest) into the venv')
    run([py, '-m', 'pip', 'install', wheel, 'pytest'], env=env, log=log, timeout=timeout,
        cwd=workdir)
    sos = glob.glob(os.path.join(venv, 'lib', 'python*', 'site-packages', 'fuseshim',
                                 '_core*.so'))
    if len(sos) != 1:
        raise StageError(f'installed wheel: expected one _core*.so, found {sos}')
    check = verify_so(sos[0], lf, log)
    res['soname'] = check['soname']
    res['needed'] = check['needed']
    res['problems'] += check['problems']
    runenv = lf.env()
    runenv.pop('PYTHONPATH', None)
    outside = os.path.join(workdir, 'run')
    os.makedirs(outside, exist_ok=True)
    res.update(run_tests(py, runenv, outside, os.path.dirname(os.path.dirname(sos[0]))))
    return res
