"""Evaluation nodes for sweeps and ablations: KID, precision/recall, judge accuracy, CLIP score,
and the reference images they compare against.

Every metric node is an output node in category "metrics" whose outputs are plain numbers,
so a sweep collects them per cell ("<node>.<output>") into its table.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal, NamedTuple, Optional

import torch

from loom import (Context, Input, Settings, UserInputError, file_fingerprint, node, resolve_inside,
                  resolve_model)
from loom.types import Conditioning, FeatureExtractor, Image, ModelFile, Seed

from ._lib import eval_metrics as em
from ._lib.image_metrics import fmt
from ._lib.imageutil import to_pil
from ._lib.judge import ShapesJudge
from ._lib.shapes import COLOURS, SHAPES, make_batch, parse_caption
from .features import features_of, rgb
from .metrics import pooled_features

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")


class KIDValue(NamedTuple):
    kid: float
    std: float


class PrecisionRecall(NamedTuple):
    precision: float
    recall: float


class JudgeAccuracy(NamedTuple):
    overall: float
    colour: float
    shape: float
    size: float
    position: float


class ClipScore(NamedTuple):
    score: float


class ReferenceImages(NamedTuple):
    images: Image
    captions: str


def _features(ctx: Context, extractor: FeatureExtractor, layer: str, resize: bool,
              batches: dict[str, torch.Tensor]) -> tuple[str, dict[str, torch.Tensor]]:
    """The extractor's label and the (N, D) features of each named image batch."""
    f = features_of(extractor)
    (name,) = f.layers(layer, ("pooled",), "layer")
    label = f.label if name == "pooled" else f"{f.label}, {name}"
    return label, {k: pooled_features(ctx, f, v.float(), name, resize) for k, v in batches.items()}


@node(category="metrics", output=True)
def kid(ctx: Context, a: Image, b: Image, extractor: FeatureExtractor,
        subsets: int = Input(100, ge=1, le=10000, help="random subsets the MMD² is averaged over"),
        subset_size: int = Input(0, ge=0, le=100000, help="images per subset; 0 = all of the smaller batch"),
        seed: Seed = 0,
        layer: str = Input("pooled", help="layer whose (averaged) activations are compared"),
        resize: bool = Input(True, help="resize to the network's input size")) -> KIDValue:
    """Kernel Inception Distance: unbiased MMD² (cubic kernel) of two batches' features, with its std."""
    for name, t in (("a", a), ("b", b)):
        if t.shape[0] < 2:
            raise UserInputError(f"{name} has {t.shape[0]} image(s): KID needs at least 2 images per batch",
                                 input=name)
    smaller = min(a.shape[0], b.shape[0])
    if subset_size > smaller:
        raise UserInputError(f"subset_size {subset_size} is larger than the smaller batch ({smaller} images): "
                             f"use at most {smaller}, or 0 for all", input="subset_size")
    if subset_size == 1:
        raise UserInputError("subset_size 1: the unbiased MMD² needs at least 2 images per subset",
                             input="subset_size")
    label, feats = _features(ctx, extractor, layer, resize, {"a": a, "b": b})
    result = em.kid(feats["a"], feats["b"], subsets, subset_size, ctx.rng(int(seed)))
    title = f"KID ({label})"
    ctx.show(values={title: result.mean, f"{title} std": result.std},
             text=[f"{title}: {fmt(result.mean)} ± {fmt(result.std)} — {result.subsets} subsets of "
                   f"{result.subset_size} ({a.shape[0]} vs {b.shape[0]} images)"])
    return KIDValue(result.mean, result.std)


@node(category="metrics", output=True)
def precision_recall(ctx: Context, generated: Image, reference: Image, extractor: FeatureExtractor,
                     k: int = Input(3, ge=1, le=100, help="k-th nearest neighbour sets each sample's radius"),
                     layer: str = Input("pooled", help="layer whose (averaged) activations are compared"),
                     resize: bool = Input(True, help="resize to the network's input size")
                     ) -> PrecisionRecall:
    """Improved precision (realism) and recall (coverage) of generated images against reference images."""
    for name, t in (("generated", generated), ("reference", reference)):
        if t.shape[0] <= k:
            raise UserInputError(f"{name} has {t.shape[0]} image(s): k-NN radii with k={k} need more than "
                                 f"{k} images per batch (lower k or give more images)", input=name)
    label, feats = _features(ctx, extractor, layer, resize, {"g": generated, "r": reference})
    p, r = em.precision_recall(feats["r"], feats["g"], k)
    ctx.show(values={f"precision ({label})": p, f"recall ({label})": r},
             text=[f"precision {fmt(p)}, recall {fmt(r)} (k={k}, {generated.shape[0]} generated vs "
                   f"{reference.shape[0]} reference images, {label})"])
    return PrecisionRecall(p, r)


