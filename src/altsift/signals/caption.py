"""Signal ``caption``: synthetic captions (Nguyen et al. 2023), generated or read from a file.

Outputs ``synthetic_captions`` (list of strings, ``num_return_sequences`` per sample) and
``synthetic_caption`` (the first). The ``clip`` signal scores ``synthetic_caption`` into
``clip_score_synthetic`` (its ``extra_texts`` option); the mixing presets in ``select/mixing.py`` use both.

Default model: ``Salesforce/blip2-opt-2.7b``, Nguyen et al.'s captioner family (BLIP-2; which BLIP-2
checkpoint they used is UNVERIFIED). SIEVE instead uses BLIP-base 14M pre-trained (no HF port) with
nucleus sampling x8 -- see docs/captions.md and the ``sieve`` signal.
Decoding defaults (top-k 50 sampling, temperature 1, 5-30 new tokens) are our choice: Nguyen et al.'s
exact values are UNVERIFIED (their released captions were sampled at temperatures 0.5-2.0).

``from_file``: reuse captions computed elsewhere (e.g. the released BLIP-2 captions of the DataComp
medium pool, HF ``thaottn/DataComp_medium_pool_BLIP2_captions``). A CSV or parquet file (or a glob /
comma-separated list of them) keyed by uid: columns ``uid`` and either a caption column (``blip2-cap``, the
header the released files are reported to use, or ``caption``; one row per caption, several rows per uid allowed) or ``captions`` (a list; in a
CSV written as a JSON or Python list). No model is loaded and images are not decoded.
"""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import Field, model_validator

from altsift.errors import ConfigError
from altsift.models.base import GenerationOptions, load_model
from altsift.signals.base import (
    Batch,
    Columns,
    ModelOptions,
    Resources,
    Signal,
    batch_len,
    ok_rows,
    scatter,
)
from altsift.signals.registry import register_signal

log = logging.getLogger(__name__)

UID_COLUMNS = ("uid", "key", "sample_id", "id")
LIST_COLUMNS = ("captions", "synthetic_captions", "all_generated_caption_list")
# ``blip2-cap``: the header the released Nguyen et al. CSVs are reported to use (UNVERIFIED here: the files are
# not reachable; set ``caption.caption_column`` when yours differs). ``text`` is not a
# candidate: in DataComp-style tables it is the raw alt-text, never a synthetic caption.
TEXT_COLUMNS = (
    "blip2-cap",
    "blip2_cap",
    "caption",
    "blip2_caption",
    "synthetic_caption",
    "generated_caption",
    "generatedtext",
)

IMAGE_OPTION_KEYS = ("image_size", "resize", "crop", "interpolation", "normalize", "image_mean", "image_std")


