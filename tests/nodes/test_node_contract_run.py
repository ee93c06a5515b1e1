"""The runnable node contract: every built-in node runs, keeps its types, seeds and inputs.

Like diffusers' SchedulerCommonTest, one test walks the whole default registry (built-in
nodes only; plugins from tests/ are not in it). Each node runs on small inputs through the
real Executor, in two fresh executors whose caches already hold the providers' outputs
(so providers run once per module): its outputs have their declared types
(``loom.links.check_value``), the second run gives exactly what the first gave (the same
seeds), and no input value it received changed. What feeds each input is in
``contract_providers``; a node it cannot feed fails here, saying what to add there.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pytest
import torch
from contract_providers import (EXCEPTIONS, NONDETERMINISTIC, TARGET, TEST_PROVIDERS, ContractGap,
                                Graph, build_graph, difference, prepare_home, snapshot)

from loom import Executor, NodeError, NodeSpec, Registry, RunResult, Settings, check_value, node
from loom.cache import OutputCache
from loom.settings import SHIPPED_MODELS
from loom.types import Image, type_name

pytestmark = pytest.mark.usefixtures("one_thread")
Entry = tuple[dict[str, Any], dict[str, Any]]  # a cache entry: (outputs, ui)
Seeds = dict[str, Entry]  # cache key → entry


def _builtin(registry: Registry) -> list[NodeSpec]:
    """The registry's built-in nodes (module ``loom_nodes`` or below)."""
    return [s for s in registry if s.module == "loom_nodes" or s.module.startswith("loom_nodes.")]


BUILTIN_IDS = [s.id for s in _builtin(Registry.default(Settings(device="cpu")))]


class RecordingCache(OutputCache):
    """The providers' executor's cache; keeps every entry it was given in ``entries`` too, and
    the keys asked for or stored since ``touched`` was last cleared."""

    def __init__(self) -> None:
        super().__init__()
        self.entries: Seeds = {}
        self.touched: set[str] = set()

    def get(self, key: str) -> Entry | None:
        """Note the key, then look it up as usual."""
        self.touched.add(key)
        return super().get(key)

    def put(self, key: str, outputs: dict[str, Any], ui: dict[str, Any]) -> None:
        """Record the entry, then cache it as usual."""
        self.touched.add(key)
        self.entries[key] = (outputs, ui)
        super().put(key, outputs, ui)

    def seeds(self) -> Seeds:
        """The entries of the keys touched (the providers of the last run; never its target)."""
        return {k: self.entries[k] for k in self.touched if k in self.entries}


class SeededCache(OutputCache):
    """A fresh executor's cache that also answers, read-only, from the providers' entries."""

    def __init__(self, seeds: Mapping[str, Entry]) -> None:
        super().__init__()
        self.seeds = seeds

    def get(self, key: str) -> Entry | None:
        """A provider's entry, else this cache's own."""
        hit = self.seeds.get(key)
        return hit if hit is not None else super().get(key)


@dataclass
class Contract:
    """The shared state of the module: settings with a temporary home, the registry, and the
    providers' executor whose recorded cache seeds every fresh executor."""

    settings: Settings
    registry: Registry
    providers: Executor
    recorded: RecordingCache

    def provide(self, graph: Graph) -> tuple[dict[str, Any], Seeds]:
        """Run (or take from the cache) the target's providers: its socket input values by name,
        and the providers' cache entries (to seed the fresh executors with)."""
        if not graph.links:
            return {}, {}
        self.recorded.touched.clear()
        result = self.run(self.providers, graph, graph.parents)
        inputs = {name: result.outputs[node][output] for name, (node, output) in graph.links.items()}
        return inputs, self.recorded.seeds()

    def run_fresh(self, graph: Graph, seeds: Seeds) -> RunResult:
        """Run the target in a new executor whose cache holds the providers' outputs (only)."""
        executor = Executor(self.registry, settings=self.settings)
        executor.cache = SeededCache(seeds)
        result = self.run(executor, graph, [TARGET])
        assert TARGET in result.executed, f"{TARGET} was served from a cache instead of running"
        return result

    def run(self, executor: Executor, graph: Graph, targets: list[str]) -> RunResult:
        """Compile ``graph`` for ``targets`` and run it; a failing node fails the test, naming it."""
        try:
            return executor.run(executor.compile(graph.workflow, targets=targets))
        except NodeError as err:
            failure = (f"node {err.node!r} ({err.node_type}) failed: {err.error_type}: {err.message}\n"
                       f"{err.traceback}")
        pytest.fail(failure, pytrace=False)


def _contract(settings: Settings, registry: Registry) -> Contract:
    """A contract whose providers run in one executor with a recording cache."""
    providers = Executor(registry, settings=settings)
    recorded = RecordingCache()
    providers.cache = recorded
    return Contract(settings, registry, providers, recorded)


@pytest.fixture(scope="module")
def contract(tmp_path_factory: pytest.TempPathFactory) -> Contract:
    """One temporary home (uploads, model files, outputs) and one providers' executor per module."""
    home = tmp_path_factory.mktemp("contract_home")
    prepare_home(home, SHIPPED_MODELS)
    settings = Settings(home=home, device="cpu", precision="fp32")
    registry = Registry.default(settings)
    registry.add(*TEST_PROVIDERS)
    return _contract(settings, registry)


