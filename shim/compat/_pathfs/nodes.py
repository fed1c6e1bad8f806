"""The node table of the path layer: a port of libfuse's high-level bookkeeping
(lib/fuse.c: find_node, forget_node, unlink_node, rename_node, exchange_node,
try_get_path).

The kernel speaks in inode numbers; a path-based filesystem in paths.  Each
node the kernel knows has an id (the inode number it was given), a name in a
parent node, and a lookup count (LOOKUP +1, FORGET -n): a node goes once
nothing refers to it.  Names move on rename and go on unlink; a node may
also be marked hidden (an open file renamed to ``.fuse_hidden...``; see
operations.PathOperations._hide).
"""
import errno
import logging
import threading

import fuseshim as _fs

log = logging.getLogger('fuse')

FUSE_ROOT_ID = 1
FUSE_UNKNOWN_INO = 0xffffffff


class Stale(Exception):
    """A node on the way to the root has no name any more (ESTALE)."""


class Node:
    __slots__ = ('id', 'generation', 'parent', 'name', 'nlookup', 'children',
                 'open_count', 'is_hidden', 'path')

    def __init__(self, nid, generation=0):
        self.id = nid
        self.generation = generation
        self.parent = None
        self.name = None
        self.nlookup = 0
        self.children = 0
        self.open_count = 0
        self.is_hidden = False
        self.path = None        # (table version, path) once walked; see NodeTable.path


class NodeTable:
    """libfuse's node bookkeeping (lib/fuse.c: find_node, forget_node,
    unlink_node, rename_node, exchange_node, try_get_path)."""

    def __init__(self, threaded=True):
        self.lock = threading.RLock()
        if not threaded:
            # A single worker thread makes every call here: the lock guards
            # nothing, and find() runs on every LOOKUP.
            self.find = self._find
        root = Node(FUSE_ROOT_ID)
        root.nlookup = 1
        self.by_id = {FUSE_ROOT_ID: root}
        self.by_name = {}
        self.ctr = 0
        self.generation = 0
        self.hidectr = 0
        self.remember = False
        self.high_ids = False    # use_ino: generated ids stay clear of the fs's st_ino
        self.version = 0         # bumped whenever a name goes: cached paths are then stale

    def next_id(self):
        base = 1 << 48 if self.high_ids else 0
        while True:
            self.ctr = (self.ctr + 1) & 0xffffffff
            if not self.ctr:
                self.generation += 1
            nid = base + self.ctr
            if self.ctr and nid != FUSE_UNKNOWN_INO and nid not in self.by_id and nid != FUSE_ROOT_ID:
                return nid

    def get(self, nid):
        node = self.by_id.get(nid)
        if node is None:
            raise _fs.FUSEError(errno.ESTALE)
        return node

    def lookup(self, parent_id, name):
        return self.by_name.get((parent_id, name))

    def _hash(self, node, parent, name):
        self.by_name[(parent.id, name)] = node
        node.parent = parent
        node.name = name
        parent.children += 1

    def _unhash(self, node):
        if node.name is None or node.parent is None:
            return
        self.version += 1       # this node's path, and its descendants', change
        parent = node.parent
        self.by_name.pop((parent.id, node.name), None)
        node.name = None
        node.parent = None
        parent.children -= 1
        self._maybe_delete(parent)

    def _maybe_delete(self, node):
        if node.id == FUSE_ROOT_ID or node.nlookup > 0 or node.children > 0:
            return
        self._unhash(node)
        if self.by_id.get(node.id) is node:
            del self.by_id[node.id]

    def find(self, parent_id, name, want_id=None):
        """The node for ``name`` in ``parent_id`` (or ``parent_id`` itself when
        name is None), created if needed; its lookup count goes up by one."""
        with self.lock:
            return self._find(parent_id, name, want_id)

    def _find(self, parent_id, name, want_id=None):
        if name is None:
            node = self.get(parent_id)
        else:
            node = self.by_name.get((parent_id, name))
            if node is not None and want_id is not None and node.id != want_id:
                self._unhash(node)      # the name refers to another inode now
                node = None
            if node is None and want_id is not None:
                node = self.by_id.get(want_id)
                if node is not None:    # a hard link, or renamed behind our back
                    parent = self.get(parent_id)
                    self._unhash(node)
                    self._hash(node, parent, name)
            if node is None:
                parent = self.get(parent_id)
                nid = want_id if want_id is not None else self.next_id()
                node = Node(nid, self.generation)
                if self.remember:
                    node.nlookup += 1
                self.by_id[nid] = node
                self._hash(node, parent, name)
        node.nlookup += 1
        return node

    def forget(self, nid, nlookup):
        if nid == FUSE_ROOT_ID:
            return
        with self.lock:
            node = self.by_id.get(nid)
            if node is None:
                return
            node.nlookup = max(0, node.nlookup - nlookup)
            if not node.nlookup:
                self._maybe_delete(node)

    def remove(self, parent_id, name):
        with self.lock:
            node = self.by_name.get((parent_id, name))
            if node is not None:
                if self.remember and node.nlookup > 1:
                    node.nlookup -= 1
                self._unhash(node)
                self._maybe_delete(node)

    def rename(self, olddir, oldname, newdir, newname, hide=False):
        with self.lock:
            node = self.by_name.get((olddir, oldname))
            newnode = self.by_name.get((newdir, newname))
            if node is None:
                return
            if newnode is not None:
                if hide:
                    log.error('fuse: hidden file got created during hiding')
                    raise _fs.FUSEError(errno.EBUSY)
                self._unhash(newnode)
                self._maybe_delete(newnode)
            parent = self.get(newdir)
            parent.children += 1            # keep both parents alive while moving
            self._unhash(node)
            parent.children -= 1
            self._hash(node, parent, newname)
            if hide:
                node.is_hidden = True

    def exchange(self, olddir, oldname, newdir, newname):
        with self.lock:
            old = self.by_name.get((olddir, oldname))
            new = self.by_name.get((newdir, newname))
            p_old, p_new = self.get(olddir), self.get(newdir)
            p_old.children += 1
            p_new.children += 1
            if old is not None:
                self._unhash(old)
            if new is not None:
                self._unhash(new)
            if old is not None:
                self._hash(old, p_new, newname)
            if new is not None:
                self._hash(new, p_old, oldname)
            p_old.children -= 1
            p_new.children -= 1

    def path(self, nid, name=None):
        """The path (bytes) of node ``nid`` (plus ``name``); raises Stale.

        Every request needs a path, and walking to the root in Python costs
        about as much as a filesystem's whole getattr, so each node keeps the
        path last walked.  Only _unhash changes existing paths (renames,
        unlinks and forgets all go through it) and it bumps ``version``, which
        invalidates every cached path at once.  Reading a cached path takes no
        lock: a rename racing with it gives the path from just before the
        rename, as when the walk had finished just before it."""
        node = self.by_id.get(nid)
        cached = node.path if node is not None else None
        if cached is not None and cached[0] == self.version:
            base = cached[1]
        else:
            base = self._walk(nid)
        if name is None:
            return base
        return base + b'/' + name if nid != FUSE_ROOT_ID else b'/' + name

    def _walk(self, nid):
        with self.lock:
            node = self.get(nid)
            version = self.version
            parts = []
            n = node
            while n.id != FUSE_ROOT_ID:
                if n.name is None or n.parent is None:
                    raise Stale()
                parts.append(n.name)
                n = n.parent
            path = b'/' + b'/'.join(reversed(parts))
            node.path = (version, path)
            return path
