"""Engine hardening: failures that must stay a node's failure, the byte-bounded cache, seeds, CLI checks."""
from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image as PILImage

import tinynodes
from loom import (Executor, MigrationError, NodeError, RecordingObserver, Registry, Settings,
                  UserInputError, node, validate)
from loom.cache import OutputCache, node_key
from loom.types import Image, Seed
from tinynodes import CALLS, link


# --- nodes used only here -------------------------------------------------------------------
def _broken_fingerprint(a: int) -> str:
    raise ValueError(f"cannot fingerprint {a}")


@node(id="eh_fp_fail", fingerprint=_broken_fingerprint)
def eh_fp_fail(a: int) -> int:
    """A node whose fingerprint function raises."""
    return a


def _exiting_fingerprint(a: int) -> str:
    raise SystemExit(4)


@node(id="eh_fp_exit", fingerprint=_exiting_fingerprint)
def eh_fp_exit(a: int = 1) -> int:
    """A node whose fingerprint function exits."""
    return a


def _bad_migration(inputs: dict) -> dict:
    raise KeyError("old_name")


@node(id="eh_migrated", version=2, output=True, migrations={1: _bad_migration})
def eh_migrated(value: int = 0) -> int:
    """Version 2; migrating from version 1 raises."""
    return value


@node(id="eh_migrated_none", version=2, output=True, migrations={1: lambda inputs: None})
def eh_migrated_none(value: int = 0) -> int:
    """Version 2; the migration from version 1 returns None."""
    return value


RAISE: dict[str, BaseException] = {}


@node(id="eh_raise", cache=False)
def eh_raise(a: int) -> int:
    """Raises whatever RAISE["exc"] holds."""
    raise RAISE["exc"]


PROBE: dict[str, object] = {}


@node(id="eh_probe", output=True, cache=False)
def eh_probe(image: Image) -> None:
    """Records whether the cache still holds PROBE["key"] while the run goes on."""
    cache = PROBE["executor"].cache  # type: ignore[attr-defined]
    PROBE["held"] = PROBE["key"] in cache
    PROBE["bytes"] = cache.bytes


@node(id="eh_noise", category="test")
def eh_noise(seed: Seed = 7, width: int = 8) -> Image:
    """A 1×width grey image drawn from ``seed``."""
    CALLS["eh_noise"] += 1
    return torch.rand(1, 1, 1, width, generator=torch.Generator().manual_seed(int(seed)))


@pytest.fixture
def reg() -> Registry:
    r = Registry()
    r.add_module("tinynodes")
    r.add_module(__name__)
    return r


@pytest.fixture
def ex(reg: Registry, settings: Settings) -> Executor:
    tinynodes.reset()
    return Executor(reg, settings=settings)


def _failed_events(obs: RecordingObserver) -> list[str]:
    return [name for name in obs.names() if name in ("node_failed", "run_failed")]


# --- 1. fingerprints and migrations ---------------------------------------------------------
@pytest.mark.parametrize("linked", [True, False])
def test_failing_fingerprint_is_the_nodes_failure(ex: Executor, linked: bool) -> None:
    a = link("c", "int") if linked else 3
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {"value": 2}},
                    "f": {"type": "eh_fp_fail", "inputs": {"a": a}},
                    "o": {"type": "t_collect", "inputs": {"value": link("f", "int")}}}}
    obs = RecordingObserver()
    with pytest.raises(NodeError) as err:
        ex.run(wf, obs)
    assert err.value.node == "f" and err.value.error_type == "ValueError"
    assert "cannot fingerprint" in err.value.message
    assert _failed_events(obs) == ["node_failed", "run_failed"]
    assert obs.events[-1][1][1] == "f"
    wf["nodes"]["o"]["inputs"]["value"] = link("c", "int")  # the executor is still usable
    assert ex.run(wf).outputs["o"]["int"] == 2


