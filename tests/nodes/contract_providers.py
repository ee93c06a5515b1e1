"""Inputs for the runnable node contract test (test_node_contract_run.py).

Every built-in node is run on small inputs. Its widgets take their defaults, overridden by
``OVERRIDES`` (keyed by input name); its sockets are fed by small provider subgraphs
(``PROVIDER_NODES``), chosen by the socket's type name in ``PROVIDERS``. A node whose
inputs none of these cover is a ``ContractGap``: the test fails with a message naming what
to add. ``prepare_home`` writes the files a few nodes need (an uploaded image, the embedded
VAE as a VAE folder, a tiny single-file checkpoint and upscale model) into the test's
home folder; model-file widgets take an embedded model or one of these, never a big model a
developer keeps in models/.
"""
from __future__ import annotations

import dataclasses
import enum
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import torch

from loom import NodeSpec, Settings, list_models, node
from loom.nodeapi import InputSpec, check_widget_value
from loom.types import Image, type_name

from dit_file_fixtures import DIT_FILES, write_dit_files

TARGET = "node_under_test"
UPLOAD = "contract.png"
LATENT_FILE = "contract-latent.safetensors"  # in input/, for load_latent
CHECKPOINT = "tiny-sd1.safetensors"
VAE_FOLDER = "shapes-ldm-vae"
UPSCALER = "tiny-rrdb-x2.safetensors"
CLIP_FOLDER = "tiny-clip"  # models/clip/, for clip_alignment
DIT_FOLDER = "tiny-dit"  # models/diffusers/, a flow-matching transformer for model_sampling_flow
HOME_MODELS = (CHECKPOINT, VAE_FOLDER, UPSCALER, CLIP_FOLDER, DIT_FOLDER)  # what prepare_home writes under models/


def link(node_id: str, output: str) -> dict[str, str]:
    """A workflow link to a provider node's output."""
    return {"node": f"p_{node_id}", "output": output}


@node(category="test")
def contract_rgba_image() -> Image:
    """Test provider (no built-in node makes one): a 32 px RGBA image with a transparent square."""
    image = torch.linspace(0.0, 1.0, 4 * 32 * 32).reshape(1, 4, 32, 32)
    image[:, 3] = 1.0
    image[:, 3, 8:24, 8:24] = 0.0
    return image


TEST_PROVIDERS = (contract_rgba_image,)  # registered in the contract's registry only


# Provider nodes (ids get a "p_" prefix in the workflow). Keep them small: 32 px, 2 images, 2 steps.
PROVIDER_NODES: dict[str, dict[str, Any]] = {
    "shapes": {"type": "shapes_images", "inputs": {"count": 2, "seed": 0, "size": 32}},
    "shapes_b": {"type": "shapes_images", "inputs": {"count": 2, "seed": 1, "size": 32}},
    "upload": {"type": "load_image", "inputs": {"image": UPLOAD}},
    "rgba": {"type": "contract_rgba_image", "inputs": {}},
    "ldm": {"type": "load_diffusers_model", "inputs": {"model": "embedded/shapes-ldm"}},
    "dit": {"type": "load_diffusers_model", "inputs": {"model": DIT_FOLDER}},
    "latent": {"type": "empty_latent",
               "inputs": {"width": 32, "height": 32, "batch": 1, "vae": link("ldm", "vae")}},
    "minilm": {"type": "load_text_encoder", "inputs": {"name": "embedded/minilm"}},
    "cond": {"type": "text_encode",
             "inputs": {"encoder": link("minilm", "text_encoder"), "text": "a red circle"}},
    "uncond": {"type": "text_encode", "inputs": {"encoder": link("minilm", "text_encoder"), "text": ""}},
    "scheduler": {"type": "scheduler", "inputs": {}},
    "sigmas": {"type": "sigmas", "inputs": {"denoiser": link("ldm", "denoiser"),
                                            "scheduler": link("scheduler", "scheduler"), "steps": 2}},
    "gan": {"type": "load_gan", "inputs": {"name": "embedded/shapes-gan"}},
    "features": {"type": "load_feature_extractor", "inputs": {}},
    "style": {"type": "style_transfer",
              "inputs": {"content": link("shapes", "images"), "style": link("shapes_b", "images"),
                         "extractor": link("features", "feature_extractor"), "steps": 2}},
    "upscaler": {"type": "load_upscale_model", "inputs": {"name": UPSCALER}},
    "controlnet": {"type": "load_controlnet", "inputs": {"name": "embedded/shapes-controlnet-random"}},
    "sigmas": {"type": "sigmas", "inputs": {"denoiser": link("ldm", "denoiser"),
                                            "scheduler": link("scheduler", "scheduler"), "steps": 4}},
    "controlnet": {"type": "load_controlnet", "inputs": {"name": "embedded/shapes-controlnet-random"}},
    "int": {"type": "int_value", "inputs": {"value": 2}},
    "float": {"type": "float_value", "inputs": {"value": 0.5}},
    "str": {"type": "string_value", "inputs": {"value": "a red circle"}},
    "ckpt": {"type": "load_checkpoint", "inputs": {"checkpoint": CHECKPOINT}},
}

