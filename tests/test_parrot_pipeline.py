"""End to end: ``altsift score`` with ocr, parrot and text_removal (tiny CLIP) on a real-photo shard."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from PIL import Image
from skimage import data
from typer.testing import CliRunner

from altsift.analysis.probe import overlay_text
from altsift.cli import _load_commands, app
from helpers_clip import make_tiny_clip
from helpers_shards import sample, write_tar


def _jpeg(im: Image.Image) -> bytes:
    b = io.BytesIO()
    im.save(b, "JPEG", quality=92)
    return b.getvalue()


def test_score_ocr_parrot_text_removal(tmp_path):
    _load_commands()
    ckpt = make_tiny_clip(tmp_path / "clip")
    text_img, _ = overlay_text(
        Image.fromarray(data.chelsea()).resize((360, 240)), "Hogsmeade Station", font_size=28
    )
    plain = Image.fromarray(data.coffee()).resize((300, 200))
    items = []
    for i, (im, cap) in enumerate(
        [(text_img, "Hogsmeade Station at night"), (plain, "a cup of coffee"), (text_img, "a cat")]
    ):
        s = sample(i, cap, w=im.width, h=im.height)
        s["jpg"] = _jpeg(im)
        items.append((f"00000{i:04d}", s))
    shard = write_tar(tmp_path / "shards" / "00000.tar", items)
    run = tmp_path / "run"
    args = ["score", str(shard), "-o", str(run), "-s", "ocr,parrot", "--set", "score.progress=false"]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output + repr(r.exception)
    # second pass adds text_removal, reading the stored OCR columns back from parquet
    args = [
        "score",
        str(shard),
        "-o",
        str(run),
        "-s",
        "ocr,parrot,text_removal",
        "--set",
        f"text_removal.model={ckpt}",
    ]
    r = CliRunner().invoke(app, args + ["--set", "score.progress=false"])
    assert r.exit_code == 0, r.output + repr(r.exception)
    df = pd.read_parquet(run / "scores" / "00000.parquet").sort_values("key", ignore_index=True)
    assert df["has_text"].tolist() == [True, False, True]
    assert df["cotr"].tolist() == pytest.approx([0.5, 0.0, 0.0])  # {Hogsmeade, Station} of 4 caption words
    assert df["is_parrot"].tolist() == [True, False, False]
    assert df["co_emb_text"][0] == "Hogsmeade Station"
    assert len(df["ocr_polygons"][0]) >= 1 and len(df["ocr_polygons"][0][0]) == 4
    # not applicable is null (issue 14 item 3): no text -> no rsa/rsc; text but no Co-Emb. -> no rsc
    assert df["rsa"].isna().tolist() == [False, True, False]
    assert df["rsc"].isna().tolist() == [False, True, True]
    assert df["rsa"][0] == pytest.approx(df["clip_score_raw"][0] - df["clip_score_all_removed"][0])
