"""Time of ``import X`` in a fresh interpreter (median of several), and the
biggest contributors from ``python -X importtime``."""
from __future__ import annotations

import re
import statistics
import subprocess
import sys

SNIPPET = ('import time; t = time.perf_counter(); import {mod}; '
           'print((time.perf_counter() - t) * 1e3)')


def time_import(module: str, env: dict, runs: int, cwd=None) -> dict:
    samples = []
    for _ in range(runs):
        p = subprocess.run([sys.executable, '-c', SNIPPET.format(mod=module)], env=env,
                           capture_output=True, text=True, timeout=120, cwd=cwd)
        if p.returncode != 0:
            return {'error': (p.stderr.strip().splitlines() or ['?'])[-1]}
        samples.append(float(p.stdout.strip().splitlines()[-1]))
    return {'median_ms': statistics.median(samples), 'min_ms': min(samples),
            'max_ms': max(samples), 'samples_ms': samples}


def top_imports(module: str, env: dict, n=12, cwd=None) -> list:
    """[(cumulative ms, module)] of the slowest imports under ``module``
    (each counted with what it imports itself)."""
    p = subprocess.run([sys.executable, '-X', 'importtime', '-c', f'import {module}'], env=env,
                       capture_output=True, text=True, timeout=120, cwd=cwd)
    rows = []
    for line in p.stderr.splitlines():
        m = re.match(r'import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)', line)
        if m:
            rows.append((int(m.group(2)) / 1e3, len(m.group(3)), m.group(4)))
    # only imports one or two levels below the top (the interesting direct costs)
    top = [(round(ms, 2), name) for ms, depth, name in rows if depth <= 3]
    return sorted(top, reverse=True)[:n]
