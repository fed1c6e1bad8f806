"""The path-based layer behind fuseshim.compat.fusepy and .mfusepy: libfuse's
high-level library (lib/fuse.c), done in Python over fuseshim's low-level
binding.  One module per part:

- ``nodes``      the node table: inode <-> path, lookup counts, forget
- ``handles``    open files and directories (our handle numbers)
- ``operations`` PathOperations: each low-level request as calls of the
                 filesystem's path-based operations
- ``frontend``   FUSE(): options, signals, daemonising, mount and serve
- ``flavour``    Flavour: everything in which fusepy and mfusepy differ

The peers' public surfaces are fusepy.py and mfusepy.py, each with its Flavour.
"""
