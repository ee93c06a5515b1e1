"""Which actor should take a run: the keys a run needs and the score of an actor for them.

A run's keys come from its compiled plan: the static cache keys of its steps and the model
files its steps resolved. An actor reports, after each run, the cache keys it still holds
and the models it has loaded. The dispatcher gives a run to the idle actor that holds most
of what the run needs, so two checkpoints on two actors are never reloaded back and forth."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

if TYPE_CHECKING:
    from loom import Settings

MODEL_WEIGHT = 100  # one loaded model file outweighs many cached small outputs


@dataclass(frozen=True)
class RunKeys:
    """What a run needs: cache keys, model files, and uploaded files (names under inputs)."""

    cache: frozenset[str] = frozenset()
    models: frozenset[str] = frozenset()
    uploads: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        """Nothing to match on (e.g. a run recovered after a restart, never compiled here)."""
        return not self.cache and not self.models


@dataclass
class Holdings:
    """What an actor holds: reported after its last run, plus what its current run brings."""

    cache: set[str] = field(default_factory=set)
    models: list[str] = field(default_factory=list)  # model keys and labels as reported

    def score(self, keys: RunKeys) -> int:
        """How much of ``keys`` this actor already holds (0: nothing)."""
        hits = len(keys.cache & self.cache) if self.cache else 0
        return hits + MODEL_WEIGHT * self.model_score(keys)

    def model_score(self, keys: RunKeys) -> int:
        """How many of the run's model files this actor has loaded."""
        if not keys.models or not self.models:
            return 0
        return sum(1 for m in keys.models if any(m in r for r in self.models))

    def with_run(self, keys: RunKeys | None) -> "Holdings":
        """These holdings once a run with ``keys`` has run here."""
        if keys is None:
            return self
        return Holdings(self.cache | keys.cache, [*self.models, *keys.models])

    @property
    def size(self) -> int:
        """How much the actor holds (an idle actor holding little is the cheapest to disturb)."""
        return len(self.cache) + MODEL_WEIGHT * len(self.models)


def keys_of(plan: Any, settings: "Settings") -> RunKeys:
    """The keys of a compiled plan: static cache keys, resolved model files, uploads."""
    roots = [Path(r) for r in settings.model_roots]
    inputs = Path(settings.inputs)
    cache: set[str] = set()
    models: set[str] = set()
    uploads: set[str] = set()
    for step in plan.steps.values():
        if step.key:
            cache.add(step.key)
        for value in _paths(step.values.values()):
            if any(_inside(value, r) for r in roots):
                models.add(str(value))
            elif _inside(value, inputs):
                uploads.add(value.relative_to(inputs).as_posix())
    return RunKeys(frozenset(cache), frozenset(models), frozenset(uploads))


def _paths(values: Iterable[Any]) -> Iterable[Path]:
    for value in values:
        if isinstance(value, Path):
            yield value
        elif isinstance(value, (list, tuple)):
            yield from (v for v in value if isinstance(v, Path))


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def choose(keys: RunKeys | None, idle: list[Any], busy: list[Any]) -> tuple[Any | None, bool]:
    """(the idle actor for a run, whether waiting for a busy actor would be better).

    Each actor has ``holdings`` (and a busy one ``expected``: its holdings with its current
    run). The best-scoring idle actor wins, or, when no idle actor holds anything of the
    run, the one holding least (so the others keep what they hold). The second value is True
    when a busy actor has more of the run's model files loaded (or loading) than any idle
    one: loading a checkpoint costs far more than waiting a little. Cached outputs alone are
    never worth waiting for."""
    if not idle:
        return None, False
    if keys is None or keys.empty:
        return min(idle, key=lambda a: a.holdings.size), False
    best = max(idle, key=lambda a: a.holdings.score(keys))
    if best.holdings.score(keys) == 0:
        best = min(idle, key=lambda a: a.holdings.size)
    busy_models = max((a.expected.model_score(keys) for a in busy), default=0)
    return best, busy_models > best.holdings.model_score(keys)