def prompts_for(ctx_node: str, count: int, text: str, conditioning: Optional[Conditioning]) -> list[str]:
    """One prompt per image: the text's lines (one for all, or one per image), else the conditioning's."""
    if text.strip():
        lines, where = [t for t in text.splitlines() if t.strip()], "text"
    elif conditioning is not None and any(t.strip() for t in conditioning.text):
        lines, where = list(conditioning.text), "conditioning"
    else:
        raise UserInputError(f"{ctx_node} needs the prompt: write it in 'text' or connect the conditioning "
                             "made from it", input="text")
    if len(lines) == 1:
        return lines * count
    if len(lines) != count:
        raise UserInputError(f"{len(lines)} prompts in {where} for {count} images: give one prompt for all "
                             "images or one per image", input=where)
    return lines


def judge_path(settings: Settings, judge: Path | str) -> Path:
    """The judge folder: a chosen ModelFile arrives resolved; the default arrives as its name."""
    return judge if isinstance(judge, Path) else resolve_model(settings, "judge", str(judge))


def _judge_fp(judge: Path | str = "", *, settings: Settings, **_: Any) -> str:
    try:
        return file_fingerprint(judge_path(settings, judge))
    except UserInputError:
        return "missing"


@node(category="metrics", output=True, fingerprint=_judge_fp)
def judge_accuracy(ctx: Context, images: Image,
                   text: str = Input("", multiline=True,
                                     help="the prompt(s): one line for all images or one per image; "
                                          "empty = the conditioning's text"),
                   conditioning: Optional[Conditioning] = None,
                   judge: ModelFile["judge"] = Input("embedded/shapes-judge",  # type: ignore[valid-type]
                                                     help="the shapes judge (a classifier of the shapes data)")
                   ) -> JudgeAccuracy:
    """Prompt alignment on the shapes models: how often the shapes judge reads the asked colour, shape, size, position."""
    prompts = prompts_for("judge_accuracy", images.shape[0], text, conditioning)
    targets = [em.prompt_targets(p) for p in prompts]
    if not any(targets):
        raise UserInputError(f"the prompt {prompts[0]!r} names no colour, shape, size or position the judge "
                             f"reads (shapes: {', '.join(SHAPES)}; colours: {', '.join(COLOURS)})",
                             input="text" if text.strip() else "conditioning")
    try:
        judge = judge_path(ctx.settings, judge)
    except UserInputError as exc:
        raise UserInputError(str(exc), input="judge") from None
    version = file_fingerprint(judge)
    try:
        model = ctx.models.load(f"judge:{version}", lambda: ShapesJudge.load(judge), label=f"judge {judge.name}",
                                source=str(judge), version=version)
    except (OSError, ValueError, KeyError, RuntimeError) as exc:
        raise UserInputError(f"cannot load the judge {judge.name!r}: {exc}", input="judge") from exc
    with ctx.models.use(model):
        pred = model.predict(rgb(images.float()).to(ctx.device))
    acc = em.judge_accuracy({k: v.cpu() for k, v in pred.items()}, targets)
    shown = {f"judge {k}": v for k, v in acc.items() if not math.isnan(v)}
    ctx.show(values=shown, text=[", ".join(f"{k} {fmt(v)}" for k, v in acc.items()) +
                                 f" ({images.shape[0]} images)"])
    return JudgeAccuracy(acc["overall"], acc["colour"], acc["shape"], acc["size"], acc["position"])


def _read_clip(path: Path) -> torch.nn.Module:
    from transformers import CLIPModel, CLIPProcessor
    model = CLIPModel.from_pretrained(str(path), local_files_only=True).eval()
    model.loom_processor = CLIPProcessor.from_pretrained(str(path), local_files_only=True)
    return model


def _clip_fp(model: Path | None = None, **_: Any) -> str:
    return file_fingerprint(model) if model is not None else "none"