def _files_shown(result: RunResult, settings: Settings) -> list[Path]:
    """The files the target says (``ctx.show(images=...)``) it wrote; each must be in the home."""
    roots = {"output": settings.outputs, "preview": settings.previews}
    files = []
    for shown in result.ui.get(TARGET, {}).get("images", []):
        root = roots[shown["kind"]]
        path = (root / shown["path"]).resolve()
        assert path.is_relative_to(settings.home), f"{path} was written outside the test's home"
        files.append(path)
    return files


def _graph(spec: NodeSpec, settings: Settings) -> Graph:
    """The node's workflow; a node the providers cannot feed fails the test, saying what to add."""
    try:
        return build_graph(spec, settings)
    except ContractGap as gap:
        failure = str(gap)
    pytest.fail(failure, pytrace=False)


def check_contract(contract: Contract, spec: NodeSpec) -> None:
    """Run ``spec`` twice on small inputs: outputs of the declared types, equal for equal seeds,
    every input value unchanged, files only in the home (AssertionError or a failure otherwise)."""
    graph = _graph(spec, contract.settings)
    inputs, seeds = contract.provide(graph)
    before = snapshot(inputs)
    runs = []
    for attempt in ("first", "second"):
        result = contract.run_fresh(graph, seeds)
        changed = difference(before, snapshot(inputs))
        assert changed is None, f"{spec.id} changed an input value during its {attempt} run: {changed}"
        outputs = result.outputs[TARGET]
        assert set(outputs) == {o.name for o in spec.outputs}, f"{spec.id} returned {sorted(outputs)}"
        for out in spec.outputs:
            problem = check_value(out.type, outputs[out.name])
            assert problem is None, f"{spec.id} output {out.name!r} ({type_name(out.type)}): {problem}"
        for path in _files_shown(result, contract.settings):
            assert path.is_file(), f"{spec.id} showed {path}, which does not exist"
        runs.append(snapshot(outputs))
    unequal = difference(runs[0], runs[1], ignore=NONDETERMINISTIC)
    assert unequal is None, f"{spec.id} gave different outputs for the same inputs and seeds: {unequal}"


@pytest.mark.parametrize("node_id", BUILTIN_IDS)
def test_builtin_node_runs_to_contract(contract: Contract, node_id: str) -> None:
    """Every built-in node keeps the contract (or is a documented exception)."""
    if node_id in EXCEPTIONS:
        pytest.skip(f"documented exception: {EXCEPTIONS[node_id]}")
    check_contract(contract, contract.registry[node_id])


def test_exceptions_name_registered_nodes() -> None:
    """A documented exception for a node that no longer exists is stale."""
    assert not set(EXCEPTIONS) - set(BUILTIN_IDS), sorted(set(EXCEPTIONS) - set(BUILTIN_IDS))


# --- the contract catches what it is for (nodes declared here, never in the default registry) ---
class Hologram:
    """A socket type no provider makes."""


@node
def contract_unprovided(h: Hologram, image_width: int = 32) -> int:
    """Test node: a socket of a type nobody provides."""
    return image_width


@node
def contract_mutates(image: Image) -> Image:
    """Test node: darkens its input in place."""
    return image.mul_(0.5)


@node
def contract_unseeded(image: Image) -> Image:
    """Test node: noise from the global generator, not from a seed."""
    return image * torch.rand(1).item()


@node
def contract_wrong_type(image: Image) -> Image:
    """Test node: returns a list where it declares an Image."""
    return [image]  # type: ignore[return-value]


@pytest.fixture
def bad_contract(contract: Contract) -> Contract:
    """A contract of its own (providers: shapes only) for the bad nodes, so that a mutating node
    cannot spoil the values the built-in nodes are given."""
    registry = Registry()
    registry.add_module("loom_nodes.shapes_data")
    registry.add(contract_mutates, contract_unseeded, contract_wrong_type)
    return _contract(contract.settings, registry)


def test_a_node_without_a_provider_is_a_gap_naming_what_to_add(contract: Contract) -> None:
    """A new socket type nobody provides makes the contract fail with what to add, not skip."""
    with pytest.raises(ContractGap, match=r"no provider for socket type 'Hologram'.*PROVIDERS"):
        build_graph(contract_unprovided.__loom_node__, contract.settings)  # type: ignore[attr-defined]


@pytest.mark.parametrize("fn,error,match", [
    (contract_mutates, AssertionError,
     r"changed an input value during its first run: image: max \|difference\|"),
    (contract_unseeded, AssertionError, r"different outputs for the same inputs and seeds"),
    (contract_wrong_type, pytest.fail.Exception, r"output 'image' \(Image\): expected an image"),
], ids=["mutation", "unseeded", "wrong_type"])
def test_the_contract_catches_a_bad_node(bad_contract: Contract, fn: Any, error: type, match: str) -> None:
    """Mutating an input, ignoring seeds and returning a wrong type each fail the contract."""
    with pytest.raises(error, match=match):
        check_contract(bad_contract, fn.__loom_node__)