# Socket type name → provider outputs; the n-th socket of a type takes variant n (cycling),
# so that two Image inputs of one node get different images.
PROVIDERS: dict[str, tuple[tuple[str, str], ...]] = {
    "Image": (("shapes", "images"), ("shapes_b", "images")),
    "Mask": (("upload", "mask"),),
    "Latent": (("latent", "latent"),),
    "Conditioning": (("cond", "conditioning"), ("uncond", "conditioning")),
    "Denoiser": (("ldm", "denoiser"),),
    "VAE": (("ldm", "vae"),),
    "TextEncoder": (("ldm", "text_encoder"),),
    "Scheduler": (("scheduler", "scheduler"),),
    "Sigmas": (("sigmas", "sigmas"),),
    "Generator": (("gan", "generator"),),
    "FeatureExtractor": (("features", "feature_extractor"),),
    "StyleLosses": (("style", "losses"),),
    "UpscaleModel": (("upscaler", "upscale_model"),),
    "ControlNet": (("controlnet", "control_net"),),
    "Sigmas": (("sigmas", "sigmas"),),
    "ControlNet": (("controlnet", "control_net"),),
    "int": (("int", "value"),),
    "float": (("float", "value"),),
    "str": (("str", "value"),),
}

# One socket of one node that needs a provider other than its type's: (node id, input) → output.
NODE_SOCKETS: dict[tuple[str, str], tuple[str, str]] = {
    ("mask_from_alpha", "image"): ("rgba", "image"),
    ("clip_set_last_layer", "encoder"): ("ckpt", "text_encoder"),  # CLIP skip needs a CLIP
    ("model_sampling_flow", "denoiser"): ("dit", "denoiser"),  # the shift needs a flow-matching model
}

# Widget values by input name, for speed; the first that the widget accepts wins, else its minimum.
OVERRIDES: dict[str, tuple[Any, ...]] = {
    "steps": (2,), "width": (32, 64), "height": (32, 64), "count": (2,), "batch": (1,),
    "size": (32,), "text": ("a red circle",),
}

# One widget of one node: (node id, input) → value (wins over OVERRIDES).
NODE_WIDGETS: dict[tuple[str, str], Any] = {
    ("split_sigmas", "step"): 2,  # inside the provider's 4-step schedule
    ("clip_set_last_layer", "clip_skip"): 2,
    ("load_latent", "name"): LATENT_FILE,  # written by prepare_home
    ("precision_recall", "k"): 1,  # k-NN radii need more than k images; the providers give 2
    **DIT_FILES,  # tiny transformer / text-encoder / VAE files, written by prepare_home
}

# Nodes that are not run, and why. Keep this empty unless a node cannot run on small inputs.
EXCEPTIONS: dict[str, str] = {}

# Output fields allowed to differ between two runs with the same seed ("Class.field" → why).
NONDETERMINISTIC: dict[str, str] = {
    "StyleLosses.seconds": "wall-clock time the optimization took",
}


class ContractGap(Exception):
    """The contract test does not know how to feed one of a node's inputs."""


@dataclass(frozen=True)
class Graph:
    """The workflow that runs one node: its provider subgraph plus the node as ``TARGET``."""

    nodes: dict[str, dict[str, Any]]
    links: dict[str, tuple[str, str]]  # socket input → (provider node id, output)

    @property
    def workflow(self) -> dict[str, Any]:
        """The workflow dict for ``Executor.compile``."""
        return {"nodes": self.nodes}

    @property
    def parents(self) -> list[str]:
        """Provider nodes that feed the target directly."""
        return sorted({n for n, _ in self.links.values()})