class CaptionOptions(ModelOptions):
    model: str = Field(
        "Salesforce/blip2-opt-2.7b", description="captioner: hub id, local dir, or ALTSIFT_MODELS_DIR name"
    )
    backend: str = Field(
        "auto", description="blip | blip2 | git | open_clip_coca | mini | auto (from the checkpoint config)"
    )
    batch_size: int = 16
    do_sample: bool = Field(True, description="sample (seeded per sample) instead of greedy / beam search")
    num_beams: int = 1
    top_k: int | None = Field(50, description="top-k sampling (None or 0: off)")
    top_p: float | None = Field(None, description="nucleus sampling (None or 1.0: off)")
    temperature: float = 1.0
    min_length: int | None = Field(None, description="HF semantics: counts the prompt / query tokens")
    max_length: int | None = Field(None, description="HF semantics: counts the prompt / query tokens")
    min_new_tokens: int | None = 5
    max_new_tokens: int | None = 30
    repetition_penalty: float = 1.0
    num_return_sequences: int = Field(1, ge=1, description="captions per image")
    prompt: str | None = Field(
        None, description="decoder prompt, stripped from the output (SIEVE: 'a picture of ')"
    )
    seed: int = Field(0, description="global seed; each sample's seed is derived from it and the sample uid")
    # image input (HF backends blip / blip2 / git); "processor" = what the checkpoint's image processor does
    image_size: int | None = Field(
        None, ge=1, description="model input side in px (None: the image processor's; SIEVE: 224)"
    )
    resize: Literal["processor", "squash", "shortest_side"] = Field(
        "processor",
        description="squash to size x size (BLIP's processor) or short side to size (open_clip, SIEVE)",
    )
    crop: Literal["processor", "center", "none"] = Field(
        "processor",
        description="center crop to size x size after the resize (open_clip / torchvision offsets)",
    )
    interpolation: Literal["processor", "bicubic", "bilinear", "nearest", "lanczos", "box", "hamming"] = (
        Field("processor", description="PIL resampling filter of the resize")
    )
    normalize: Literal["processor", "clip", "imagenet", "custom"] = Field(
        "processor", description="mean/std: OpenAI CLIP's, ImageNet's, or image_mean / image_std"
    )
    image_mean: list[float] | None = Field(None, description="3 values, with normalize: custom")
    image_std: list[float] | None = Field(None, description="3 values, with normalize: custom")
    from_file: str | None = Field(
        None, description="CSV/parquet (glob or comma list) of captions keyed by uid"
    )
    uid_column: str | None = Field(
        None, description=f"uid column of from_file (default: first of {UID_COLUMNS})"
    )
    caption_column: str | None = Field(
        None, description=f"caption column of from_file (default: first of {LIST_COLUMNS + TEXT_COLUMNS})"
    )
    match_on: Literal["uid", "key"] = Field(
        "uid", description="batch column matched against the file's uid column"
    )

    @model_validator(mode="after")
    def _check_image_options(self) -> CaptionOptions:
        custom = self.normalize == "custom"
        if custom and (len(self.image_mean or ()) != 3 or len(self.image_std or ()) != 3):
            raise ValueError("normalize: custom needs image_mean and image_std with 3 values each")
        if not custom and (self.image_mean is not None or self.image_std is not None):
            raise ValueError("image_mean / image_std are only used with normalize: custom")
        if self.resize == "shortest_side" and self.crop == "none":
            raise ValueError(
                "resize: shortest_side needs crop: center (uncropped images of different shapes "
                "cannot be batched)"
            )
        return self

    def image_options(self) -> dict[str, Any]:
        """The image settings handed to the captioner adapter (``ModelSpec.options['image']``)."""
        return {k: getattr(self, k) for k in IMAGE_OPTION_KEYS}

    def image_options_set(self) -> bool:
        """True when any image setting differs from the checkpoint's own preprocessing."""
        o = self.image_options()
        return o["image_size"] is not None or any(o[k] != "processor" for k in IMAGE_OPTION_KEYS[1:5])

    def spec(self) -> Any:
        spec = super().spec()
        spec.options = {"image": self.image_options()}
        return spec

    def generation(self) -> GenerationOptions:
        return GenerationOptions(
            do_sample=self.do_sample,
            num_beams=self.num_beams,
            top_k=self.top_k,
            top_p=self.top_p,
            temperature=self.temperature,
            min_length=self.min_length,
            max_length=self.max_length,
            min_new_tokens=self.min_new_tokens,
            max_new_tokens=self.max_new_tokens,
            repetition_penalty=self.repetition_penalty,
            num_return_sequences=self.num_return_sequences,
            prompt=self.prompt,
        )


@register_signal
class CaptionSignal(Signal):
    """Synthetic captions per sample (model-generated, or looked up in ``from_file``)."""

    name: ClassVar[str] = "caption"
    Options = CaptionOptions
    columns: ClassVar[tuple[str, ...]] = ("synthetic_captions", "synthetic_caption")
    column_types = {"synthetic_captions": pa.list_(pa.string()), "synthetic_caption": pa.string()}
    resources = Resources(cpus=1, gpus=1, memory_gb=8)

    def input_fingerprint(self) -> list[list[Any]] | None:
        """Name, size and mtime of each ``from_file`` file: an edited caption file is read again."""
        if not self.options.from_file:  # type: ignore[attr-defined]
            return None
        return [
            [str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns]
            for p in _expand(self.options.from_file)
        ]  # type: ignore[attr-defined]

    @property  # type: ignore[override]
    def needs_image(self) -> bool:  # per instance, from options only (the runner probes it before __init__)
        return not self.options.from_file  # type: ignore[attr-defined]

    def required_resources(self) -> Resources:
        """Captions read from a file need no model, hence no GPU."""
        if self.options.from_file:  # type: ignore[attr-defined]
            return Resources(cpus=1, memory_gb=1)
        return super().required_resources()

    def __init__(self, options: Any = None) -> None:
        super().__init__(options)
        o: CaptionOptions = self.options  # type: ignore[assignment]
        self.captioner: Any = None
        self.table: dict[str, list[str]] | None = None
        self.n_missing = 0
        if o.from_file:
            self.table = load_caption_file(o.from_file, o.uid_column, o.caption_column)
        else:
            self.captioner = load_model("captioner", o.spec(), default_backend="blip2")
            self.gen = o.generation()
            if o.image_options_set() and not getattr(self.captioner, "supports_image_options", False):
                log.warning(
                    "caption: backend %s has its own fixed image preprocessing; the image options "
                    "(image_size, resize, crop, interpolation, normalize) do not apply to it",
                    type(self.captioner).__name__,
                )

    def __call__(self, batch: Batch) -> Columns:
        o: CaptionOptions = self.options  # type: ignore[assignment]
        n = batch_len(batch)
        if self.table is not None:
            idx = ok_rows(batch)
            keys = batch[o.match_on]
            found = [self.table.get(str(keys[i])) for i in idx]
            missing = sum(c is None for c in found)
            if missing:
                self.n_missing += missing
                log.warning(
                    "caption.from_file: %d of %d rows have no caption in %s (%d so far)",
                    missing,
                    len(idx),
                    o.from_file,
                    self.n_missing,
                )
            caps: list[Any] = found
        else:
            from altsift.models.captioners import seed_for

            idx = ok_rows(batch, need_image=True)
            uids = batch.get("uid") or batch.get("key") or [None] * n
            seeds = [seed_for(str(uids[i] if uids[i] is not None else batch["key"][i]), o.seed) for i in idx]
            caps = self.captioner.caption([batch["image"][i] for i in idx], self.gen, seeds) if idx else []
        lists = scatter(n, idx, caps)
        return {
            "synthetic_captions": lists,
            "synthetic_caption": [c[0] if c else None for c in lists],
        }


