"""What reaches the captioner: SIEVE's image input (open_clip's ViT-B-32 eval transform) vs the processor's.

The reference below is written from the definition of open_clip's validation transform (the one
SIEVE's ``webdataset_inference.py`` applies before BLIP, ``blip_decoder(image_size=224)``):
``Resize(224, BICUBIC)`` on the short side, ``CenterCrop(224)``, ``ToTensor``, ``Normalize(OPENAI_DATASET_MEAN,
OPENAI_DATASET_STD)``, with torchvision's documented arithmetic (no torchvision here: PIL + torch).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from altsift.errors import ConfigError
from altsift.models.base import ModelSpec, load_model
from altsift.signals.caption import CaptionSignal
from altsift.signals.sieve import sieve_caption_defaults
from helpers_captioner import make_tiny_blip, make_tiny_blip2, make_tiny_git

# open_clip/constants.py OPENAI_DATASET_MEAN / OPENAI_DATASET_STD
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
IMAGE_KEYS = ("image_size", "resize", "crop", "interpolation", "normalize")


def open_clip_val_transform(img: Image.Image, size: int) -> torch.Tensor:
    """Resize(size, bicubic) + CenterCrop(size) + ToTensor + Normalize, as torchvision defines them."""
    img = img.convert("RGB")
    w, h = img.size
    # Resize(int): the smaller edge becomes `size`, the other int(size * long / short)
    if w <= h:
        nw, nh = size, int(size * h / w)
    else:
        nw, nh = int(size * w / h), size
    if (nw, nh) != (w, h):
        img = img.resize((nw, nh), Image.Resampling.BICUBIC)
    # CenterCrop: top = int(round((H - size) / 2.0)), left likewise
    top, left = int(round((nh - size) / 2.0)), int(round((nw - size) / 2.0))
    arr = np.asarray(img)[top : top + size, left : left + size]
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).to(torch.float32).div(255)  # ToTensor
    m = torch.tensor(MEAN, dtype=torch.float32)[:, None, None]
    s = torch.tensor(STD, dtype=torch.float32)[:, None, None]
    return x.sub(m).div(s)  # Normalize


def non_square_images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    # (w, h): landscape whose crop excess is 79 (torchvision starts at 40, a floor at 39), portrait,
    # a 4:3 photo size, one smaller than the crop (upsampled), and a grey one
    shapes = [(303, 224), (150, 331), (640, 480), (90, 60)]
    ims = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in shapes]
    ims.append(Image.fromarray(rng.integers(0, 256, (250, 500), dtype=np.uint8), "L"))
    return ims


def capture_pixels(captioner, images, **opts):
    """pixel_values as they enter the vision tower during ``caption``."""
    seen = []
    m = captioner.model
    vision = m.git.image_encoder if captioner.kind == "git" else m.vision_model
    h = vision.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(
            (kwargs.get("pixel_values", args[0] if args else None)).clone()
        ),
        with_kwargs=True,
    )
    try:
        from altsift.models.base import GenerationOptions

        captioner.caption(images, GenerationOptions(max_new_tokens=2, **opts), list(range(len(images))))
    finally:
        h.remove()
    return torch.cat(seen)


@pytest.fixture(scope="module")
def blip224(tmp_path_factory):
    # a BLIP ViT trained at 224 px whose saved processor squashes to 384, like the hub's BLIP checkpoints
    return make_tiny_blip(
        tmp_path_factory.mktemp("blip224") / "m", image_size=224, patch_size=32, processor_size=384
    )


def test_sieve_input_is_open_clip_crop_not_the_processor_squash(blip224):
    sieve = {k: sieve_caption_defaults()[k] for k in IMAGE_KEYS}
    assert sieve == {
        "image_size": 224,
        "resize": "shortest_side",
        "crop": "center",
        "interpolation": "bicubic",
        "normalize": "clip",
    }
    sig = CaptionSignal({**sieve_caption_defaults(), "model": str(blip224), "device": "cpu", "batch_size": 8})
    ims = non_square_images()
    got = capture_pixels(sig.captioner, ims)
    ref = torch.stack([open_clip_val_transform(im, 224) for im in ims])
    assert got.shape == (len(ims), 3, 224, 224)
    assert torch.equal(got, ref)
    assert not sig.captioner.interpolate  # the tower is trained at 224: no position-embedding interpolation
    # the checkpoint's processor alone squashes to 384 (what altsift did before)
    plain = load_model("captioner", ModelSpec(model=str(blip224), device="cpu"), "blip")
    assert plain.transform is None and plain.pixel_values(ims[:1]).shape[-1] == 384
    # transformers-style floor offsets would shift the landscape crop by one column
    floor = np.asarray(ims[0].convert("RGB"))[:, 39 : 39 + 224]
    x = torch.from_numpy(floor.copy()).permute(2, 0, 1).float() / 255 - torch.tensor(MEAN)[:, None, None]
    assert not torch.equal(got[0], x / torch.tensor(STD)[:, None, None])


@pytest.mark.parametrize("kind", ["git", "blip2"])
def test_other_backends_take_the_same_options(tmp_path, kind):
    path = {"git": make_tiny_git, "blip2": make_tiny_blip2}[kind](tmp_path / kind)
    opts = {k: sieve_caption_defaults()[k] for k in IMAGE_KEYS} | {"image_size": 32}
    sig = CaptionSignal({"model": str(path), "device": "cpu", "do_sample": False, **opts})
    assert sig.captioner.kind == kind and not sig.captioner.interpolate
    ims = non_square_images()
    got = capture_pixels(sig.captioner, ims)
    assert torch.equal(got, torch.stack([open_clip_val_transform(im, 32) for im in ims]))


def test_processor_default_unchanged_and_other_settings(tmp_path):
    from transformers import BlipImageProcessor

    path = make_tiny_blip(tmp_path / "blip")
    ims = non_square_images()[:3]
    m = load_model("captioner", ModelSpec(model=str(path), device="cpu"), "blip")
    ref = BlipImageProcessor.from_pretrained(path)(
        images=[i.convert("RGB") for i in ims], return_tensors="pt"
    )
    assert torch.equal(capture_pixels(m, ims), ref["pixel_values"])  # no option set: the processor's output
    # squash + custom mean/std + bilinear: each setting reaches the model
    opts = {
        "resize": "squash",
        "interpolation": "bilinear",
        "normalize": "custom",
        "image_mean": [0.5, 0.5, 0.5],
        "image_std": [0.25, 0.5, 1.0],
    }
    sig = CaptionSignal({"model": str(path), "device": "cpu", "do_sample": False, **opts})
    got = capture_pixels(sig.captioner, ims)
    for g, im in zip(got, ims, strict=True):
        a = np.asarray(im.convert("RGB").resize((32, 32), Image.Resampling.BILINEAR))
        x = torch.from_numpy(a.copy()).permute(2, 0, 1).float().div(255)
        want = (x - 0.5) / torch.tensor([0.25, 0.5, 1.0])[:, None, None]
        assert torch.equal(g, want)


def test_image_option_errors():
    with pytest.raises(ValueError, match="crop: center"):
        CaptionSignal.Options.model_validate({"resize": "shortest_side", "crop": "none"})
    with pytest.raises(ValueError, match="image_mean and image_std"):
        CaptionSignal.Options.model_validate({"normalize": "custom", "image_mean": [0.5, 0.5, 0.5]})
    with pytest.raises(ValueError, match="only used with normalize: custom"):
        CaptionSignal.Options.model_validate({"image_std": [0.5, 0.5, 0.5]})
    spec = CaptionSignal.Options.model_validate({"image_size": 64, "crop": "center"}).spec()
    assert spec.options["image"]["image_size"] == 64 and spec.options["image"]["resize"] == "processor"


def test_processor_without_crop_and_shortest_side_is_a_config_error(tmp_path):
    """The checkpoint's processor gives no crop; asking for a short-side resize alone cannot batch."""
    from altsift.models.captioners import HFCaptioner

    path = make_tiny_blip(tmp_path / "blip")
    spec = ModelSpec(model=str(path), device="cpu", options={"image": {"resize": "shortest_side"}})
    with pytest.raises(ConfigError, match="cannot be batched"):
        HFCaptioner(spec, "blip")
