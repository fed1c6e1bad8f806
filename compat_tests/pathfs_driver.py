"""Drive the path layer (fuseshim.compat._pathfs) in process, without a
mount: an object with the attributes of a fusepy/mfusepy ``FUSE`` that
``PathOperations`` reads, calling ``cls``'s bound flavour functions.  Used
by the flavour tests and by ``python -m benchmarks.layer_split``."""
from __future__ import annotations

import types

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
        # bound methods, as on a FUSE instance: a lambda around each would
        # add a call per request to what benchmarks.layer_split measures
        for name in ('_dispatcher', '_by_name', '_call_method', '_dispatch', '_rename'):
            setattr(self, name, types.MethodType(getattr(cls, name), self))
        self._status_of = cls._status_of
