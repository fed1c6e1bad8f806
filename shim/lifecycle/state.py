"""The one state of a session and the only way to change it.

    NEW ──► MOUNTED ──► SERVING ──► ENDED
     │         │  ▲        │          │
     │         │  └────────┤          │        (an outside driver returned)
     ▼         ▼           ▼          ▼
    STOPPING ◄─────────────┴──────────┘ ──► DESTROYED

NEW        the libfuse session exists; nothing is mounted (on the sync path
           the INIT reader may already wait on the armed /dev/fuse fd)
MOUNTED    the kernel attached the connection (INIT answered on the sync
           path, awaited on the classic one); nobody serves requests yet --
           with serve="external" also while no outside driver runs
SERVING    readers run: worker threads, the event loop's reader, or an
           outside driver
ENDED      the connection ended without close(): unmounted from outside,
           aborted, or a handler raised KeyboardInterrupt/SystemExit (the
           readers saw it and return)
STOPPING   close() (or a failed startup) tears the session down
DESTROYED  the destroy handler ran and /dev/fuse is closed (final)

Every change goes through Lifecycle.to(), which checks the table below; an
illegal one is a bug in fuseshim and raises IllegalTransition.  libfuse keeps
the same life cycle implicitly (fuse_session_new, _mount, _loop, _exit,
_unmount, _destroy); fuseshim's startup paths and serving modes need it
spelled out, because different threads drive it.
"""
from __future__ import annotations

import enum
import logging
import threading

log = logging.getLogger('fuseshim')


class SessionState(enum.Enum):
    NEW = 'new'
    MOUNTED = 'mounted'
    SERVING = 'serving'
    ENDED = 'ended'
    STOPPING = 'stopping'
    DESTROYED = 'destroyed'


S = SessionState
ALLOWED = {
    S.NEW: {S.MOUNTED, S.STOPPING},
    S.MOUNTED: {S.SERVING, S.STOPPING},
    # SERVING -> MOUNTED: an outside driver returned while the kernel still serves
    S.SERVING: {S.MOUNTED, S.ENDED, S.STOPPING},
    # ENDED -> SERVING: an outside driver starts again (its first read sees the end)
    S.ENDED: {S.SERVING, S.STOPPING},
    S.STOPPING: {S.DESTROYED},
    S.DESTROYED: set(),
}
# the kernel mount exists (or existed until unmounted from outside): close() unmounts
MOUNTED_STATES = frozenset({S.MOUNTED, S.SERVING, S.ENDED})


class IllegalTransition(RuntimeError):
    """A state change the life cycle does not allow: a bug in fuseshim."""


class ServedEvent(threading.Event):
    """Set while no event-loop reader (the loop's add_reader, or an outside
    driver) runs; close() waits for it.  An outside driver reports through
    it as docs/api.md says -- clear() when it starts reading, set() when it
    stops -- and both are transitions of the session's state."""

    def __init__(self, lifecycle):
        super().__init__()
        self._lifecycle = lifecycle

    def clear(self):
        self._lifecycle.reader_started()

    def set(self):
        self._lifecycle.readers_stopped()


class Lifecycle:
    """Holds a session's SessionState, the record of how it got there, and
    the ``served`` event derived from it.  Threads of the startup, of
    serving and of close() all report here."""

    def __init__(self):
        self._lock = threading.Lock()
        self._state = S.NEW
        self.history = [S.NEW]
        self.served = ServedEvent(self)
        threading.Event.set(self.served)

    @property
    def state(self) -> SessionState:
        return self._state

    def to(self, new: SessionState) -> SessionState:
        """Change the state; -> the previous one.  Raises IllegalTransition
        (and logs it) for a change the table does not allow."""
        with self._lock:
            return self._to(new)

    def _to(self, new):
        old = self._state
        if new not in ALLOWED[old]:
            log.error('fuseshim: illegal session state change %s -> %s (history: %s)',
                      old.name, new.name, ' -> '.join(s.name for s in self.history))
            raise IllegalTransition(f'session state {old.name} cannot become {new.name}')
        self._state = new
        self.history.append(new)
        if new is S.SERVING:
            threading.Event.clear(self.served)
        return old

    def begin_stopping(self) -> SessionState:
        """Enter STOPPING (close(), a failed startup, Session.destroy());
        -> the previous state.  Already STOPPING: nothing changes."""
        with self._lock:
            if self._state is S.STOPPING:
                return S.STOPPING
            return self._to(S.STOPPING)

    def reader_started(self) -> None:
        """An outside driver starts reading (serve="external")."""
        with self._lock:
            self._to(S.SERVING)

    def connection_ended(self) -> None:
        """A reader saw the end: the kernel ended the connection (unmounted,
        aborted) or a fatal handler exception made the session exit.
        SERVING -> ENDED; in any other state nothing changes (while
        STOPPING, close() caused it)."""
        with self._lock:
            if self._state is S.SERVING:
                self._to(S.ENDED)

    def readers_stopped(self, ended: bool = False) -> None:
        """The readers returned: ``ended`` as connection_ended() said, or
        (an outside driver asked to stop, the mount lives on) SERVING ->
        MOUNTED.  ``served`` is set in every state: close() waits for it."""
        with self._lock:
            if self._state is S.SERVING:
                self._to(S.ENDED if ended else S.MOUNTED)
            threading.Event.set(self.served)

    def __repr__(self):
        return f'<Lifecycle {self._state.name}>'