def test_a_fingerprint_that_exits_is_the_nodes_failure(ex: Executor) -> None:
    wf = {"nodes": {"f": {"type": "eh_fp_exit", "inputs": {}},
                    "o": {"type": "t_collect", "inputs": {"value": link("f", "int")}}}}
    obs = RecordingObserver()
    with pytest.raises(NodeError) as err:
        ex.run(wf, obs)
    assert err.value.node == "f" and err.value.error_type == "SystemExit"
    assert _failed_events(obs) == ["node_failed", "run_failed"]


@pytest.mark.parametrize("node_type,error_type", [("eh_migrated", "KeyError"),
                                                  ("eh_migrated_none", "MigrationError")])
def test_failing_migration_is_the_nodes_failure(ex: Executor, reg: Registry, node_type: str,
                                                error_type: str) -> None:
    wf = {"nodes": {"m": {"type": node_type, "version": 1, "inputs": {"value": 1}}}}
    obs = RecordingObserver()
    with pytest.raises(NodeError) as err:
        ex.run(wf, obs)
    assert err.value.node == "m" and err.value.node_type == node_type
    assert err.value.error_type == error_type and "migrating from version 1" in err.value.message
    assert _failed_events(obs) == ["node_failed", "run_failed"]
    assert obs.events[-1][1][1] == "m"
    with pytest.raises(MigrationError):
        reg.upgrade(wf)
    problems = validate(wf, reg)
    assert [(p.node, p.code) for p in problems] == [("m", "bad_node")]


# --- 2. BaseException from a node -----------------------------------------------------------
@pytest.mark.parametrize("exc", [SystemExit(3), KeyboardInterrupt(), GeneratorExit(), BaseException("odd")])
def test_base_exceptions_from_a_node_fail_the_run_naming_it(ex: Executor, exc: BaseException) -> None:
    RAISE["exc"] = exc
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {}},
                    "r": {"type": "eh_raise", "inputs": {"a": link("c", "int")}},
                    "o": {"type": "t_collect", "inputs": {"value": link("r", "int")}}}}
    obs = RecordingObserver()
    with pytest.raises(NodeError) as err:
        ex.run(wf, obs)
    assert err.value.node == "r" and err.value.error_type == type(exc).__name__
    assert _failed_events(obs) == ["node_failed", "run_failed"]
    assert ex.current_run is None
    wf["nodes"]["o"]["inputs"]["value"] = link("c", "int")
    assert ex.run(wf).outputs["o"]["int"] == 1  # the lock was released


