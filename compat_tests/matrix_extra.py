"""Test modules that use the matrix runner's code (its own tests, the
clients, the benchmarks' builds of the C peers) need the ``matrix`` extra.

``make setup`` installs it (``pip install .[test,matrix]``), so CI never skips
them; the matrix's packaging stage runs the suite on the bare wheel (plus
pytest) to prove the wheel alone works, and there these modules skip, saying
why, instead of failing the whole collection."""
import pytest

# import name -> distribution, as pyproject.toml's matrix extra lists them
MODULES = {'yaml': 'PyYAML', 'pydantic': 'pydantic', 'debian': 'python-debian',
           'jinja2': 'Jinja2'}


def require() -> None:
    for module, dist in MODULES.items():
        pytest.importorskip(module, reason=f'{dist} (the matrix extra: pip install '
                                           f'fuseshim[matrix]; make setup installs it)')
