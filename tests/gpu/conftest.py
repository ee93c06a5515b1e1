"""The GPU suite: every test here is marked ``gpu`` and runs only where CUDA is present.

Without CUDA the tests are skipped and the run's summary says so in one line (CI has no GPU;
bench/gpu.py and docs/performance.md say how to run them on one).
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

HAS_CUDA = torch.cuda.is_available()
REASON = "no CUDA GPU on this machine: the gpu suite (tests/gpu) runs on a GPU only"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.gpu)
            if not HAS_CUDA:
                item.add_marker(pytest.mark.skip(reason=REASON))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ANN001
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if REASON in str(r.longrepr)]
    if skipped:
        terminalreporter.write_line(f"gpu suite: {len(skipped)} test(s) skipped ({REASON})")


@pytest.fixture
def cuda() -> torch.device:
    """The CUDA device (tests here never run without one)."""
    return torch.device("cuda")