# --- 5. the output cache is bounded by bytes ------------------------------------------------
def _chain(n: int, middle_b: int = 0) -> dict:
    nodes = {"n0": {"type": "t_const", "inputs": {"value": 1}}}
    for i in range(1, n):
        nodes[f"n{i}"] = {"type": "t_add", "inputs": {"a": link(f"n{i - 1}", "int"),
                                                      "b": middle_b if i == n // 2 else 0}}
    nodes["out"] = {"type": "t_collect", "inputs": {"value": link(f"n{n - 1}", "int")}}
    return {"nodes": nodes}


def test_3000_node_chain_is_fully_cached_and_one_change_reruns_only_descendants(ex: Executor) -> None:
    n = 3000
    first = ex.run(_chain(n))
    assert len(first.executed) == n + 1 and len(ex.cache) == n + 1
    CALLS.clear()
    again = ex.run(_chain(n))
    assert again.executed == [] and sum(CALLS.values()) == 0
    changed = ex.run(_chain(n, middle_b=5))
    assert changed.executed == [f"n{i}" for i in range(n // 2, n)] + ["out"]
    assert changed.cached == [f"n{n // 2 - 1}"] and changed.outputs["out"]["int"] == 6


def test_running_workflow_keeps_what_it_needs_then_the_bound_applies(reg: Registry, settings: Settings) -> None:
    ex = Executor(reg, cache_bytes=10_000, settings=settings)
    base = {"x": {"type": "t_big", "inputs": {"size": 1000}},                      # 4,000 bytes
            "sx": {"type": "t_image_sink", "inputs": {"image": link("x", "image")}}}
    ex.run({"nodes": base})
    x_key = node_key("t_big", 1, {"size": 1000}, [], None)
    assert x_key in ex.cache
    PROBE.update(executor=ex, key=x_key)
    more = {**base, "y": {"type": "t_big", "inputs": {"size": 1001}},
            "z": {"type": "t_big", "inputs": {"size": 1002}},
            "p": {"type": "eh_probe", "inputs": {"image": link("z", "image")}},
            "sy": {"type": "t_image_sink", "inputs": {"image": link("y", "image")}}}
    ex.run({"nodes": more})
    assert PROBE["held"] is True and PROBE["bytes"] > 10_000  # over the bound, but x is needed
    assert ex.cache.bytes <= 10_000                            # after the run the bound holds


def test_cache_pins_and_entry_count_is_only_a_safety_net() -> None:
    cache = OutputCache(max_bytes=10_000)
    assert cache.max_entries >= 1_000_000
    cache.put("old", {"x": torch.zeros(1000)}, {})
    cache.pin(["a", "b", "c"])
    for key in "abc":
        cache.put(key, {"x": torch.zeros(1000)}, {})
    assert "old" not in cache and all(k in cache for k in "abc") and cache.bytes > 10_000
    cache.release()
    assert cache.bytes <= 10_000 and "a" not in cache and "c" in cache
    assert Executor(Registry(), settings=Settings()).cache.max_entries >= 1_000_000


# --- 6. seeds of cached nodes ---------------------------------------------------------------
def test_saved_png_records_seeds_of_cached_nodes(tmp_path: Path) -> None:
    import loom_nodes.image_io  # noqa: F401 - declares save_image
    import loom_nodes.primitives  # noqa: F401 - declares seed_value
    settings = Settings(home=tmp_path)
    reg = Registry()
    reg.add_module(__name__)
    reg.add_module("loom_nodes.image_io")
    reg.add_module("loom_nodes.primitives")
    ex = Executor(reg, settings=settings)

    def wf(prefix: str) -> dict:
        return {"nodes": {"s": {"type": "seed_value", "inputs": {"seed": 42}},
                          "n": {"type": "eh_noise", "inputs": {"seed": link("s", "seed")}},
                          "m": {"type": "eh_noise", "inputs": {"width": 4}},
                          "save": {"type": "save_image", "inputs": {"images": link("n", "image"),
                                                                    "prefix": prefix}},
                          "save2": {"type": "save_image", "inputs": {"images": link("m", "image"),
                                                                     "prefix": prefix + "_m"}}}}

    def seeds(result, node_id: str = "save") -> dict:
        png = settings.outputs / result.ui[node_id]["images"][0]["path"]
        with PILImage.open(png) as im:
            return json.loads(im.text["loom.run"])["seeds"]

    first = ex.run(wf("one"))
    CALLS.clear()
    second = ex.run(wf("two"))  # only the save nodes run: the noise comes from the cache
    assert "n" in second.cached and CALLS["eh_noise"] == 0
    expected = {"s.seed": 42, "n.seed": 42, "m.seed": 7}
    assert seeds(first) == expected
    assert seeds(second) == expected and seeds(second, "save2") == expected


# --- 7. devices, precision and the CLI ------------------------------------------------------
def test_fp16_on_cpu_warns_once_and_computes_in_fp32(reg: Registry, tmp_path: Path,
                                                     caplog: pytest.LogCaptureFixture,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    import loom.devices
    monkeypatch.setattr(loom.devices, "_WARNED", set(), raising=False)
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {}},
                    "o": {"type": "t_collect", "inputs": {"value": link("c", "int")}}}}
    with caplog.at_level(logging.WARNING, logger="loom.devices"):
        for _ in range(2):
            ex = Executor(reg, settings=Settings(home=tmp_path, device="cpu", precision="fp16"))
            ex.run(wf)
            assert ex.dtype == torch.float32
    warnings = [r for r in caplog.records if "fp16" in r.getMessage()]
    assert len(warnings) == 1 and "fp32" in warnings[0].getMessage()


def test_bad_device_or_precision_fails_the_run_before_any_node(ex: Executor, reg: Registry,
                                                              tmp_path: Path) -> None:
    wf = {"nodes": {"c": {"type": "t_const", "inputs": {}},
                    "o": {"type": "t_collect", "inputs": {"value": link("c", "int")}}}}
    for device, precision in (("tpu", "auto"), ("cpu", "fp8")):
        bad = Executor(reg, settings=Settings(home=tmp_path, device=device, precision=precision))
        obs = RecordingObserver()
        with pytest.raises(Exception) as err:
            bad.run(wf, obs)
        assert not isinstance(err.value, (NodeError, UserInputError))
        assert obs.names() == ["run_failed"] and CALLS["t_const"] == 0


def _loom(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "loom", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=180)


def test_cli_bad_device_and_precision_one_line_exit_1(tmp_path: Path) -> None:
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"nodes": {
        "img": {"type": "sample_image", "inputs": {"name": "camera"}},
        "s": {"type": "save_image", "inputs": {"images": {"node": "img", "output": "image"}}}}}))
    no_cuda = "cuda:7" if torch.cuda.device_count() < 8 else "cuda:99"
    for flags in (["--device", "tpu"], ["--device", no_cuda], ["--precision", "fp8"]):
        r = _loom("run", wf, *flags, cwd=tmp_path)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == 1, (flags, r.stderr)
        assert len(lines) == 1 and lines[0].startswith("error: --"), (flags, r.stderr)
        assert not (tmp_path / "output").exists()


