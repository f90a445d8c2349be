"""HF CLIP adapter: exact preprocessing, scores equal to the raw transformers model, loading errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from altsift.errors import ModelNotFoundError
from altsift.models.base import ModelSpec, load_model
from altsift.models.hf_clip import HFCLIP, CLIPPreprocessor
from helpers_clip import make_tiny_clip

TEXTS = ["the dog", "a cat on the mat " * 30, "x", "The DOG and  the cat!", "réservé 123", ""]


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    return make_tiny_clip(tmp_path_factory.mktemp("tinyclip"))


def _images(seed: int = 0) -> list[Image.Image]:
    rng = np.random.default_rng(seed)
    shapes = [(40, 50), (64, 33), (32, 32), (20, 17), (100, 31), (33, 64)]
    imgs = [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in shapes]
    rgba = Image.fromarray(rng.integers(0, 256, (45, 45, 4), dtype=np.uint8), "RGBA")
    gray = Image.fromarray(rng.integers(0, 256, (50, 70), dtype=np.uint8), "L")
    return [*imgs, rgba, gray]


def _reference(path, images, texts):
    """Independent computation with the raw transformers model + the library's PIL image processor."""
    from transformers import AutoTokenizer, CLIPImageProcessorPil, CLIPModel

    model = CLIPModel.from_pretrained(path).eval()
    tok = AutoTokenizer.from_pretrained(path)
    px = CLIPImageProcessorPil.from_pretrained(path)(images, return_tensors="pt")["pixel_values"]
    enc = tok(texts, padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ie = model.get_image_features(pixel_values=px).pooler_output
        te = model.get_text_features(**enc).pooler_output
    ie = ie / ie.norm(dim=-1, keepdim=True)
    te = te / te.norm(dim=-1, keepdim=True)
    return px, ie.numpy(), te.numpy()


def test_preprocessing_bit_identical_to_clip_image_processor(tiny_clip):
    from transformers import CLIPImageProcessorPil

    m = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu"))
    imgs = _images()
    ref = CLIPImageProcessorPil.from_pretrained(tiny_clip)(imgs, return_tensors="pt")["pixel_values"]
    assert torch.equal(m.preprocess(imgs), ref)


@pytest.mark.parametrize("size", [224, 64])
def test_preprocessing_default_openai_config_and_padding_crop(size):
    from transformers import CLIPImageProcessorPil

    rng = np.random.default_rng(1)
    imgs = [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(300, 257), (90, 500)]
    ]
    kw = {"size": {"shortest_edge": size}, "crop_size": {"height": size, "width": size}}
    ref = CLIPImageProcessorPil(**kw)(imgs, return_tensors="pt")["pixel_values"]
    mine = CLIPPreprocessor.from_config(kw, size)(imgs)
    assert torch.equal(mine, ref)
    # crop larger than the resized image: reference zero-pads before normalising
    kw = {"size": {"shortest_edge": 20}, "crop_size": {"height": 31, "width": 25}}
    ref = CLIPImageProcessorPil(**kw)(imgs, return_tensors="pt")["pixel_values"]
    assert torch.equal(CLIPPreprocessor.from_config(kw, 20)(imgs), ref)


def test_embeddings_match_raw_transformers(tiny_clip):
    imgs, texts = _images()[: len(TEXTS)], TEXTS
    _, ie, te = _reference(tiny_clip, imgs, texts)
    m = load_model("image_text", ModelSpec(model=str(tiny_clip), device="cpu", batch_size=4), "hf_clip")
    assert isinstance(m, HFCLIP) and m.image_size == 32 and m.context_length == 77
    a, b = m.encode_images(imgs), m.encode_texts(texts)
    assert a.dtype == np.float32 and a.shape == ie.shape
    np.testing.assert_allclose(a, ie, atol=1e-5)
    np.testing.assert_allclose(b, te, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    # the long text is truncated to 77 tokens, end-of-text kept last
    ids = m.tokenize(texts)
    assert max(len(x) for x in ids) == 77 and ids[1][-1] == m.tokenizer.eos_token_id


def test_batch_size_and_order_invariance(tiny_clip):
    imgs, texts = _images(), TEXTS
    m1 = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", batch_size=1))
    m7 = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", batch_size=7))
    np.testing.assert_allclose(m1.encode_images(imgs), m7.encode_images(imgs), atol=1e-5)
    np.testing.assert_allclose(m1.encode_texts(texts), m7.encode_texts(texts), atol=1e-5)
    perm = np.random.default_rng(0).permutation(len(texts))
    np.testing.assert_allclose(
        m7.encode_texts([texts[i] for i in perm]), m7.encode_texts(texts)[perm], atol=1e-5
    )
    assert m7.encode_images([]).shape == (0, 16)


def test_bf16_autocast_close_to_fp32(tiny_clip):
    m = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu", precision="bf16"))
    ref = HFCLIP(ModelSpec(model=str(tiny_clip), device="cpu")).encode_texts(TEXTS[:3])
    got = m.encode_texts(TEXTS[:3])
    assert got.dtype == np.float32
    assert np.abs(got - ref).max() < 0.1  # bf16 rounding, same model


def test_missing_model_raises_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(ModelNotFoundError) as e:
        load_model("image_text", ModelSpec(model="openai/clip-vit-base-patch32"), "hf_clip")
    msg = str(e.value)
    assert (
        "openai/clip-vit-base-patch32" in msg and "ALTSIFT_MODELS_DIR" in msg and str(tmp_path / "hub") in msg
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotFoundError, match="could not load the image_text model"):
        load_model("image_text", ModelSpec(model=str(empty), backend="hf_clip"), "hf_clip")


def test_models_dir_lookup(tiny_clip, tmp_path, monkeypatch):
    import shutil

    shutil.copytree(tiny_clip, tmp_path / "acme--tiny-clip")
    monkeypatch.setenv("ALTSIFT_MODELS_DIR", str(tmp_path))
    m = load_model("image_text", ModelSpec(model="acme/tiny-clip", device="cpu"), "hf_clip")
    assert m.encode_texts(["a dog"]).shape == (1, 16)


def test_open_clip_without_torchvision_gives_clear_error():
    pytest.importorskip("torch")
    try:
        import open_clip  # noqa: F401

        pytest.skip("open_clip importable here")
    except Exception:
        pass
    with pytest.raises(ModelNotFoundError, match="torchvision"):
        load_model("image_text", ModelSpec(model="open_clip:ViT-B-32/laion2b_s34b_b79k"), "hf_clip")
