"""CoTR (Lin et al. 2023, Algorithm 1) against hand-computed cases, and the fuzzy rules."""

from __future__ import annotations

import pytest

from altsift.signals.parrot import (
    FuzzyRules,
    ParrotOptions,
    ParrotSignal,
    co_emb_boxes,
    cotr,
    cotr_fuzzy,
    cotr_iou,
    fuzzy_match,
    normalize_word,
)


@pytest.mark.parametrize(
    ("caption", "ocr", "expected", "co"),
    [
        # |{a, red, STOP, sign}| = 4, co = {STOP}
        ("a red STOP sign", "STOP", 0.25, ["STOP"]),
        # exact and case-sensitive: "stop" != "STOP"; punctuation kept: "sign." != "sign"
        ("a red stop sign.", "STOP sign", 0.0, []),
        # set semantics: duplicates count once in numerator and denominator
        ("buy buy now now", "now buy", 1.0, ["buy", "now"]),
        # denominator is |set(caption words)|, not the union (5 OCR words do not matter)
        ("Open 24 Hours", "Open 24 Hours Free Wifi Inside", 1.0, ["Open", "24", "Hours"]),
        ("Summer Sale poster", "Summer", 1 / 3, ["Summer"]),
        # empty caption / no OCR text
        ("", "STOP", 0.0, []),
        ("   ", "STOP", 0.0, []),
        ("a sign", "", 0.0, []),
        (None, None, 0.0, []),
        # merged OCR token: exact rule does not match
        ("Region-based segmentation", "Region-basedsegmentation", 0.0, []),
    ],
)
def test_cotr_algorithm_1(caption, ocr, expected, co):
    value, words = cotr(caption, ocr)
    assert value == pytest.approx(expected)
    assert words == co


def test_cotr_iou_variant():
    # |{a,b} & {b,c,d}| / |{a,b,c,d}| = 1/4, while CoTR = 1/2
    assert cotr_iou("a b", "b c d") == pytest.approx(0.25)
    assert cotr("a b", "b c d")[0] == pytest.approx(0.5)
    assert cotr_iou("", "") == 0.0


def test_normalize_word():
    assert normalize_word("Hello,") == "hello"
    assert normalize_word("Region-based") == "regionbased"
    assert normalize_word("--") == ""
    assert normalize_word("Café!") == "café"


def test_fuzzy_case_punctuation_and_misspelling():
    assert cotr_fuzzy("STOP sign.", "stop SIGN") == 1.0
    # Levenshtein: "hours" vs "hour5" similarity 0.8 >= 0.8; "24" exact; "open" exact
    assert cotr_fuzzy("Open 24 Hours", "OPEN 24 HOUR5") == 1.0
    # below threshold: "cat" vs "car" = 0.667
    assert cotr_fuzzy("cat", "car") == 0.0
    assert cotr_fuzzy("cat", "car", FuzzyRules(threshold=0.6)) == 1.0


def test_fuzzy_merged_ocr_tokens():
    # RapidOCR merges words: both caption words are segments of the merged token
    assert cotr_fuzzy("Region-based segmentation", "Region-basedsegmentation") == 1.0
    matched, hits = fuzzy_match("open 24 hours", ["Open24Hours"])
    assert matched == {"open", "24", "hours"} and hits == {0}
    # substring rule alone: other parts of the merged token are not in the caption
    assert cotr_fuzzy("big sale today", "MEGASALE") == pytest.approx(1 / 3)
    assert cotr_fuzzy("big sale today", "MEGASALE", FuzzyRules(substring_min_len=0)) == 0.0
    # short words are not matched as substrings ("the" inside "theatre")
    assert cotr_fuzzy("the movie", "THEATRE") == 0.0


def test_fuzzy_split_ocr_tokens():
    # OCR split one caption word into two tokens
    matched, hits = fuzzy_match("World2024 tour", ["World", "2024"])
    assert matched == {"world2024"} and hits == {0, 1}


def test_fuzzy_denominator_ignores_punctuation_only_words():
    assert cotr_fuzzy("Sale - today", "SALE") == pytest.approx(0.5)
    assert cotr_fuzzy("- !", "SALE") == 0.0


def test_co_emb_boxes_exact_and_fuzzy():
    strings = ["STOP now", "Region-basedsegmentation", "zzz"]
    assert co_emb_boxes(strings, "STOP sign") == [True, False, False]
    assert co_emb_boxes(strings, "stop region-based segmentation", fuzzy=True) == [True, True, False]