def test_cli_validate_reports_plugin_errors(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_plugin.py").write_text("raise ImportError('missing dependency xyz')\n")
    wf = tmp_path / "wf.json"
    wf.write_text(json.dumps({"nodes": {
        "img": {"type": "sample_image", "inputs": {"name": "camera"}},
        "s": {"type": "preview_image", "inputs": {"images": {"node": "img", "output": "image"}}}}}))
    r = _loom("validate", wf, "--custom-nodes", plugins, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "warning: plugin" in r.stderr and "broken_plugin" in r.stderr and "xyz" in r.stderr


def test_ram_budget_flag_reaches_settings_and_defaults_to_half_the_ram() -> None:
    from loom.cli import build_parser, settings_from_args
    from loom.settings import total_ram_bytes
    ns = build_parser().parse_args(["run", "x.json", "--ram-budget-gb", "2.5"])
    assert settings_from_args(ns).ram_budget_bytes == int(2.5 * (1 << 30))
    ns = build_parser().parse_args(["run", "x.json"])
    total = total_ram_bytes()
    assert total and settings_from_args(ns).ram_budget_bytes == total // 2
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "x.json", "--ram-budget-gb", "0"])
    from loom_server.cli import _common_parent, settings_from_namespace  # python -m loom_server
    ns = _common_parent().parse_args(["--ram-budget-gb", "3"])
    ns.standalone = True
    assert settings_from_namespace(ns).ram_budget_bytes == 3 << 30


def test_cli_node_raising_systemexit_or_ctrl_c_fails_the_run_cleanly(tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "quitter.py").write_text(
        "from loom import node\n\n\n"
        "@node(id='eh_cli_quit', output=True, cache=False)\n"
        "def eh_cli_quit(kind: str = 'exit') -> int:\n"
        "    \"\"\"Leaves the way it is told to.\"\"\"\n"
        "    if kind == 'exit':\n"
        "        raise SystemExit(5)\n"
        "    raise KeyboardInterrupt\n")
    wf = tmp_path / "wf.json"
    for kind, code, line in (("exit", 3, "error: q: SystemExit: 5"), ("ctrl-c", 130, "interrupted in q")):
        wf.write_text(json.dumps({"nodes": {"q": {"type": "eh_cli_quit", "inputs": {"kind": kind}}}}))
        r = _loom("run", wf, "--custom-nodes", plugins, "--device", "cpu", cwd=tmp_path)
        assert r.returncode == code, r.stderr
        assert line in r.stderr and "Traceback" not in r.stderr
