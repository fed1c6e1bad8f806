"""Orchestration: prepare (libfuse, fuseshim builds, kernels, sdist), then run
native cells, VM boots and packaging stages, judge, and report."""
from __future__ import annotations

import concurrent.futures as cf
import os
import re
import shlex
import shutil
import sys
import threading
import time
import xml.etree.ElementTree as ET

from . import apt as aptmod
from . import build, clients, libfuse, model, schema, vm
from .progress import Progress
from .sdists import IndexUnreachable, PeerSourceError
from .util import Log, StageError, read_json, run, stop_children

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'probe.py')
PROBE_TIMEOUT = 180


class Options:
    """What the command line decided (see cli.py)."""

    def __init__(self, **kw):
        self.cache = kw.get('cache')
        self.report_dir = kw.get('report_dir')
        self.source = kw.get('source')
        self.jobs = kw.get('jobs', 1)
        self.tests = kw.get('tests')          # schema.Tests
        self.tests_base = kw.get('tests_base')  # relative test paths are resolved here
        self.packaging = kw.get('packaging', False)
        self.rebuild = kw.get('rebuild', False)
        self.refresh = kw.get('refresh', False)
        self.no_tests = kw.get('no_tests', False)
        self.quiet = kw.get('quiet', False)
        self.preset = kw.get('preset')
        self.parallel_tests = kw.get('parallel_tests', False)
        self.clients = kw.get('clients') or []    # names of matrix.yaml clients to run
        # with --shard: the packaging stages this shard owns (None: all)
        self.packaging_versions = kw.get('packaging_versions')


