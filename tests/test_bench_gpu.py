"""bench/gpu.py runs end to end on the CPU with tiny modules (its dry run): Loom equals diffusers' SD 1.5, SDXL and Flux pipelines there."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def gpu_bench():
    sys.path.insert(0, str(BENCH))
    try:
        import gpu
        yield gpu
    finally:
        sys.path.remove(str(BENCH))


def test_gpu_bench_dry_run_on_cpu(gpu_bench, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gpu.json"
    md = tmp_path / "gpu.md"
    assert gpu_bench.main(["--tiny", "--device", "cpu", "--batches", "1,2", "--warmup", "0",
                           "--json", str(out), "--markdown", str(md)]) == 0
    data = json.loads(out.read_text())
    rows = {(r["model"], r["batch"]): r for r in data["rows"]}
    assert set(rows) == {("sd1", 1), ("sd1", 2), ("sdxl", 1), ("flux", 1)}
    for r in rows.values():
        assert r["match"] < 1e-5, r  # the same modules through Loom's graph and diffusers' pipeline
        assert r["loom_s"] > 0 and r["diffusers_s"] > 0
    assert data["checks"]["offload"]["completed"] is True
    assert data["checks"]["determinism"]["max_abs"] == 0.0  # CPU vs CPU in the dry run
    table = md.read_text()
    assert "| sdxl | fp32 | 1 | 64² | plain |" in table and "| flux | fp32 | 1 | 64² | plain |" in table
    assert "| model | dtype | batch |" in capsys.readouterr().out
