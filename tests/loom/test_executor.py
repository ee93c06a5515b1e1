"""The executor: order, pruning, partial re-execution, cache bounds, interrupts, failures."""
from __future__ import annotations

import threading
from pathlib import Path

import pytest

import tinynodes
from loom import (Executor, Interrupted, NodeError, RecordingObserver, Registry, ValidationError,
                  node)
from loom.cache import OutputCache
from tinynodes import CALLS, link


def chain_wf():
    return {"nodes": {
        "c": {"type": "t_const", "inputs": {"value": 3}},
        "a1": {"type": "t_add", "inputs": {"a": link("c", "int"), "b": 1}},
        "a2": {"type": "t_add", "inputs": {"a": link("a1", "int"), "b": 10}},
        "side": {"type": "t_add", "inputs": {"a": link("c", "int"), "b": 100}},
        "out": {"type": "t_collect", "inputs": {"value": link("a2", "int")}},
        "unused": {"type": "t_add", "inputs": {"a": link("c", "int"), "b": 5}},
    }}


def test_order_pruning_and_outputs(executor):
    obs = RecordingObserver()
    r = executor.run(chain_wf(), obs)
    assert r.executed == ["c", "a1", "a2", "out"]      # side and unused feed no output
    assert r.outputs == {"out": {"int": 14}}
    assert set(r.timings) == set(r.executed)
    names = obs.names()
    assert names[0] == "run_started" and names[-1] == "run_finished"
    assert obs.events[0][1][1] == ["c", "a1", "a2", "out"]


def test_rerun_is_fully_cached_and_one_widget_reruns_its_descendants(executor):
    executor.run(chain_wf())
    CALLS.clear()
    r = executor.run(chain_wf())
    assert r.executed == [] and r.cached == ["out"] and sum(CALLS.values()) == 0
    assert r.outputs == {"out": {"int": 14}}
    wf = chain_wf()
    wf["nodes"]["a1"]["inputs"]["b"] = 2
    obs = RecordingObserver()
    r = executor.run(wf, obs)
    assert r.executed == ["a1", "a2", "out"] and r.cached == ["c"]
    assert CALLS == {"t_add": 2, "t_collect": 1}
    assert r.outputs["out"]["int"] == 15
    assert ("node_cached", (obs.events[1][1][0], "c", {})) in obs.events


def test_ui_is_cached_too(executor):
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {}},
                    "s": {"type": "t_sink", "inputs": {"value": link("c", "int"), "label": "n"}}}}
    first = executor.run(wf)
    second = executor.run(wf)
    assert first.ui["s"] == second.ui["s"] == {"values": {"n": 1.0}, "text": ["n=1.0"]}
    assert second.executed == []


def test_lru_evicts_by_entries(registry, settings):
    tinynodes.reset()
    ex = Executor(registry, cache_size=2, settings=settings)
    ex.run(chain_wf())
    assert len(ex.cache) == 2
    CALLS.clear()
    ex.run(chain_wf())       # out is cached (recently used) → nothing runs
    assert sum(CALLS.values()) == 0
    wf = chain_wf()
    wf["nodes"]["out"]["inputs"]["value"] = link("a1", "int")  # a1 was evicted → runs again
    r = ex.run(wf)
    assert "a1" in r.executed


def test_lru_evicts_by_bytes():
    import torch
    cache = OutputCache(max_entries=100, max_bytes=10_000)
    cache.put("a", {"x": torch.zeros(1000)}, {})   # 4,000 bytes
    cache.put("b", {"x": torch.zeros(1000)}, {})
    assert "a" in cache and "b" in cache
    cache.get("a")                                  # a is now the most recent
    cache.put("c", {"x": torch.zeros(1000)}, {})
    assert "b" not in cache and "a" in cache and "c" in cache
    cache.put("huge", {"x": torch.zeros(10_000)}, {})  # bigger than the whole cache: not kept
    assert "huge" not in cache and cache.bytes <= 10_000


def test_interrupt_from_another_thread(executor):
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {}},
                    "slow": {"type": "t_slow", "inputs": {"a": link("c", "int"), "steps": 2000}},
                    "out": {"type": "t_collect", "inputs": {"value": link("slow", "int")}}}}
    obs = RecordingObserver()
    threading.Thread(target=lambda: (tinynodes.STARTED.wait(5), executor.interrupt())).start()
    with pytest.raises(Interrupted):
        executor.run(wf, obs)
    assert obs.names()[-1] == "run_interrupted" and obs.events[-1][1][1] == "slow"
    progress = [e for e in obs.events if e[0] == "node_progress"]
    assert 0 < len(progress) < 2000
    # the next run works, and reuses the cached constant
    wf["nodes"]["slow"]["inputs"]["steps"] = 3
    r = executor.run(wf)
    assert r.outputs["out"]["int"] == 4 and r.executed == ["slow", "out"]


