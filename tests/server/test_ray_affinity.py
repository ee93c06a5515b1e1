"""The dispatcher's choice of actor (no Ray needed): keys from a compiled plan, scores."""
from __future__ import annotations

from dataclasses import dataclass, field

from loom import Executor
from loom_server.workers.affinity import Holdings, RunKeys, choose, keys_of
from ray_support import model_run, ray_home, server_registry
from srv_helpers import link, wf


@dataclass(eq=False)
class Slot:
    name: str
    holdings: Holdings = field(default_factory=Holdings)
    expected: Holdings = field(default_factory=Holdings)


def test_keys_of_a_plan_name_its_cache_keys_models_and_uploads(tmp_path):
    settings = ray_home(tmp_path)
    (settings.inputs).mkdir(parents=True)
    (settings.inputs / "pic.png").write_bytes(b"x")
    ex = Executor(server_registry(settings), settings=settings)
    keys = keys_of(ex.compile(model_run("alpha.safetensors", 1)), settings)
    assert keys.models == {str(tmp_path / "models" / "checkpoints" / "alpha.safetensors")}
    assert len(keys.cache) == 3 and not keys.uploads
    other = keys_of(ex.compile(model_run("alpha.safetensors", 2)), settings)
    assert len(keys.cache & other.cache) == 1  # the loader's key is shared, the rest differ
    upload = keys_of(ex.compile(wf(size={"type": "ray_file_size", "inputs": {"image": "pic.png"}},
                                   show={"type": "srv_show", "inputs": {"value": link("size", "int")}})),
                     settings)
    assert upload.uploads == {"pic.png"} and not upload.models


def test_choose_prefers_holders_and_waits_only_for_models():
    model = "/m/checkpoints/a.safetensors"
    run = RunKeys(frozenset({"k1", "k2"}), frozenset({model}))
    empty, cached = Slot("empty"), Slot("cached", Holdings({"k1"}, []))
    loaded = Slot("loaded", Holdings(set(), [f"load:{model} a.safetensors"]))
    assert choose(run, [], [loaded]) == (None, False)
    assert choose(run, [empty, loaded], []) == (loaded, False)
    assert choose(run, [empty, cached], []) == (cached, False)
    assert choose(None, [cached, empty], []) == (empty, False)  # nothing known: the emptiest
    busy = Slot("busy", expected=Holdings(set(), [model]))
    assert choose(run, [empty], [busy]) == (empty, True)  # its model is loading there: wait
    busy_cache = Slot("busy", expected=Holdings({"k1", "k2"}, []))
    assert choose(run, [empty], [busy_cache]) == (empty, False)  # cached outputs: never wait
    assert Holdings({"k1"}, []).with_run(run).score(run) == 2 + 100
