"""Drive the path layer (fuseshim.compat._pathfs) in process, without a
mount: an object with the attributes of a fusepy/mfusepy ``FUSE`` that
``PathOperations`` reads, calling ``cls``'s bound flavour functions.  Used
by the flavour tests and by ``python -m benchmarks.layer_split``."""
from __future__ import annotations

from fuseshim.compat import fusepy


class PathLayerFront:
    """The attributes of FUSE that PathOperations reads."""

    def __init__(self, cls, ops):
        self.operations = ops
        self.conf = fusepy.fuse_config()
        self.encoding, self.errors = 'utf-8', 'strict'
        self.use_ns = True
        self.raw_fi = False
        self._flavour = cls._flavour
        self._registered = cls._find_registered(self)
        self._dispatcher = lambda: cls._dispatcher(self)
        self._call_method = lambda name, *args: cls._call_method(self, name, *args)
        self._dispatch = lambda name, *args: cls._dispatch(self, name, *args)
        self._rename = lambda old, new, flags: cls._rename(self, old, new, flags)
        self._status_of = cls._status_of