def _widget_value(spec: NodeSpec, inp: InputSpec, settings: Settings) -> tuple[bool, Any]:
    """(whether to set it, the value) for a widget: an override, a file choice, or the default."""
    if (spec.id, inp.name) in NODE_WIDGETS:
        return True, NODE_WIDGETS[(spec.id, inp.name)]
    if inp.widget in ("model_file", "image_file"):
        if inp.widget == "model_file":
            choices = list_models(settings, inp.model_kind or "")
            where = f"a ModelFile[{inp.model_kind!r}] file (see prepare_home)"
        else:
            folder = settings.inputs
            choices = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
            where = "an uploaded image (see prepare_home)"
        small = ([c for c in choices if c.startswith("embedded/")]
                 + [c for c in choices if c in HOME_MODELS or c == UPLOAD])
        if small:
            return True, small[0]
        if inp.required:
            raise ContractGap(f"node {spec.id!r}, input {inp.name!r}: no choice for {where}; add one "
                              "to prepare_home or NODE_WIDGETS in tests/nodes/contract_providers.py")
        return False, None
    candidates = list(OVERRIDES.get(inp.name, ()))
    if candidates and inp.widget in ("int", "float") and inp.ge is not None:
        candidates.append(int(inp.ge) if inp.widget == "int" else inp.ge)
    for value in candidates:
        if check_widget_value(spec.id, inp, value) is None:
            return True, value
    if inp.required:
        raise ContractGap(f"node {spec.id!r}: required widget {inp.name!r} ({inp.type_name}) has no "
                          "default; add a value for it to OVERRIDES (by input name) or NODE_WIDGETS "
                          "in tests/nodes/contract_providers.py")
    return False, None


def _add_provider(nodes: dict[str, dict[str, Any]], name: str) -> None:
    """Add provider ``name`` and, first, the providers its inputs link to."""
    node_id = f"p_{name}"
    if node_id in nodes:
        return
    entry = PROVIDER_NODES[name]
    for value in entry["inputs"].values():
        if isinstance(value, dict) and "node" in value:
            _add_provider(nodes, value["node"].removeprefix("p_"))
    nodes[node_id] = {"type": entry["type"], "inputs": dict(entry["inputs"])}


def build_graph(spec: NodeSpec, settings: Settings) -> Graph:
    """The workflow that runs ``spec`` once on small inputs; ContractGap when an input is not covered."""
    nodes: dict[str, dict[str, Any]] = {}
    inputs: dict[str, Any] = {}
    links: dict[str, tuple[str, str]] = {}
    used: dict[str, int] = {}
    for inp in spec.inputs:
        if inp.kind == "widget":
            set_it, value = _widget_value(spec, inp, settings)
            if set_it:
                inputs[inp.name] = value
            continue
        tname = type_name(inp.type)
        source = NODE_SOCKETS.get((spec.id, inp.name))
        if source is None and tname in PROVIDERS:
            variants = PROVIDERS[tname]
            source = variants[used.get(tname, 0) % len(variants)]
            used[tname] = used.get(tname, 0) + 1
        if source is None:
            if not inp.required:
                continue  # an optional socket nothing makes stays unconnected
            raise ContractGap(f"node {spec.id!r}, input {inp.name!r}: no provider for socket type "
                              f"{tname!r}; add a provider node to PROVIDER_NODES and the type to "
                              "PROVIDERS (or the input to NODE_SOCKETS) in "
                              "tests/nodes/contract_providers.py")
        _add_provider(nodes, source[0])
        inputs[inp.name] = link(*source)
        links[inp.name] = (f"p_{source[0]}", source[1])
    nodes[TARGET] = {"type": spec.id, "inputs": inputs}
    return Graph(nodes, links)


# --- the files some nodes read --------------------------------------------------------
def prepare_home(home: Path, shipped_models: Path) -> None:
    """Write the files some nodes read that Loom embeds no model for: an uploaded RGBA image,
    the embedded VAE linked as a VAE folder, a tiny single-file checkpoint and upscale model."""
    from PIL import Image as PILImage

    models = home / "models"
    for folder in ("input", "models/vae", "models/checkpoints", "models/upscale_models"):
        (home / folder).mkdir(parents=True, exist_ok=True)
    rgba = torch.zeros(32, 32, 4, dtype=torch.uint8)
    rgba[..., 0] = torch.arange(32, dtype=torch.uint8)[None] * 8
    rgba[..., 1] = 128
    rgba[..., 3] = 255
    rgba[8:24, 8:24, 3] = 0  # a transparent square: the mask
    PILImage.fromarray(rgba.numpy(), "RGBA").save(home / "input" / UPLOAD)
    from safetensors.torch import save_file
    save_file({"latent_tensor": torch.zeros(1, 4, 4, 4), "latent_format_version_0": torch.tensor([])},
              str(home / "input" / LATENT_FILE))
    ldm = shipped_models / "embedded" / "shapes-ldm"
    (models / "vae" / VAE_FOLDER).symlink_to(ldm / "vae", target_is_directory=True)
    write_tiny_checkpoint(models / "checkpoints" / CHECKPOINT)
    write_tiny_upscaler(models / "upscale_models" / UPSCALER)
    from tiny_clip import write_tiny_clip
    write_tiny_clip(models / "clip" / CLIP_FOLDER)
    write_dit_files(models)
    from loom_nodes._lib.diffusion.tiny_dit import save_transformer_folder, tiny_minilm_dit
    save_transformer_folder(models / "diffusers" / DIT_FOLDER, tiny_minilm_dit(seed=0),
                            loom={"kind": "diffusers", "text_encoder": "minilm"})