@node(category="metrics", output=True, fingerprint=_clip_fp)
def clip_alignment(ctx: Context, images: Image,
                   model: ModelFile["clip"],  # type: ignore[valid-type]
                   text: str = Input("", multiline=True,
                                     help="the prompt(s): one line for all images or one per image; "
                                          "empty = the conditioning's text"),
                   conditioning: Optional[Conditioning] = None) -> ClipScore:
    """CLIP score: mean of max(100·cos(image, text), 0) with a CLIP model folder from models/clip/."""
    prompts = prompts_for("clip_alignment", images.shape[0], text, conditioning)
    version = file_fingerprint(model)
    try:
        clip = ctx.models.load(f"clip:{version}", lambda: _read_clip(model), label=f"CLIP {model.name}",
                               source=str(model), version=version)
    except (OSError, ValueError, KeyError) as exc:
        raise UserInputError(f"cannot load {model.name!r} as a transformers CLIP model folder (config, "
                             f"weights, tokenizer and image processor): {exc}", input="model") from exc
    proc = clip.loom_processor
    pil = [to_pil(rgb(images.float()), i).convert("RGB") for i in range(images.shape[0])]
    inputs = proc(text=prompts, images=pil, return_tensors="pt", padding=True, truncation=True)
    with ctx.models.use(clip):
        dev = {k: v.to(ctx.device) for k, v in inputs.items()}
        out = clip(input_ids=dev["input_ids"], attention_mask=dev.get("attention_mask"),
                   pixel_values=dev["pixel_values"].to(next(clip.parameters()).dtype))
    scores = em.clip_score(out.image_embeds.cpu(), out.text_embeds.cpu())
    value = float(scores.mean())
    ctx.show(values={f"CLIP score ({model.name})": value},
             text=[f"CLIP score {fmt(value)} over {images.shape[0]} images ({model.name})"])
    return ClipScore(value)


def _reference_fp(source: str = "shapes", folder: str = "", count: int = 0, seed: int = 0, size: int = 0,
                  *, settings: Settings, **_: Any) -> str:
    if source != "folder":
        return "shapes"  # a function of the literal inputs alone
    try:
        path = resolve_inside(settings.inputs, folder)
    except ValueError:
        return "invalid"
    return f"folder:{file_fingerprint(path)}:{count}:{size}" if path.is_dir() else "missing"


def square(img: Any, size: int) -> Any:
    """Centre-crop a PIL image to a square and resize it to size×size."""
    from PIL import Image as PILImage
    w, h = img.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return img.convert("RGB").resize((size, size), PILImage.Resampling.BICUBIC, box=box)


def _folder_images(ctx: Context, folder: str, count: int, size: int) -> ReferenceImages:
    from PIL import Image as PILImage

    from ._lib.imageutil import from_pil
    if not folder.strip():
        raise UserInputError("source is 'folder' but no folder is given: name a folder inside input/",
                             input="folder")
    try:
        root = resolve_inside(ctx.input_dir, folder)
    except ValueError as exc:
        raise UserInputError(f"folder {folder!r} {exc}: name a folder inside input/", input="folder") from None
    if not root.is_dir():
        raise UserInputError(f"folder {folder!r} not found in input/ ({ctx.input_dir})", input="folder")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    if len(files) < 2:
        raise UserInputError(f"folder {folder!r} holds {len(files)} image(s): a reference set needs at least 2",
                             input="folder")
    images, captions = [], []
    for p in files:
        try:
            with PILImage.open(p) as im:
                im.load()
                images.append(from_pil(square(im, size))[0])
        except (OSError, ValueError) as exc:
            raise UserInputError(f"cannot read image {p.name!r} in {folder!r}: {exc}", input="folder") from exc
        side = p.with_suffix(".txt")
        captions.append(side.read_text(errors="replace").strip().replace("\n", " ") if side.is_file() else "")
    return ReferenceImages(torch.cat(images), "\n".join(captions))


@node(category="metrics", fingerprint=_reference_fp)
def reference_set(ctx: Context, source: Literal["shapes", "folder"] = "shapes",
                  folder: str = Input("", help="a folder inside input/ (when source is 'folder')"),
                  count: int = Input(32, ge=2, le=4096, help="images (a folder gives its first, by name)"),
                  seed: Seed = 0,
                  size: int = Input(64, ge=16, le=1024, step=16,
                                    help="side of the square images (folders are centre-cropped)"),
                  prompt: str = Input("", help="shapes only: render just this caption (with the data set's "
                                               "jitter), e.g. 'a large red circle in the center on a blue "
                                               "background'; empty = random captions")
                  ) -> ReferenceImages:
    """Reference images for FID, KID and precision/recall: the shapes data set, or a folder of images."""
    if source == "folder":
        return _folder_images(ctx, folder, count, size)
    if prompt.strip():
        spec = parse_caption(prompt)
        if spec is None:
            raise UserInputError(f"prompt {prompt!r} is not a caption of the shapes data set: write 'a <small|"
                                 f"large> <colour> <shape> <position phrase> on a <colour> background'",
                                 input="prompt")
        images, captions = em.caption_batch(spec, count, int(seed), size)
        return ReferenceImages(images, "\n".join(captions))
    images, captions, _ = make_batch(count, int(seed), size=size)
    return ReferenceImages(images, "\n".join(captions))
