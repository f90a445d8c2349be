"""Build the compact WordNet 3.0 table used by the DataComp ``text_based`` preset.

Reads a WordNet 3.0 database directory (``index.{noun,verb,adj,adv}`` and ``{noun,verb,adj,adv}.exc``)
and writes ``src/altsift/assets/wordnet/wordnet30_first_synsets.tsv.gz`` with lines

    s<TAB>POS<TAB>LEMMA<TAB>FIRST_OFFSET     one per index entry (NLTK's sense order: first listed synset)
    e<TAB>POS<TAB>INFLECTED<TAB>BASE[ BASE]  one per exception-list entry (for morphy)

which is all ``nltk.corpus.wordnet.synsets(word)[0].offset()`` needs (see ``altsift.select.wordnet``).

Get the database offline from the Debian package ``wordnet-base`` (1:3.0-37):
    apt-get download wordnet-base && dpkg -x wordnet-base_*.deb /tmp/wn
    python scripts/build_wordnet_table.py /tmp/wn/usr/share/wordnet
"""

from __future__ import annotations

import argparse
import gzip
from pathlib import Path

FILES = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}
OUT = Path(__file__).resolve().parents[1] / "src/altsift/assets/wordnet/wordnet30_first_synsets.tsv.gz"


def build(src: Path, out: Path) -> int:
    lines: list[str] = []
    for pos, name in FILES.items():
        for line in (src / f"index.{name}").read_text(encoding="utf-8").splitlines():
            if not line or line.startswith(" "):
                continue  # licence header
            tok = line.split()
            lemma, n_synsets, n_ptrs = tok[0], int(tok[2]), int(tok[3])
            offsets = tok[4 + n_ptrs + 2 :]
            assert len(offsets) == n_synsets, line
            lines.append(f"s\t{pos}\t{lemma}\t{int(offsets[0])}")
        for line in (src / f"{name}.exc").read_text(encoding="utf-8").splitlines():
            tok = line.split()
            if tok:
                lines.append(f"e\t{pos}\t{tok[0]}\t{' '.join(tok[1:])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    with gzip.GzipFile(out, "wb", mtime=0) as f:  # mtime=0: byte-reproducible output
        f.write(("\n".join(lines) + "\n").encode("utf-8"))
    return len(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("wordnet_dir", type=Path, nargs="?", default=Path("/usr/share/wordnet"))
    ap.add_argument("--out", type=Path, default=OUT)
    a = ap.parse_args()
    print(f"wrote {build(a.wordnet_dir, a.out)} lines to {a.out}")


if __name__ == "__main__":
    main()