def test_failing_node_fails_the_run_and_the_next_run_reuses_the_cache(executor):
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {"value": 7}},
                    "a": {"type": "t_add", "inputs": {"a": link("c", "int")}},
                    "f": {"type": "t_fail", "inputs": {"a": link("a", "int")}},
                    "out": {"type": "t_collect", "inputs": {"value": link("f", "int")}}}}
    obs = RecordingObserver()
    with pytest.raises(NodeError) as err:
        executor.run(wf, obs)
    assert err.value.node == "f" and "boom with 7" in err.value.message
    assert err.value.error_type == "RuntimeError"
    assert [e[0] for e in obs.events[-2:]] == ["node_failed", "run_failed"]
    CALLS.clear()
    wf["nodes"]["out"]["inputs"]["value"] = link("a", "int")
    r = executor.run(wf)
    assert r.cached == ["a"] and r.executed == ["out"] and CALLS == {"t_collect": 1}


def test_validation_failure_raises_with_every_problem(executor):
    with pytest.raises(ValidationError) as err:
        executor.run({"nodes": {"x": {"type": "nope"}, "c": {"type": "t_const", "inputs": {"value": "a"}}}})
    assert {p.code for p in err.value.problems} == {"unknown_type", "no_output"}


def test_cache_false_always_runs_and_reruns_descendants(executor):
    wf = {"nodes": {"t": {"type": "t_clock", "inputs": {}},
                    "s": {"type": "t_sink", "inputs": {"value": link("t", "float")}}}}
    executor.run(wf)
    r = executor.run(wf)
    assert r.executed == ["t", "s"] and CALLS["t_clock"] == 2


def test_fingerprint_node_reruns_when_its_file_changes(tmp_path, settings):
    state = tmp_path / "data.txt"
    state.write_text("1")
    runs = []

    @node(fingerprint=lambda path: f"{path}:{Path(path).stat().st_mtime_ns}:{Path(path).read_text()}")
    def fp_read(path: str) -> int:
        """Read an int from a file."""
        runs.append(path)
        return int(Path(path).read_text())

    @node(output=True)
    def fp_out(v: int) -> int:
        """Output."""
        return v

    reg = Registry()
    reg.add(fp_read, fp_out)
    ex = Executor(reg, settings=settings)
    wf = {"nodes": {"r": {"type": "fp_read", "inputs": {"path": str(state)}},
                    "o": {"type": "fp_out", "inputs": {"v": link("r", "int")}}}}
    assert ex.run(wf).outputs["o"]["int"] == 1
    assert ex.run(wf).executed == [] and len(runs) == 1
    state.write_text("22")
    r = ex.run(wf)
    assert r.outputs["o"]["int"] == 22 and r.executed == ["r", "o"]


def test_migrations_upgrade_old_nodes(settings):
    @node(id="mig_node", version=3, output=True,
          migrations={1: lambda i: {**{k: v for k, v in i.items() if k != "amount"}, "count": i.get("amount", 0)},
                      2: lambda i: {**i, "count": i["count"] * 10}})
    def mig_node(count: int = 0) -> int:
        """Version 3 renamed amount→count (v2) and changed its unit (v3)."""
        return count

    reg = Registry()
    reg.add(mig_node)
    wf = {"nodes": {"m": {"type": "mig_node", "version": 1, "inputs": {"amount": 4}}}}
    up = reg.upgrade(wf)
    assert up.nodes["m"] == {"type": "mig_node", "version": 3, "inputs": {"count": 40}}
    assert Executor(reg, settings=settings).run(wf).outputs["m"]["int"] == 40


def test_widget_fed_by_a_link_is_range_checked_at_run_time(executor):
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {"value": 500}},
                    "d": {"type": "t_divmod", "inputs": {"a": 5, "b": link("c", "int")}},
                    "o": {"type": "t_collect", "inputs": {"value": link("d", "quotient")}}}}
    with pytest.raises(NodeError) as err:
        executor.run(wf)
    assert err.value.node == "d" and "'b'" in err.value.message and "maximum 100" in err.value.message


def test_deep_chain_has_no_recursion_limit(executor):
    nodes = {"n0": {"type": "t_const", "inputs": {"value": 0}}}
    for i in range(1, 3000):
        nodes[f"n{i}"] = {"type": "t_add", "inputs": {"a": link(f"n{i-1}", "int"), "b": 0}}
    nodes["o"] = {"type": "t_collect", "inputs": {"value": link("n2999", "int")}}
    assert executor.run({"nodes": nodes}).outputs["o"]["int"] == 0
