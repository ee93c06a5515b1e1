"""GAN generators as nodes: load a DCGAN or StyleGAN2-style generator, sample it, walk its latents.

A generator is a folder under ``models/gan/`` (or ``models/embedded/<name>`` whose loom.json
declares kind "gan") holding ``config.json`` (``"arch": "dcgan" | "stylegan2"`` plus sizes,
optional ``"class_names"``) and ``generator.safetensors``. A single ``.safetensors`` file whose
metadata has a ``config`` entry (the same JSON) is accepted too.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, cast

import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn

from loom import Context, Input, UserInputError, file_fingerprint, node
from loom.types import Generator, Image, ModelFile, Seed

from ._lib.dcgan import DCGANGenerator
from ._lib.stylegan import StyleGANGenerator

ARCHS: dict[str, Any] = {"dcgan": DCGANGenerator, "stylegan2": StyleGANGenerator}
NoiseMode = Literal["const", "random", "none"]


class GANModel(Generator):
    """A loaded GAN generator plus what the nodes need to know about it."""

    def __init__(self, module: nn.Module, config: dict[str, Any], label: str = "") -> None:
        self.module, self.config, self.label = module, dict(config), label
        self.arch: str = config["arch"]
        self.z_dim: int = int(config.get("z_dim", getattr(module, "z_dim")))
        self.num_classes: int = int(config.get("num_classes", 0) or 0)
        names = config.get("class_names") or []
        self.class_names: list[str] = [str(n) for n in names]
        self.image_size: int = int(config.get("image_size", getattr(module, "image_size", 0)))

    @property
    def has_w(self) -> bool:
        """True for generators with a mapping network (truncation and walks happen in w)."""
        return isinstance(self.module, StyleGANGenerator)

    def __repr__(self) -> str:
        return f"GANModel({self.arch}, {self.image_size}px, z={self.z_dim}, classes={self.num_classes})"


def read_gan(path: Path) -> GANModel:
    """Load a generator folder (config.json + generator.safetensors) or a .safetensors file."""
    path = Path(path)
    if path.is_dir():
        cfg_file, weights = path / "config.json", path / "generator.safetensors"
        if not cfg_file.is_file():
            raise UserInputError(f"GAN folder {path} has no config.json (it names the \"arch\" "
                                 f"and sizes)", input="name")
        if not weights.is_file():
            raise UserInputError(f"GAN folder {path} has no generator.safetensors", input="name")
        try:
            cfg = json.loads(cfg_file.read_text())
        except (OSError, ValueError) as exc:
            raise UserInputError(f"cannot read {cfg_file}: {exc}", input="name") from exc
    elif path.is_file() and path.suffix == ".safetensors":
        weights = path
        with safe_open(str(path), "pt") as fh:
            meta = fh.metadata() or {}
        if "config" not in meta:
            raise UserInputError(f"{path.name} has no 'config' metadata: put the generator in a "
                                 "folder with config.json + generator.safetensors", input="name")
        cfg = json.loads(meta["config"])
    else:
        raise UserInputError(f"{path} is not a GAN: expected a folder with config.json and "
                             "generator.safetensors", input="name")
    if not isinstance(cfg, dict):
        raise UserInputError(f"config of {path} must be a JSON object", input="name")
    if path.is_dir() and not cfg.get("class_names") and (path / "loom.json").is_file():
        try:  # an embedded model may name its classes in loom.json only
            names = json.loads((path / "loom.json").read_text()).get("class_names")
        except (OSError, ValueError, AttributeError):
            names = None
        if names:
            cfg["class_names"] = names
    arch = cfg.get("arch")
    if arch not in ARCHS:
        raise UserInputError(f"config of {path}: unknown \"arch\" {arch!r}; known: "
                             f"{', '.join(ARCHS)}", input="name")
    try:
        module = ARCHS[arch].from_config(cfg)
    except (TypeError, ValueError) as exc:
        raise UserInputError(f"config of {path}: {exc}", input="name") from exc
    state = load_file(str(weights))
    estimate = isinstance(module, StyleGANGenerator) and "mapping.w_avg" not in state
    if estimate:
        state["mapping.w_avg"] = module.mapping.w_avg.clone()
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise UserInputError(f"{weights.name} does not fit a {arch} generator with this config "
                             f"(missing: {missing[:4]}, unexpected: {unexpected[:4]})", input="name")
    module.eval().requires_grad_(False)
    if estimate:
        module.estimate_w_avg()
    cfg.setdefault("z_dim", module.z_dim)
    cfg.setdefault("image_size", module.image_size)
    model = GANModel(module, cfg, label=path.name)
    if model.class_names and len(model.class_names) != model.num_classes:
        raise UserInputError(f"config of {path}: {len(model.class_names)} class_names for "
                             f"{model.num_classes} classes", input="name")
    return model


def _load_fp(name: Path) -> str:
    return file_fingerprint(name)


@node(category="gan", fingerprint=_load_fp)
def load_gan(ctx: Context, name: ModelFile["gan"]) -> Generator:  # type: ignore[valid-type]
    """Load a GAN generator (DCGAN or StyleGAN2-style) from models/gan/."""

    def loader() -> nn.Module:
        gan = read_gan(name)
        gan.module.loom_gan = gan  # the module is what the model manager moves between devices
        return gan.module

    version = file_fingerprint(name)  # an edited file replaces the generator read before
    module = ctx.models.load(f"gan:{version}", loader, label=f"GAN {name.name}",
                             source=str(name), version=version)
    return module.loom_gan  # type: ignore[no-any-return]


def _gan(generator: Generator) -> GANModel:
    """The Generator socket's value as Loom's GAN (the executor checked it is a Generator)."""
    return cast(GANModel, generator)


def _class_index(gan: GANModel, class_index: int, class_name: str) -> int:
    """-1 = random per seed; else a checked index (a class name wins over the index)."""
    if class_name.strip():
        if not gan.num_classes:
            raise UserInputError(f"{gan.label} is not class-conditional; leave class_name empty",
                                 input="class_name")
        names = [n.lower() for n in gan.class_names]
        if class_name.strip().lower() not in names:
            shown = ", ".join(gan.class_names[:20]) or "none (use class_index)"
            raise UserInputError(f"unknown class {class_name!r}; classes: {shown}", input="class_name")
        return names.index(class_name.strip().lower())
    if class_index >= 0 and not gan.num_classes:
        raise UserInputError(f"{gan.label} is not class-conditional; use class_index -1",
                             input="class_index")
    if class_index >= gan.num_classes > 0:
        raise UserInputError(f"class_index {class_index} is out of range: this generator has "
                             f"{gan.num_classes} classes (0..{gan.num_classes - 1})", input="class_index")
    return class_index


def draw_codes(ctx: Context, gan: GANModel, seed: int, class_index: int,
               noise: str) -> tuple[torch.Tensor, torch.Tensor | None, list[torch.Tensor | None] | None]:
    """z (1, z_dim), label (1,) or None, and StyleGAN noise maps for one seed, drawn on the CPU.

    Order of draws from ``ctx.rng(seed)``: z, then a random class (always drawn for
    conditional models, so the noise stream does not depend on the class chosen), then noise.
    """
    g = ctx.rng(seed)
    z = torch.randn(1, gan.z_dim, generator=g)
    label = None
    if gan.num_classes:
        label = torch.randint(gan.num_classes, (1,), generator=g)
        if class_index >= 0:
            label = torch.tensor([class_index])
    maps = gan.module.synthesis.make_noise(1, noise, g) if gan.has_w else None
    return z, label, maps


def _cat_noise(parts: list[list[torch.Tensor | None]]) -> list[torch.Tensor | None]:
    return [None if layer[0] is None else torch.cat(layer) for layer in zip(*parts)]  # type: ignore[misc]


def _to_image(x: torch.Tensor) -> torch.Tensor:
    return ((x.float() + 1.0) * 0.5).clamp(0.0, 1.0).cpu().contiguous()


def _run(ctx: Context, gan: GANModel, z: torch.Tensor, labels: torch.Tensor | None,
         noise: list[torch.Tensor | None] | None, w: torch.Tensor | None = None,
         psi: float = 1.0) -> torch.Tensor:
    """Run the generator on the context's device in float32; returns an Image on the CPU."""
    dev = ctx.device
    m = gan.module
    with ctx.models.use(m):
        lab = None if labels is None else labels.to(dev)
        if isinstance(m, StyleGANGenerator):
            nz = None if noise is None else [None if n is None else n.to(dev) for n in noise]
            if w is None:
                w = m.truncate(m.mapping(z.to(dev), lab), psi)
            out = m.synthesis(w.to(dev), nz)
        else:
            out = m(z.to(dev), lab)
    return _to_image(out)


