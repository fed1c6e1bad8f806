"""fuseshim-matrix / python -m fuseshim.matrix: run the migration test matrix.

Examples::

    fuseshim-matrix --list                      # cells and what each expects
    fuseshim-matrix --preset ci                 # the CI slice
    fuseshim-matrix --cells 'kernel=host' --jobs 2
    fuseshim-matrix --cells '3.18*/7.2' -k auto
    fuseshim-matrix --preset host --tests ../myfs/tests   # another project's suite
    fuseshim-matrix --preset clients            # real projects: real peer vs fuseshim
    fuseshim-matrix --cells 3.14.0/host/auto --clients borg1.4 --no-tests
    fuseshim-matrix --preset ci --list --shards 3 --format github   # CI fan-out
    fuseshim-matrix --preset ci --shard 2/3 --report-dir shard-2    # one CI job
    fuseshim-matrix merge shard-1 shard-2 shard-3 --report-dir all  # one report
    fuseshim-matrix compare all single-run        # did both decide the same?
"""
from __future__ import annotations

import sys


def main(argv=None) -> int:
    """The entry point: the subcommands and --install-prereqs first, since
    they must not need what the run needs (--install-prereqs installs it)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['merge']:
        from . import merge
        return merge.main(argv[1:])
    if argv[:1] == ['compare']:
        from . import compare
        return compare.main(argv[1:])
    if '--install-prereqs' in argv:
        from . import prereqs
        return prereqs.install()
    from . import cli
    return cli.run(argv)


if __name__ == '__main__':
    sys.exit(main())