def write_tiny_upscaler(path: Path) -> None:
    """A random ×2 RRDBNet (ESRGAN layout) with one block of 8 features."""
    from safetensors.torch import save_file

    from loom_nodes._lib.upscale import RRDBConfig, RRDBNet

    torch.manual_seed(0)
    net = RRDBNet(RRDBConfig(num_feat=8, num_block=1, num_grow=4, n_up=1))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))


def write_tiny_checkpoint(path: Path) -> None:
    """A random-weight SD 1.x-shaped single file (UNet, VAE, CLIP) of about a million weights."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from safetensors.torch import save_file
    from test_diffusion_single_file import clip_to_ldm, unet_to_ldm, vae_to_ldm
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=64,
        attention_head_dim=8, norm_num_groups=32)
    vae = AutoencoderKL(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32),
                        down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, layers_per_block=1, norm_num_groups=32)
    clip = CLIPTextModel(CLIPTextConfig(
        vocab_size=1000, hidden_size=64, intermediate_size=96, num_hidden_layers=1, num_attention_heads=1,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=2, pad_token_id=1,
        hidden_act="quick_gelu"))
    sd = {**unet_to_ldm(unet.state_dict(), unet.config), **vae_to_ldm(vae.state_dict(), 2),
          **clip_to_ldm(clip.state_dict())}
    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


# --- snapshots: what a value holds, to compare before/after and run against run -------
_MAX_DEPTH = 5
_PLAIN = (type(None), bool, int, float, complex, str, bytes, enum.Enum, Path, torch.dtype, torch.device)


def snapshot(value: Any, depth: int = 0, path: tuple[int, ...] = ()) -> Any:
    """A copy of what ``value`` holds: tensors cloned, modules as their state dicts (cloned),
    containers, dataclasses and plain objects walked (``_MAX_DEPTH`` deep)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, _PLAIN):
        return value
    name = type(value).__qualname__
    if id(value) in path or depth >= _MAX_DEPTH:
        return ("object", name, {})
    path = (*path, id(value))
    if isinstance(value, torch.nn.Module):
        return ("module", name, {k: snapshot(v, depth + 1, path) for k, v in value.state_dict().items()})
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return ("sequence", name, {str(i): snapshot(v, depth + 1, path) for i, v in enumerate(items)})
    if isinstance(value, Mapping):
        return ("mapping", name, {str(k): snapshot(v, depth + 1, path) for k, v in value.items()})
    if dataclasses.is_dataclass(value):
        return ("object", name, {f.name: snapshot(getattr(value, f.name, None), depth + 1, path)
                                 for f in dataclasses.fields(value)})
    attrs = getattr(value, "__dict__", None)
    if isinstance(attrs, dict):
        return ("object", name, {k: snapshot(v, depth + 1, path) for k, v in attrs.items()})
    return ("object", name, {})


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.is_floating_point() or a.is_complex():
        return bool(torch.equal(a, b) or torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True))
    return bool(torch.equal(a, b))


def difference(a: Any, b: Any, where: str = "", ignore: Mapping[str, str] | None = None) -> str | None:
    """Where two snapshots differ, and how (None when equal). ``ignore``: "Class.field" keys skipped."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)):
            return f"{where or 'value'}: {type(a).__name__} vs {type(b).__name__}"
        if _same_tensor(a, b):
            return None
        detail = f"shape {tuple(a.shape)} {a.dtype} vs {tuple(b.shape)} {b.dtype}"
        if a.shape == b.shape and a.dtype == b.dtype:
            if a.is_floating_point() or a.is_complex():
                gap = float((a - b).abs().double().nan_to_num(math.inf).max())
                detail = f"max |difference| {gap:.3g}"
            else:
                detail = f"{int((a != b).sum())} of {a.numel()} elements differ"
        return f"{where or 'tensor'}: {detail}"
    if isinstance(a, tuple) and len(a) == 3 and isinstance(b, tuple) and len(b) == 3 \
            and isinstance(a[2], dict) and isinstance(b[2], dict):
        if a[:2] != b[:2]:
            return f"{where or 'value'}: {a[1]} vs {b[1]}"
        if a[2].keys() != b[2].keys():
            return f"{where or a[1]}: keys {sorted(a[2])[:8]} vs {sorted(b[2])[:8]}"
        for key in a[2]:
            if ignore and f"{a[1]}.{key}" in ignore:
                continue
            found = difference(a[2][key], b[2][key], f"{where}.{key}" if where else key, ignore)
            if found:
                return found
        return None
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return None
    if type(a) is not type(b) or a != b:
        return f"{where or 'value'}: {a!r} vs {b!r}"
    return None
