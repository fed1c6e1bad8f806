"""Live progress in the terminal: a bar, the running tasks with their stage
and elapsed time.  On a TTY the status block is redrawn in place; otherwise
(CI logs) one line is printed per stage start and end."""
from __future__ import annotations

import os
import sys
import threading
import time


def fmt_secs(s: float) -> str:
    s = int(s)
    return f'{s // 60}:{s % 60:02d}' if s >= 60 else f'{s}s'


class Progress:
    def __init__(self, total: int, stream=None, tty: bool | None = None, quiet=False):
        self.total = max(total, 1)
        self.done = 0
        self.unexpected = 0
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.quiet = quiet
        self.t0 = time.monotonic()
        self.active: dict[str, tuple[str, float]] = {}   # task -> (stage, since)
        self.lock = threading.Lock()
        self._lines = 0
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        if self.tty and not self.quiet:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name='matrix-progress')
            self._thread.start()
        return self

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(2)
        with self.lock:
            self._clear()

    def stage(self, task: str, stage: str):
        with self.lock:
            self.active[task] = (stage, time.monotonic())
            if not self.tty and not self.quiet:
                self._say(f'[{fmt_secs(time.monotonic() - self.t0):>6}] {task}: {stage} ...')

    def finish(self, task: str, status: str, detail: str = '', count=True):
        with self.lock:
            stage, since = self.active.pop(task, ('', time.monotonic()))
            if count:
                self.done += 1
            if status in ('fail', 'error', 'xpass'):
                self.unexpected += 1
            line = (f'[{fmt_secs(time.monotonic() - self.t0):>6}] {self._bar(20)} '
                    f'{task}: {status.upper()}' + (f' - {detail}' if detail else '')
                    + f' ({fmt_secs(time.monotonic() - since)})')
            if not self.quiet:
                self._clear()
                self._say(line)
                if self.tty:
                    self._draw()

    def note(self, text: str):
        with self.lock:
            if not self.quiet:
                self._clear()
                self._say(text)
                if self.tty:
                    self._draw()

    # ---------------------------------------------------------------- drawing
    def _bar(self, width):
        filled = int(width * self.done / self.total)
        return f'[{"#" * filled}{"." * (width - filled)}] {self.done}/{self.total}'

    def _say(self, text):
        self.stream.write(text + '\n')
        self.stream.flush()

    def _clear(self):
        if self.tty and self._lines:
            self.stream.write('\x1b[F\x1b[2K' * self._lines)
            self._lines = 0

    def _draw(self):
        try:
            width = os.get_terminal_size(self.stream.fileno()).columns
        except (OSError, ValueError):
            width = 100
        if width < 40:  # unknown (0) or absurdly narrow: do not cut
            width = 100
        now = time.monotonic()
        lines = [f'{self._bar(30)}  elapsed {fmt_secs(now - self.t0)}'
                 + (f'  unexpected: {self.unexpected}' if self.unexpected else '')]
        for task, (stage, since) in sorted(self.active.items(), key=lambda kv: kv[1][1]):
            lines.append(f'  {task:<28} {stage:<28} {fmt_secs(now - since):>6}')
        for ln in lines:
            self.stream.write(ln[:width - 1] + '\n')
        self.stream.flush()
        self._lines = len(lines)

    def _loop(self):
        while not self._stop.wait(0.5):
            with self.lock:
                self._clear()
                self._draw()
