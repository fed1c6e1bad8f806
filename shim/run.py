"""``python -m fuseshim.run --provide pyfuse3[,mfusepy,fusepy] -- COMMAND [ARG...]``

Runs an unchanged program with the peers' module names resolving to
fuseshim's layers (see ``_fuseshim_provide``): sets ``$FUSESHIM_PROVIDES``
for the command and its children, then executes it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

import _fuseshim_provide as provide


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog='python -m fuseshim.run', description=__doc__.split('\n\n')[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--provide', required=True, metavar='NAMES',
                   help='comma-separated: ' + ', '.join(sorted(provide.PROVIDES)) + ', or all')
    p.add_argument('command', nargs=argparse.REMAINDER, help='-- COMMAND [ARG...]')
    opts = p.parse_args(argv)
    cmd = opts.command[1:] if opts.command[:1] == ['--'] else opts.command
    if not cmd:
        p.error('no command given (put it after --)')
    try:
        provide.parse(opts.provide)
    except ValueError as e:
        p.error(str(e))
    if shutil.which(cmd[0]) is None:
        p.error(f'command not found: {cmd[0]}')
    os.environ[provide.ENV] = opts.provide
    os.execvp(cmd[0], cmd)
    return 127      # not reached


if __name__ == '__main__':
    sys.exit(main())