def test_parrot_signal_columns_and_nulls():
    sig = ParrotSignal({"iou": True})
    batch = {
        "uid": ["a", "b", "c", "d"],
        "status": ["ok", "ok", "bad_image", "ok"],
        "text": ["a red STOP sign", "open 24 hours", "x", "a dog"],
        "ocr_text": ["STOP", "Open24Hours", None, ""],
    }
    out = sig(batch)
    assert (
        set(out)
        == set(sig.output_columns())
        == {"cotr", "cotr_fuzzy", "co_emb_text", "is_parrot", "cotr_iou"}
    )
    assert out["cotr"] == [0.25, 0.0, None, 0.0]
    assert out["cotr_fuzzy"][:2] == [0.25, 1.0] and out["cotr_fuzzy"][2] is None
    assert out["is_parrot"] == [True, False, None, False]
    assert out["co_emb_text"] == ["STOP", "", None, ""]
    assert out["cotr_iou"][0] == pytest.approx(0.25)


def test_fuzzy_punctuation_merged_and_split_words():
    """Issue 14 item 7: OCR glues short caption words to other text with punctuation, or splits words."""
    # "at" is too short for the substring rule; the part of "Sale-at" split at "-" matches exactly
    matched, hits = fuzzy_match("sunglasses at CTS", ["Big", "Sale-at"])
    assert matched == {"at"} and hits == {1}
    assert fuzzy_match("sunglasses at CTS", ["Big", "Sale-at"], FuzzyRules(punct_split=False)) == (
        set(),
        set(),
    )
    # a word split by OCR (consecutive tokens) and a merged pair in one line
    assert cotr_fuzzy("Stock Photos of the Rooster", "Pho toS Rooster") == pytest.approx(2 / 5)
    assert cotr_fuzzy("Region-based segmentation", "Region-basedsegmentation") == 1.0
    # punctuation splitting never invents matches: unrelated parts stay unmatched
    assert cotr_fuzzy("the cat", "dog-house:bar") == 0.0


def test_fuzzy_confusables_and_short_reads():
    """Issue 14 item 7: misreads seen on the hard set's dev seeds (``Modem``, ``lce``, ``Archite``)."""
    from altsift.signals.parrot import fold_confusables

    assert fold_confusables("modern") == fold_confusables("modem") == "modem"
    assert fold_confusables("ice") == fold_confusables("lce") and fold_confusables("10") == "lo"
    # rule 5: one fold away; without it 1 - 1/6 = 0.83 matches "modem" anyway, "lce" (0.67) does not
    assert cotr_fuzzy("Senior Ice Hockey", "Senior lce Hockey") == 1.0
    assert cotr_fuzzy(
        "Senior Ice Hockey", "Senior lce Hockey", FuzzyRules(confusables=False)
    ) == pytest.approx(2 / 3)
    # rule 6: a line read short still shows its word; short or small prefixes do not count
    assert cotr_fuzzy("John Lum Architecture", "John Lum Archite") == 1.0
    assert cotr_fuzzy(
        "John Lum Architecture", "John Lum Archite", FuzzyRules(prefix_min_len=0)
    ) == pytest.approx(2 / 3)
    assert cotr_fuzzy("wildlife photography", "wild photo") == 0.0  # 4 letters; 5 of 11
    # nothing else moves: unrelated words stay unmatched, the other rules keep their results
    assert cotr_fuzzy("the movie", "THEATRE") == 0.0
    assert cotr_fuzzy("cat", "car") == 0.0


def test_fuzzy_rule_options_shared_and_validated():
    """parrot and text_removal take the same matcher options, build the same rules and reject bad ones."""
    import pydantic

    from altsift.signals.text_removal import TextRemovalOptions

    opts = {"fuzzy_threshold": 0.7, "prefix_min_len": 0, "confusables": False, "max_concat": 2}
    a, b = ParrotOptions(**opts).rules(), TextRemovalOptions(**opts).rules()
    assert a == b == FuzzyRules(threshold=0.7, max_concat=2, confusables=False, prefix_min_len=0)
    for cls in (ParrotOptions, TextRemovalOptions):
        for bad in (
            {"prefix_min_share": 1.5},
            {"prefix_min_len": -1},
            {"fuzzy_threshold": 2.0},
            {"fuzzy_thresh": 0.5},
        ):
            with pytest.raises(pydantic.ValidationError):
                cls(**bad)
