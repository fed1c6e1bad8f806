"""One small passthrough filesystem daemon per API, each run as its own
process by the benchmark runner: ``python -m benchmarks.daemons.<name> SRC MNT``.

Every daemon mirrors SRC the same way (an inode table mapping inode numbers
to backing paths, reads/writes on real file descriptors, entry and attribute
timeouts 0 so every stat reaches the daemon) and runs in the foreground until
the filesystem is unmounted from outside."""
