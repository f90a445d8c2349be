"""Small runs for the report tests: the bundled demo shards scored with ``basic`` and two subsets."""

from __future__ import annotations

import shutil
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

from altsift.config import build_config
from altsift.pipeline.score import score
from altsift.select.core import SelectRequest, run_selection, write_selection

A_WHERE = "basic_pass"
B_WHERE = "lang_score >= 0.5"
B_TOP = ("caption_num_words", 0.5)


def demo_run(tmp: Path) -> tuple[Path, Path, Path]:
    """Copy the demo shards to ``tmp/shards``, score them into ``tmp/run``, select A and B."""
    src = Path(str(resources.files("altsift") / "assets" / "demo" / "shards"))
    shards = tmp / "shards"
    shutil.copytree(src, shards)
    cfg = build_config({"signals": ["basic"], "score": {"progress": False}})
    run = tmp / "run"
    score([str(p) for p in sorted(shards.glob("*.tar"))], run, cfg.signals, cfg)
    a, b = run / "a.npy", run / "b.npy"
    df, sel = run_selection(run, SelectRequest(where=[A_WHERE]))
    write_selection(df, sel, a, run)
    df, sel = run_selection(run, SelectRequest(where=[B_WHERE], top_fraction={B_TOP[0]: B_TOP[1]}))
    write_selection(df, sel, b, run)
    return run, a, b


class Tags(HTMLParser):
    """Every start tag with its attributes, plus the page text."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[dict[str, str | None]]:
        out = []
        for t, a in self.tags:
            if t != tag:
                continue
            if all(
                (k == "class_" and v in (a.get("class") or "").split()) or (k != "class_" and a.get(k) == v)
                for k, v in attrs.items()
            ):
                out.append(a)
        return out

    def ids(self) -> set[str]:
        return {a["id"] for _, a in self.tags if a.get("id")}