def _expand(spec: str) -> list[Path]:
    paths: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        hits = sorted(glob.glob(str(Path(part).expanduser())))
        if not hits:
            raise ConfigError(f"caption.from_file: no file matches '{part}'")
        paths.extend(Path(h) for h in hits)
    return paths


def _pick(columns: list[str], wanted: str | None, candidates: tuple[str, ...], what: str, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise ConfigError(
                f"caption.from_file: {path} has no {what} column '{wanted}' (columns: {columns})"
            )
        return wanted
    lower = {c.lower(): c for c in columns}
    for c in candidates:
        if c in lower:
            return lower[c]
    raise ConfigError(
        f"caption.from_file: cannot find a {what} column in {path} (columns: {columns}); "
        f"set caption.{'uid_column' if what == 'uid' else 'caption_column'}"
    )


def _read_columns(path: Path) -> list[str]:
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return list(pq.read_schema(path).names)
    import pandas as pd

    return list(pd.read_csv(path, nrows=0).columns)


def load_caption_file(
    spec: str, uid_column: str | None = None, caption_column: str | None = None
) -> dict[str, list[str]]:
    """uid -> captions from CSV / parquet files (``caption`` rows or ``captions`` lists), file order kept."""
    import pandas as pd

    table: dict[str, list[str]] = {}
    for path in _expand(spec):
        if path.suffix not in (".csv", ".parquet", ".tsv") and not path.name.endswith((".csv.gz", ".tsv.gz")):
            raise ConfigError(f"caption.from_file: {path} is neither .csv nor .parquet")
        cols = _read_columns(path)
        ucol = _pick(cols, uid_column, UID_COLUMNS, "uid", path)
        ccol = _pick(cols, caption_column, LIST_COLUMNS + TEXT_COLUMNS, "caption", path)
        if path.suffix == ".parquet":
            df = pd.read_parquet(path, columns=[ucol, ccol])
        else:
            sep = "\t" if ".tsv" in path.name else ","
            df = pd.read_csv(path, usecols=[ucol, ccol], sep=sep, dtype={ucol: str}, keep_default_na=False)
        parse = path.suffix != ".parquet" and ccol.lower() in LIST_COLUMNS  # CSV lists arrive as text
        for uid, cap in zip(df[ucol].astype(str), df[ccol], strict=True):
            caps = _as_list(_parse_list(cap) if parse else cap)
            if caps:
                table.setdefault(uid, []).extend(caps)
    return table


def _parse_list(value: Any) -> Any:
    """A list written into a CSV cell (``["a", "b"]`` JSON or ``['a', 'b']`` Python repr) as a list."""
    if not isinstance(value, str) or not value.strip().startswith("["):
        return value
    import ast
    import json

    try:
        return json.loads(value)
    except ValueError:
        try:
            return ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value


def _as_list(value: Any) -> list[str]:
    """A caption cell as a list of non-empty strings (accepts lists, arrays, strings)."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value] if value.strip() else []
    if hasattr(value, "__iter__"):
        return [str(v) for v in value if isinstance(v, str) and v.strip()]
    return []