class Runner:
    def __init__(self, cfg: schema.Matrix, opts: Options, stream=None):
        self.cfg = cfg
        self.o = opts
        self.cache = opts.cache
        self.rd = opts.report_dir
        self.stream = stream or sys.stderr
        self.apt = None
        self.lf: dict[str, libfuse.LibfusePrefix] = {}
        self.builds: dict[str, dict] = {}
        self.kernels: dict[str, dict] = {}
        self.prep_errors: dict[str, str] = {}
        self.packaging: dict[str, dict] = {}
        self.sdist = None
        self.src = None
        self.shims = None
        self.timings: dict[str, float] = {}
        self.clients: dict[str, dict] = {}     # name -> prepare, real run, per-cell results
        self._lock = threading.Lock()
        # Host test suites run one at a time even with --jobs: suites inspect
        # global state (the mount table, fusectl connections, CPU time).
        self._host_tests = threading.Lock() if not opts.parallel_tests else None

    # ---------------------------------------------------------------- helpers
    def log(self, name: str) -> Log:
        return Log(os.path.join(self.rd, 'logs', name + '.log'))

    def rel(self, path: str | None) -> str | None:
        return os.path.relpath(path, self.rd) if path else None

    def get_apt(self) -> aptmod.PrivateApt:
        with self._lock:
            if self.apt is None:
                mirror = self.cfg.mirror
                if mirror == 'auto':
                    mirror = aptmod.system_mirror()
                suites = list(self.cfg.suites)
                for e in self.cfg.libfuse:
                    if e.debian:
                        suites.append(e.debian.suite)
                for k in self.cfg.kernels:
                    if k.suite:
                        suites.append(k.suite)
                suites.append(self.cfg.busybox.suite)
                self.apt = aptmod.PrivateApt(self.cache, mirror, suites,
                                             log=self.log('apt'))
            return self.apt

    # ---------------------------------------------------------------- main
    def run(self, cells: list[model.Cell]) -> dict:
        t_start = time.monotonic()
        os.makedirs(self.rd, exist_ok=True)
        for sub in ('logs', 'cells'):
            shutil.rmtree(os.path.join(self.rd, sub), ignore_errors=True)
        for d in os.listdir(self.rd):
            if d.startswith('vm-') or d == 'packaging':
                shutil.rmtree(os.path.join(self.rd, d), ignore_errors=True)
        self.src = build.find_source(self.o.source)
        hidden = _hidden_from_others(self.cache)
        if hidden:
            self.stream.write(f'fuseshim-matrix: note: other users cannot enter {hidden}, so '
                              f'tests that drop privileges cannot import the cell builds in '
                              f'{self.cache}; set FUSESHIM_CACHE to a world-readable place '
                              f'(e.g. /var/cache/fuseshim) for them\n')
        self.shims = build.write_shims(os.path.join(self.rd, 'shims'))
        fuse_before = _fuse_mounts()
        packaging = self.packaging_versions(cells)
        versions = sorted({c.libfuse.version for c in cells} | set(packaging),
                          key=model.row_key)
        vm_kernels = sorted({c.kernel.name for c in cells if c.is_vm})
        native = [c for c in cells if not c.is_vm]
        groups = {k: [c for c in cells if c.is_vm and c.kernel.name == k] for k in vm_kernels}
        prep_units = len(versions) + len(vm_kernels) + (1 if packaging else 0)
        client_cells = clients_cells(cells) if self.o.clients else []
        total = prep_units + len(cells) + len(vm_kernels) + len(packaging) + \
            len(self.o.clients) * (2 + len(client_cells))
        progress = Progress(total, self.stream, quiet=self.o.quiet).start()
        self.progress = progress
        try:
            needs_apt = any(e.source != 'system' for e in self.cfg.libfuse
                            if e.version in versions) or vm_kernels
            if needs_apt:
                progress.stage('apt', 'private apt-get update')
                try:
                    self.get_apt().ensure(refresh=self.o.refresh)
                    progress.finish('apt', 'ok', f'lists in {self.get_apt().lists}', count=False)
                except StageError as e:
                    progress.finish('apt', 'error', str(e), count=False)
                    for v in versions:
                        self.prep_errors[f'libfuse {v}'] = f'private apt: {e}'
            # ---- phase 1: prepare
            t = time.monotonic()
            self.in_pool(([(self._prep_sdist, ())] if packaging else [])
                         + [(self._prep_kernel, (k,)) for k in vm_kernels]
                         + [(self._prep_libfuse, (v,)) for v in versions])
            self.timings['prepare'] = time.monotonic() - t
            # ---- phase 2: cells, VMs, packaging
            t = time.monotonic()
            self.in_pool(self.cell_jobs(native, packaging, groups))
            self.timings['cells'] = time.monotonic() - t
            # ---- phase 3: real projects, real peer vs fuseshim (they mount:
            # one at a time, after the suites)
            if self.o.clients:
                t = time.monotonic()
                for name in self.o.clients:
                    self._run_client(name, client_cells)
                self.timings['clients'] = time.monotonic() - t
        finally:
            # only mounts below our own directories (other people may be testing too)
            ours = tuple(os.path.realpath(d) + os.sep for d in (self.rd, self.cache))
            leftovers = {m for m in _fuse_mounts() - fuse_before if m.startswith(ours)}
            for mp in sorted(leftovers, key=len, reverse=True):
                subprocess_quiet(['umount', '-l', mp])
            progress.stop()
        self.leftover_mounts = sorted(leftovers)
        self.timings['total'] = time.monotonic() - t_start
        return self.summary(cells)

    # ---------------------------------------------------------------- prepare
    def _prep_libfuse(self, version: str):
        entry = self.cfg.libfuse_entry(version)
        task = f'libfuse {version}'
        log = self.log(f'build-libfuse-{version}')
        if task in self.prep_errors:
            self.progress.finish(task, 'error', self.prep_errors[task])
            return
        try:
            self.progress.stage(task, 'fetch + build libfuse')
            t = time.monotonic()
            lf = libfuse.ensure_libfuse(entry, self.cache, self.get_apt()
                                        if entry.source != 'system' else None,
                                        log, rebuild=self.o.rebuild,
                                        timeout=self.cfg.timeouts.build)
            self.timings[f'libfuse {version}'] = time.monotonic() - t
            self.progress.stage(task, 'build fuseshim')
            t = time.monotonic()
            blog = self.log(f'build-fuseshim-{version}')
            b = build.build_fuseshim(self.src, lf, self.cache, blog, rebuild=self.o.rebuild,
                                     timeout=self.cfg.timeouts.build)
            self.timings[f'fuseshim {version}'] = time.monotonic() - t
            b['log'] = self.rel(blog.path)
            b['libfuse_log'] = self.rel(log.path)
            b['libfuse_reused'] = lf.reused
            self.lf[version] = lf
            self.builds[version] = b
            self.progress.finish(task, 'ok' if not b['problems'] else 'fail',
                                 f'{b["soname"]}, {"reused" if lf.reused else "built"}')
        except (StageError, OSError) as e:
            self.prep_errors[task] = str(e)
            self.progress.finish(task, 'error', _first_line(e))

    def _prep_kernel(self, name: str):
        k = self.cfg.kernel(name)
        task = f'kernel {name}'
        log = self.log(f'kernel-{name}')
        try:
            self.progress.stage(task, 'download + initramfs')
            t = time.monotonic()
            meta = vm.ensure_kernel(k, self.cache, self.get_apt(), log, rebuild=self.o.rebuild,
                                    busybox=self.cfg.busybox)
            self.timings[task] = time.monotonic() - t
            self.kernels[name] = meta
            self.progress.finish(task, 'ok', f'{meta["release"]}, modules '
                                 f'{",".join(meta["modules"]) or "none"}')
        except (StageError, OSError) as e:
            self.prep_errors[task] = str(e)
            self.progress.finish(task, 'error', _first_line(e))

    def _prep_sdist(self):
        task = 'sdist'
        log = self.log('sdist')
        try:
            self.progress.stage(task, 'python -m build --sdist')
            t = time.monotonic()
            env = libfuse.build_tools_env()
            self.sdist = build.build_sdist(self.src, os.path.join(self.rd, 'packaging', 'dist'),
                                           log, env, timeout=self.cfg.timeouts.build)
            self.timings['sdist'] = time.monotonic() - t
            self.progress.finish(task, 'ok', os.path.basename(self.sdist))
        except (StageError, OSError) as e:
            self.prep_errors[task] = str(e)
            self.progress.finish(task, 'error', _first_line(e))

    # ---------------------------------------------------------------- tests
    def tests_for(self, cell):
        """(test path or None, args) for a cell."""
        if self.o.no_tests:
            return None, []
        t = self.o.tests
        path, args = t.path, list(t.args)
        if cell.is_vm:
            if t.vm_path is None:
                return None, []
            if t.vm_path != '@path':
                path = t.vm_path
            if t.vm_args is not None:
                args = list(t.vm_args)
            for extra in t.vm_extra:
                if any(model.matches(rule, cell.axes()) for rule in extra.cells):
                    args += extra.args
        if not path:
            return None, []
        base = self.o.tests_base
        return _abspath(path, base), _abs_args(args, base)

    def cell_env(self, cell, site: str | None, lf: libfuse.LibfusePrefix) -> dict:
        env = lf.env()
        env['PYTHONPATH'] = os.pathsep.join(p for p in (site, self.shims) if p)
        env['PYTHONDONTWRITEBYTECODE'] = '1'
        env['FUSESHIM_MATRIX_CELL'] = cell.id
        env['FUSESHIM_MATRIX_STARTUP'] = cell.startup
        env['FUSESHIM_MATRIX_LIBFUSE'] = cell.libfuse.version
        env['FUSESHIM_MATRIX_KERNEL'] = cell.kernel.name
        env['FUSESHIM_MATRIX_EXPECT_PATH'] = cell.expect.startup_path
        return env

    def private_tmp(self, env, directory):
        """TMPDIR inside ``directory``: the probe's mountpoints are ours to clean."""
        tmp = os.path.join(directory, 'tmpdir')
        os.makedirs(tmp, exist_ok=True)
        return {**env, 'TMPDIR': tmp}

    def commands(self, cell, python: str, site: str | None, celldir: str) -> dict:
        probe = [python, PROBE, '--startup', cell.startup, '--out',
                 os.path.join(celldir, 'probe.json')] + (['--expect-dir', site] if site else [])
        tpath, targs = self.tests_for(cell)
        tests = None
        if tpath:
            tests = [python, '-m', 'pytest', tpath, *targs, '-q', '-rfEs',
                     f'--junitxml={os.path.join(celldir, "junit.xml")}']
            if not cell.is_vm:  # keep every mountpoint inside the cell's directory
                tests.append(f'--basetemp={os.path.join(celldir, "tmp")}')
        return {'probe': probe, 'tests': tests}

    def in_pool(self, jobs: list[tuple]) -> None:
        """Run (function, args) jobs on --jobs workers, in order.  Interrupted
        (Ctrl-C, SIGTERM), it stops: queued jobs are dropped and running
        children interrupted, instead of the workers going on through the
        queue (the pool's exit waits for them) while the caller has left."""
        with cf.ThreadPoolExecutor(max(1, self.o.jobs)) as pool:
            futs = [pool.submit(fn, *args) for fn, args in jobs]
            try:
                for f in futs:
                    f.result()
            except BaseException:
                stop_children()
                pool.shutdown(wait=True, cancel_futures=True)
                raise

    def cell_jobs(self, native: list[model.Cell], packaging: list[str],
                  vm_groups: dict[str, list[model.Cell]]) -> list[tuple]:
        """Phase 2's jobs, (function, args), in the order the workers take them.

        The host's suites take turns (self._host_tests), so the host cells and
        packaging stages are one chain, the run's longest: it goes first, to
        one worker, while the others boot the VMs.  (Submitted one by one
        after the VMs, they waited until every VM had had a worker: 20
        minutes of the full preset's cold run.)  The VM boots with the most
        test work go first."""
        if self._host_tests:
            jobs = [(self._run_host_chain, (native, packaging))]
        else:
            jobs = [(self._run_native, (c,)) for c in native]
            jobs += [(self._run_packaging, (v,)) for v in packaging]
        for k in sorted(vm_groups, key=lambda k: -self._vm_work(vm_groups[k])):
            jobs.append((self._run_vm_group, (k, vm_groups[k])))
        return jobs

    def _run_host_chain(self, native: list[model.Cell], packaging: list[str]):
        for c in native:
            self._run_native(c)
        for v in packaging:
            self._run_packaging(v)

    def _vm_work(self, cells: list[model.Cell]) -> int:
        """How much a VM boot has to run: its cells plus their extra test
        files (the conformance suites take 10-20 minutes under TCG)."""
        return sum(1 + sum(a.endswith(".py") for a in self.tests_for(c)[1]) for c in cells)

    def _run_native(self, cell: model.Cell):
        t0 = time.monotonic()
        celldir = os.path.join(self.rd, 'cells', cell.slug)
        os.makedirs(celldir, exist_ok=True)
        log = Log(os.path.join(celldir, 'cell.log'))
        res = cell.result
        res.update({'dir': self.rel(celldir), 'log': self.rel(log.path), 'stages': []})
        v = cell.libfuse.version
        err = self.prep_errors.get(f'libfuse {v}')
        if err or v not in self.builds:
            res['error'] = f'build failed: {err}'
            return self._done(cell, t0)
        b = self.builds[v]
        res['soname'] = b['soname']
        res['problems'] = list(b['problems'])
        res['kernel_release'] = cell.kernel_release
        lf = self.lf[v]
        env = self.private_tmp(self.cell_env(cell, b['site'], lf), celldir)
        cmds = self.commands(cell, sys.executable, b['site'], celldir)
        self.progress.stage(cell.id, 'probe')
        self._stage(res, 'probe', cmds['probe'], env, celldir, log, PROBE_TIMEOUT)
        res['probe'] = read_json(os.path.join(celldir, 'probe.json'), {})
        if cmds['tests'] and self._tests_wanted(cell):
            self.progress.stage(cell.id, 'tests (waiting)' if self._host_tests else 'tests')
            st = self._stage(res, 'tests', cmds['tests'], env, celldir, log,
                             self.cfg.timeouts.cell, exclusive=True,
                             on_start=lambda: self.progress.stage(cell.id, 'tests'))
            res['tests'] = _tests_result(st['exit'], os.path.join(celldir, 'junit.xml'),
                                         st.get('output', ''))
            res['tests']['junit'] = self.rel(os.path.join(celldir, 'junit.xml'))
        return self._done(cell, t0)

    def _tests_wanted(self, cell) -> bool:
        only = self.o.tests.startup
        return not only or cell.startup in only

    def _stage(self, res, name, cmd, env, cwd, log, timeout, exclusive=False,
               on_start=None) -> dict:
        if exclusive and self._host_tests is not None:
            with self._host_tests:
                return self._stage(res, name, cmd, env, cwd, log, timeout, on_start=on_start)
        if on_start:
            on_start()
        t = time.monotonic()
        log.section(name)
        try:
            cp = run(cmd, env=env, cwd=cwd, log=log, timeout=timeout, check=False)
            st = {'name': name, 'exit': cp.returncode, 'output': cp.output_text}
        except StageError as e:
            st = {'name': name, 'exit': None, 'error': str(e), 'output': ''}
        st['elapsed'] = round(time.monotonic() - t, 1)
        res['stages'].append({k: v for k, v in st.items() if k != 'output'})
        return st

    def _done(self, cell, t0):
        cell.result['elapsed'] = round(time.monotonic() - t0, 1)
        status, problems = model.judge(cell)
        cell.result['status'] = status
        cell.result['judgement'] = problems
        detail = f'path {cell.result.get("probe", {}).get("startup_path", "?")}'
        if problems:
            detail += f'; {problems[0]}'
        self.progress.finish(cell.id, status, detail)

    # ---------------------------------------------------------------- VMs
    def _run_vm_group(self, kname: str, cells: list[model.Cell]):
        task = f'VM {kname}'
        t0 = time.monotonic()
        jobdir = os.path.join(self.rd, f'vm-{kname}')
        os.makedirs(jobdir, exist_ok=True)
        kerr = self.prep_errors.get(f'kernel {kname}')
        runnable = []
        for c in cells:
            c.result.update({'stages': [], 'problems': []})
            v = c.libfuse.version
            if kerr:
                c.result['error'] = f'kernel {kname}: {kerr}'
            elif v not in self.builds:
                c.result['error'] = f'build failed: {self.prep_errors.get(f"libfuse {v}")}'
            else:
                runnable.append(c)
        if not runnable:
            for c in cells:
                self._done(c, t0)
            self.progress.finish(task, 'error', 'nothing to boot', count=True)
            return
        meta = self.kernels[kname]
        python = os.path.realpath(sys.executable)
        lines = ['#!/bin/sh', '# generated by fuseshim.matrix: runs inside the guest',
                 'echo "FUSESHIM-VM: job starts; $(nproc) cpu, kernel $(uname -r)"']
        budget = self.cfg.timeouts.vm_boot
        for c in runnable:
            celldir = os.path.join(jobdir, c.slug)
            os.makedirs(celldir, exist_ok=True)
            for f in ('probe.json', 'junit.xml', 'probe.rc', 'tests.rc'):
                if os.path.exists(os.path.join(celldir, f)):
                    os.remove(os.path.join(celldir, f))
            b = self.builds[c.libfuse.version]
            env = self.cell_env(c, b['site'], self.lf[c.libfuse.version])
            env_keys = ('PYTHONPATH', 'LD_LIBRARY_PATH', 'PYTHONDONTWRITEBYTECODE', 'PATH',
                        'HOME') + tuple(k for k in env if k.startswith('FUSESHIM_MATRIX_'))
            exports = ' '.join(f'{k}={shlex.quote(env[k])}' for k in env_keys if k in env)
            cmds = self.commands(c, python, b['site'], celldir)
            t_cell = self.cfg.timeouts.vm_cell
            lines += [f'echo "FUSESHIM-VM: cell {c.id} starts"', f'cd {shlex.quote(celldir)}',
                      f'env -i {exports} timeout -k 10 {PROBE_TIMEOUT * 3} '
                      f'{shlex.join(cmds["probe"])} > probe.log 2>&1; echo $? > probe.rc']
            budget += PROBE_TIMEOUT * 3
            if cmds['tests'] and self._tests_wanted(c):
                lines.append(f'env -i {exports} timeout -k 10 {t_cell} '
                             f'{shlex.join(cmds["tests"])} > tests.log 2>&1; echo $? > tests.rc')
                budget += t_cell
            lines.append(f'echo "FUSESHIM-VM: cell {c.id} done: probe $(cat probe.rc) '
                         f'tests $(cat tests.rc 2>/dev/null || echo -)"')
            c.result.update({'dir': self.rel(celldir), 'log': self.rel(os.path.join(
                celldir, 'tests.log' if cmds_has_tests(self, c) else 'probe.log')),
                'soname': b['soname'],
                'kernel_release': meta['release']})
            c.result['problems'] += b['problems']
        with open(os.path.join(jobdir, 'job.sh'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        self.progress.stage(task, f'boot {meta["release"]} ({len(runnable)} cells)')
        for c in runnable:
            self.progress.stage(c.id, f'inside VM {kname}')
        log = Log(os.path.join(jobdir, 'qemu.log'))
        for name in ('console.log',):
            if os.path.exists(os.path.join(jobdir, name)):
                os.remove(os.path.join(jobdir, name))
        try:
            boot = vm.boot(meta, jobdir, self.cfg.vm, budget, log)
        except StageError as e:
            boot = {'error': str(e), 'done': False, 'markers': []}
        boot['console'] = self.rel(os.path.join(jobdir, 'console.log'))
        boot['qemu_log'] = self.rel(log.path)
        boot['kernel'] = meta['release']
        boot['packages'] = meta['packages']
        self.kernels[kname]['boot'] = boot
        for c in runnable:
            celldir = os.path.join(jobdir, c.slug)
            c.result['vm'] = {k: boot.get(k) for k in ('elapsed', 'done', 'timed_out',
                                                       'console', 'exit')}
            c.result['probe'] = read_json(os.path.join(celldir, 'probe.json'), {})
            prc = _read_rc(os.path.join(celldir, 'probe.rc'))
            c.result['stages'].append({'name': 'probe (vm)', 'exit': prc})
            if boot.get('error'):
                c.result['error'] = f'VM: {boot["error"]}'
            elif not c.result['probe']:
                why = ('timed out' if boot.get('timed_out') else
                       'the job did not finish' if not boot.get('done') else
                       f'probe exit {prc}')
                c.result['error'] = f'VM {kname}: no probe result ({why}); see ' \
                                    f'{boot["console"]} and {c.slug}/probe.log'
            trc = _read_rc(os.path.join(celldir, 'tests.rc'))
            if cmds_has_tests(self, c):
                out = ''
                try:
                    with open(os.path.join(celldir, 'tests.log'), errors='replace') as f:
                        out = f.read()
                except OSError:
                    pass
                c.result['tests'] = _tests_result(trc, os.path.join(celldir, 'junit.xml'), out)
                c.result['tests']['junit'] = self.rel(os.path.join(celldir, 'junit.xml'))
                c.result['stages'].append({'name': 'tests (vm)', 'exit': trc})
            self._done(c, t0)
        for c in cells:
            if c not in runnable:
                self._done(c, t0)
        self.progress.finish(task, 'ok' if boot.get('done') else 'error',
                             f'{boot.get("elapsed", "?")} s in qemu'
                             + ('' if boot.get('done') else ' (job did not finish)'))

    # ---------------------------------------------------------------- packaging
    def _run_packaging(self, version: str):
        task = f'packaging {version}'
        t0 = time.monotonic()
        log = self.log(f'packaging-{version}')
        res = {'log': self.rel(log.path), 'problems': []}
        self.packaging[version] = res
        lf = self.lf.get(version)
        if lf is None or self.sdist is None:
            res['error'] = (self.prep_errors.get('sdist') if self.sdist is None else
                            self.prep_errors.get(f'libfuse {version}')) or 'prerequisite failed'
            res['status'] = 'error'
            self.progress.finish(task, 'error', _first_line(res['error']))
            return
        workdir = os.path.join(self.cache, 'packaging', version)
        outdir = os.path.join(self.rd, 'packaging', version)
        os.makedirs(outdir, exist_ok=True)
        expect_soname = model.expected_soname(self.cfg.libfuse_entry(version))

        def run_tests(py, env, cwd, site):
            out = {}
            fake = model.Cell(self.cfg.libfuse_entry(version),
                              schema.Kernel(name='host', type='host'), 'auto')
            fake.expect = model.expectation(self.cfg, fake.libfuse, fake.kernel, 'auto')
            env = {**env, **{k: v for k, v in self.cell_env(fake, None, lf).items()
                             if k.startswith('FUSESHIM_MATRIX_')}}
            env['PYTHONDONTWRITEBYTECODE'] = '1'
            env = self.private_tmp(env, outdir)
            cmds = self.commands(fake, py, site, outdir)
            if cmds['tests']:
                cmds['tests'].append(f'--basetemp={os.path.join(outdir, "tmp")}')
            self.progress.stage(task, 'probe (installed wheel)')
            stages = {'stages': []}
            self._stage(stages, 'probe', cmds['probe'], env, cwd, log, PROBE_TIMEOUT)
            out['probe'] = read_json(os.path.join(outdir, 'probe.json'), {})
            if cmds['tests']:
                self.progress.stage(task, 'tests on the wheel (waiting)' if self._host_tests
                                    else 'tests (installed wheel)')
                st = self._stage(stages, 'tests', cmds['tests'], env, cwd, log,
                                 self.cfg.timeouts.cell, exclusive=True,
                                 on_start=lambda: self.progress.stage(
                                     task, 'tests (installed wheel)'))
                out['tests'] = _tests_result(st['exit'], os.path.join(outdir, 'junit.xml'),
                                             st.get('output', ''))
                out['tests']['junit'] = self.rel(os.path.join(outdir, 'junit.xml'))
            out['stages'] = stages['stages']
            out['expect'] = fake.expect.to_dict()
            return out

        try:
            self.progress.stage(task, 'wheel from sdist (clean venv)')
            res.update(build.packaging_stage(self.src, lf, self.sdist, workdir, log, run_tests,
                                             timeout=self.cfg.timeouts.build,
                                             rebuild=self.o.rebuild))
        except (StageError, OSError) as e:
            res['error'] = str(e)
        probs = list(res.get('problems') or [])
        if res.get('soname') and res['soname'] != expect_soname:
            probs.append(f'wheel NEEDs {res["soname"]}, expected {expect_soname}')
        probe = res.get('probe') or {}
        if probe:
            # a variant row ('3.18.3-uring') runs the release it builds
            if probe.get('libfuse_runtime_version') != schema.upstream(version):
                probs.append(f'installed wheel runs libfuse '
                             f'{probe.get("libfuse_runtime_version")}, expected '
                             f'{schema.upstream(version)}')
            if not probe.get('io_ok'):
                probs.append('probe mount through the installed wheel failed: '
                             + '; '.join(probe.get('problems') or ['no result']))
            probs += [p for p in probe.get('problems') or [] if p not in probs]
        elif not res.get('error'):
            probs.append('the probe of the installed wheel reported nothing')
        t = res.get('tests')
        if t and t.get('status') not in ('passed', 'no-tests'):
            probs.append(f'tests on the installed wheel {t.get("status")}: {t.get("summary")}')
        res['judgement'] = probs
        res['status'] = 'error' if res.get('error') else ('fail' if probs else 'pass')
        res['elapsed'] = round(time.monotonic() - t0, 1)
        self.progress.finish(task, res['status'], _first_line(res.get('error') or
                                                              (probs[0] if probs else
                                                               res.get('wheel', ''))))

    # ---------------------------------------------------------------- clients
    def _run_client(self, name: str, cells: list[model.Cell]):
        """Install one client, run its suite with the real peer, then with
        fuseshim providing the peer's module in each libfuse cell."""
        entry = self.cfg.client(name)
        res = {'entry': entry.model_dump(by_alias=True), 'cells': {}}
        self.clients[name] = res
        cdir = os.path.join(self.rd, 'clients', name)
        shutil.rmtree(cdir, ignore_errors=True)
        log = Log(os.path.join(cdir, 'client.log'))
        res['log'] = self.rel(log.path)
        task = f'client {name}'
        t0 = time.monotonic()
        self.progress.stage(task, f'install {clients.requirement(entry)}')
        try:
            prep = clients.ensure_client(entry, self.cache, log, rebuild=self.o.rebuild,
                                         timeout=self.cfg.timeouts.build)
            res['prepare'] = {k: v for k, v in prep.items() if k != 'installed'}
            res['installed'] = prep['installed']
            self.timings[f'client {name} install'] = prep['elapsed']
            self.progress.finish(task, 'ok', ('reused ' if prep['reused'] else 'installed ')
                                 + f'in {prep["elapsed"]} s')
        except (StageError, OSError, IndexUnreachable, PeerSourceError) as e:
            res['error'] = f'install: {e}'
            self.progress.finish(task, 'error', _first_line(e))
            for c in cells:
                res['cells'][c.id] = {'status': 'error', 'problems': [res['error']]}
                self.progress.finish(f'{task} on {c.id}', 'error', 'not installed')
            self.progress.finish(f'{task} (real peer)', 'error', 'not installed')
            return
        self.progress.stage(task, f'suite with the real {entry.peer}')
        with self._exclusive():
            res['real'] = clients.run_suite(entry, prep, os.path.join(cdir, 'real'), log)
        self.timings[f'client {name} real'] = res['real'].get('elapsed', 0)
        self.progress.finish(f'{task} (real peer)', 'error' if res['real'].get('error')
                             else 'ok', clients.side_text(res['real']))
        for c in cells:
            sub = f'{task} on {c.id}'
            v = c.libfuse.version
            if v not in self.builds:
                res['cells'][c.id] = {'status': 'error', 'problems': [
                    f'build failed: {self.prep_errors.get(f"libfuse {v}")}']}
                self.progress.finish(sub, 'error', 'no fuseshim build')
                continue
            self.progress.stage(sub, 'suite with fuseshim providing ' + entry.module)
            shim = {'site': self.builds[v]['site'], 'shims': self._client_shims(),
                    'startup': c.startup, 'libfuse_env': self.lf[v].env({})}
            with self._exclusive():
                run_ = clients.run_suite(entry, prep, os.path.join(cdir, c.slug), log,
                                         fuseshim=shim)
            verdict = clients.compare(res['real'], run_,
                                      clients.known_in(entry.known_failures, v))
            res['cells'][c.id] = {'fuseshim': run_, **verdict}
            self.timings[f'client {name} {c.id}'] = run_.get('elapsed', 0)
            self.progress.finish(sub, verdict['status'],
                                 clients.side_text(run_) + (f'; {verdict["problems"][0]}'
                                                            if verdict['problems'] else ''))
        res['elapsed'] = round(time.monotonic() - t0, 1)

    def _client_shims(self) -> str:
        return clients.write_sitecustomize(os.path.join(self.rd, 'client-shims'))

    def _exclusive(self):
        """Host suites take turns (see _stage); a no-op with --parallel-tests."""
        import contextlib
        return self._host_tests if self._host_tests is not None else contextlib.nullcontext()

    # ---------------------------------------------------------------- summary
    def packaging_versions(self, cells) -> list[str]:
        """The libfuse versions whose packaging stage this run owns: every
        version of the selection, or those a shard was dealt."""
        if not self.o.packaging:
            return []
        if self.o.packaging_versions is not None:
            return list(self.o.packaging_versions)
        return sorted({c.libfuse.version for c in cells}, key=model.row_key)

    def summary(self, cells) -> dict:
        unexpected = [c.id for c in cells if c.result.get('status') in model.UNEXPECTED]
        unexpected += [f'packaging {v}' for v, p in self.packaging.items()
                       if p.get('status') != 'pass']
        unexpected += clients.unexpected(self.clients)
        if self.leftover_mounts:
            unexpected.append('leftover mounts')
        return {'unexpected': unexpected, 'timings': self.timings,
                'leftover_mounts': self.leftover_mounts}


# -------------------------------------------------------------------- helpers

def clients_cells(cells) -> list:
    """The cells the clients stage runs in: the selected host cells of
    startup "auto" (the layers' default), one per libfuse version."""
    return [c for c in cells if not c.is_vm and c.startup == 'auto']



def cmds_has_tests(runner: Runner, cell) -> bool:
    tpath, _ = runner.tests_for(cell)
    return bool(tpath) and runner._tests_wanted(cell)


def _abspath(path, base):
    return path if os.path.isabs(path) else os.path.normpath(os.path.join(base, path))


def _abs_args(args, base):
    out = []
    for a in args:
        for opt in ('--ignore=', '--ignore-glob=', '--deselect=', '--confcutdir=',
                    '--rootdir=', '-c='):
            if a.startswith(opt):
                a = opt + _abspath(a[len(opt):], base)
                break
        else:
            if not a.startswith('-') and os.path.exists(os.path.join(base, a.split('::')[0])):
                a = _abspath(a, base)
        out.append(a)
    return out


def _read_rc(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


# pytest's closing line: "=== 1 failed, 5 passed, 2 skipped in 3.21s ===" (or
# without the rules under -q), "no tests ran in 0.01s"; a duration may read
# "in 61.20s (0:01:01)"
_PYTEST_SUMMARY = re.compile(
    r'^=*\s*((?:\d+ [a-z]+(?:, )?)+|no tests ran) in \d+(?:\.\d+)?s(?: \([\d:]+\))?\s*=*$')


def pytest_summary(output: str) -> str:
    """pytest's own result line from its output: the last line of that
    shape, not merely the last line (a program may print after pytest, e.g.
    asyncio's complaints about tasks at interpreter exit)."""
    lines = (output or '').splitlines()
    for line in reversed(lines):
        if _PYTEST_SUMMARY.match(line.strip()):
            return line.strip().strip('= ')
    tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), '')
    return f'(pytest printed no result line; its last line: {tail[:200]!r})' if tail else ''


def _tests_result(code, junit, output) -> dict:
    res = {'exit': code}
    counts = {'tests': 0, 'failures': 0, 'errors': 0, 'skipped': 0}
    failed = []
    try:
        root = ET.parse(junit).getroot()
        suites = [root] if root.tag == 'testsuite' else root.findall('testsuite')
        for s in suites:
            for k in counts:
                counts[k] += int(s.get(k, 0))
            for tc in s.iter('testcase'):
                if tc.find('failure') is not None or tc.find('error') is not None:
                    failed.append(f'{tc.get("classname")}::{tc.get("name")}')
    except (OSError, ET.ParseError):
        pass
    passed = counts['tests'] - counts['failures'] - counts['errors'] - counts['skipped']
    res.update(counts)
    res['passed'] = max(passed, 0)
    res['failed_tests'] = failed[:50]
    res['summary'] = pytest_summary(output)
    if code == 0:
        res['status'] = 'passed'
    elif code == 5:
        res['status'] = 'no-tests'
    elif code is None:
        res['status'] = 'timed-out'
    elif code == 124 or code == 137:
        res['status'] = 'timed-out'
    elif code == 4:
        res['status'] = 'usage-error'  # pytest could not start: bad arguments or paths
    elif code == 3:
        res['status'] = 'internal-error'
    else:
        res['status'] = 'failed'
    return res


def _hidden_from_others(path: str) -> str | None:
    """The first directory above ``path`` that others cannot traverse."""
    import stat
    d = os.path.realpath(path)
    while True:
        try:
            if os.path.isdir(d) and not os.stat(d).st_mode & stat.S_IXOTH:
                return d
        except OSError:
            return None
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


def _first_line(e) -> str:
    s = str(e).strip()
    return s.splitlines()[0] if s else type(e).__name__


def _fuse_mounts() -> set:
    out = set()
    try:
        with open('/proc/self/mountinfo') as f:
            for line in f:
                fields = line.split()
                sep = fields.index('-')
                if fields[sep + 1].startswith('fuse') and fields[sep + 1] != 'fusectl':
                    out.add(fields[4])
    except OSError:
        pass
    return out


def subprocess_quiet(cmd):
    import subprocess
    subprocess.run(cmd, capture_output=True, check=False)