TRUNC = Input(1.0, ge=0.0, le=2.0, step=0.05,
              help="ψ: 1 = no truncation, 0 = the mean image (StyleGAN: w_avg + ψ(w − w_avg); "
                   "DCGAN: z scaled by ψ)")
CLASS_INDEX = Input(-1, ge=-1, le=1_000_000, help="class for conditional generators; -1 = random per seed")
CLASS_NAME = Input("", help="class name from the model's config (overrides class_index)")
NOISE = Input("const", help="StyleGAN noise inputs: stored constants, drawn from the seed, or off")


@node(category="gan")
def gan_generate(ctx: Context, generator: Generator, seed: Seed = Seed(0),
                 batch: int = Input(1, ge=1, le=64),
                 truncation: float = TRUNC, class_index: int = CLASS_INDEX,
                 class_name: str = CLASS_NAME, noise: NoiseMode = NOISE) -> Image:
    """Sample images from a GAN generator; image i of the batch uses seed + i."""
    gan = _gan(generator)
    cls = _class_index(gan, class_index, class_name)
    codes = [draw_codes(ctx, gan, seed + i, cls, noise) for i in range(batch)]
    z = torch.cat([c[0] for c in codes])
    labels = torch.cat([c[1] for c in codes]) if gan.num_classes else None  # type: ignore[misc]
    maps = _cat_noise([c[2] for c in codes]) if gan.has_w else None  # type: ignore[misc]
    if not gan.has_w:
        z = z * truncation
    return _run(ctx, gan, z, labels, maps, psi=truncation)


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation of rows a, b (1, D) at fractions t (N,) → (N, D)."""
    t = t[:, None]
    na, nb = a / a.norm(dim=1, keepdim=True), b / b.norm(dim=1, keepdim=True)
    omega = torch.acos((na * nb).sum(1, keepdim=True).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return torch.lerp(a, b, t)
    out = torch.sin((1.0 - t) * omega) / so * a + torch.sin(t * omega) / so * b
    out[t[:, 0] == 0] = a[0]
    out[t[:, 0] == 1] = b[0]
    return out


@node(category="gan")
def gan_latent_walk(ctx: Context, generator: Generator, seed_a: Seed = Seed(0), seed_b: Seed = Seed(1),
                    steps: int = Input(8, ge=2, le=256, help="frames, both endpoints included"),
                    truncation: float = TRUNC, class_index: int = CLASS_INDEX,
                    class_name: str = CLASS_NAME, noise: NoiseMode = NOISE) -> Image:
    """A batch interpolating between two seeds (slerp in z for DCGAN, lerp in w for StyleGAN)."""
    gan = _gan(generator)
    cls = _class_index(gan, class_index, class_name)
    za, la, na = draw_codes(ctx, gan, seed_a, cls, noise)
    zb, lb, nb = draw_codes(ctx, gan, seed_b, cls, noise)
    t = torch.linspace(0.0, 1.0, steps)
    m = gan.module
    if isinstance(m, StyleGANGenerator):
        with ctx.models.use(m):
            dev = ctx.device
            wa = m.truncate(m.mapping(za.to(dev), None if la is None else la.to(dev)), truncation)
            wb = m.truncate(m.mapping(zb.to(dev), None if lb is None else lb.to(dev)), truncation)
        w = torch.lerp(wa, wb, t.to(dev)[:, None])
        maps = None
        if na is not None and nb is not None:
            scale = torch.sqrt((1 - t) ** 2 + t ** 2)[:, None, None, None]
            maps = [None if x is None else ((1 - t)[:, None, None, None] * x + t[:, None, None, None] * y)
                    / (scale if noise == "random" else 1.0) for x, y in zip(na, nb)]
        return _run(ctx, gan, za.expand(steps, -1), None, maps, w=w)
    z = slerp(za, zb, t) * truncation
    labels = None if la is None else la.expand(steps)
    return _run(ctx, gan, z, labels, None)


__all__ = ["GANModel", "read_gan", "load_gan", "gan_generate", "gan_latent_walk", "slerp", "draw_codes"]
