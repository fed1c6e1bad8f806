"""pytest plugin (pyfuse3's idea): a test fails if fuseshim or libfuse logs
an ERROR it did not expect.  Mark tests that provoke errors on purpose with
@pytest.mark.expected_errors."""
from __future__ import annotations

import logging

import pytest


class _Collector(logging.Handler):
    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture(autouse=True)
def fail_on_unexpected_log_errors(request):
    collector = _Collector()
    logger = logging.getLogger('fuseshim')
    logger.addHandler(collector)
    try:
        yield
    finally:
        logger.removeHandler(collector)
    if collector.records and request.node.get_closest_marker('expected_errors') is None:
        lines = '\n'.join(f'{r.levelname} {r.getMessage()}' for r in collector.records)
        pytest.fail(f'unexpected ERROR log lines from fuseshim:\n{lines}', pytrace=False)
