"""The home folder and every path derived from it."""
from __future__ import annotations

import importlib.resources
import os
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent  # the source tree (tests, scripts)


def shipped(name: str) -> Path:
    """A folder Loom ships beside its code (``workflows``, ``models``, ``web``).

    In a wheel it is package data under ``loom/_shipped/`` (see pyproject.toml); in an
    editable install or a source checkout it is the repo's own top-level folder.
    """
    packaged = Path(str(importlib.resources.files("loom").joinpath("_shipped", name)))
    return packaged if packaged.is_dir() else REPO_ROOT / name


SHIPPED_MODELS = shipped("models")
SHIPPED_WORKFLOWS = shipped("workflows")
GIB = 1 << 30


def total_ram_bytes() -> int | None:
    """Physical memory of this machine in bytes (None where the OS will not say)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None
    return int(total) if total > 0 else None


def default_ram_budget() -> int:
    """Half of the machine's RAM (8 GiB where it cannot be read)."""
    total = total_ram_bytes()
    return total // 2 if total else 8 * GIB


MODEL_KINDS = ("checkpoints", "diffusers", "diffusion_models", "vae", "text_encoders", "gan", "features",
               "upscale_models", "loras", "controlnet", "embeddings", "embedded")


@dataclass
class Settings:
    """Where things live and how to compute; every CLI command builds one from its flags."""

    home: Path = field(default_factory=Path.cwd)
    models_dirs: list[Path] = field(default_factory=list)
    custom_nodes_dirs: list[Path] = field(default_factory=list)
    output_dir: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    vram_budget_gb: float | None = None
    ram_budget_gb: float | None = None  # loaded models + cached outputs; None: half the RAM
    compile: str = "off"        # torch.compile the denoiser on CUDA: off, default, reduce-overhead, max-autotune
    channels_last: bool = False  # channels-last memory format for the UNet on CUDA

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        self.models_dirs = [Path(p).expanduser().resolve() for p in self.models_dirs]
        self.custom_nodes_dirs = [Path(p).expanduser().resolve() for p in self.custom_nodes_dirs]
        if self.output_dir is not None:
            self.output_dir = Path(self.output_dir).expanduser().resolve()

    @property
    def ram_budget_bytes(self) -> int:
        """CPU RAM that loaded models and cached node outputs may use (``--ram-budget-gb``)."""
        if self.ram_budget_gb is None:
            return default_ram_budget()
        return max(int(self.ram_budget_gb * GIB), 0)

    @property
    def model_roots(self) -> list[Path]:
        """Roots searched for models: home/models, --models-dir ones, Loom's shipped models/."""
        roots = [self.home / "models", *self.models_dirs, SHIPPED_MODELS]
        seen: list[Path] = []
        for r in roots:
            if r not in seen:
                seen.append(r)
        return seen

    @property
    def custom_nodes_roots(self) -> list[Path]:
        """Folders whose plugins are loaded: home/custom_nodes plus --custom-nodes ones."""
        roots = [self.home / "custom_nodes", *self.custom_nodes_dirs]
        return list(dict.fromkeys(roots))

    @property
    def outputs(self) -> Path:
        """Folder saved images go to."""
        return self.output_dir or self.home / "output"

    @property
    def inputs(self) -> Path:
        """Folder of uploaded images."""
        return self.home / "input"

    @property
    def user(self) -> Path:
        """Queue database, saved workflows, settings."""
        return self.home / "user"

    @property
    def previews(self) -> Path:
        """Temporary preview images."""
        return self.home / "temp"

    @classmethod
    def from_env(cls) -> "Settings":
        """Settings from LOOM_HOME / LOOM_DEVICE when set, else defaults."""
        return cls(home=Path(os.environ.get("LOOM_HOME", os.getcwd())),
                   device=os.environ.get("LOOM_DEVICE", "auto"))
