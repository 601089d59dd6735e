"""Windows, answer positions and span decoding of the span reader's input layer."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.answer.span_features import WindowSettings, answer_tokens, best_span, make_windows, pad_batch, reader_form


class CharTokenizer:
    """One token per character (ids from code points), like a fast tokenizer's interface."""

    cls_token_id, sep_token_id, pad_token_id = 0, 2, 1

    def __call__(self, text, add_special_tokens=False, return_offsets_mapping=False, verbose=False):  # type: ignore[no-untyped-def]
        out = {"input_ids": [ord(c) + 10 for c in text]}
        if return_offsets_mapping:
            out["offset_mapping"] = [(i, i + 1) for i in range(len(text))]
        return out


TOK = CharTokenizer()
SMALL = WindowSettings(max_length=40, max_question_tokens=8, stride=10)


def windows_for(question: str, passage: str, settings: WindowSettings = SMALL):  # type: ignore[no-untyped-def]
    q = TOK(question)["input_ids"][: settings.max_question_tokens]
    enc = TOK(passage, return_offsets_mapping=True)
    return make_windows(TOK, q, enc["input_ids"], enc["offset_mapping"], settings=settings)


def test_short_passage_is_one_window_with_the_layout() -> None:
    [w] = windows_for("多少？", "增长5.8%。")
    assert w.input_ids[0] == TOK.cls_token_id and w.input_ids[-1] == TOK.sep_token_id
    assert w.input_ids[w.context_start - 2 : w.context_start] == (2, 2)
    assert w.offsets == tuple((i, i + 1) for i in range(len("增长5.8%。")))


def test_long_passage_windows_overlap_by_the_stride_and_cover_everything() -> None:
    passage = "".join(chr(0x4E00 + i) for i in range(100))
    ws = windows_for("问题", passage)
    assert len(ws) > 1
    assert all(len(w.input_ids) <= SMALL.max_length for w in ws)
    covered = set()
    for a, b in zip(ws, ws[1:]):
        assert a.offsets[-1][1] - b.offsets[0][0] == SMALL.stride
    for w in ws:
        covered.update(range(w.offsets[0][0], w.offsets[-1][1]))
    assert covered == set(range(100))


def test_answer_tokens_inside_and_across_the_edge() -> None:
    passage = "".join(chr(0x4E00 + i) for i in range(100))
    ws = windows_for("问题", passage)
    first = ws[0]
    last_char = first.offsets[-1][1]
    assert answer_tokens(first, 3, 6) == (first.context_start + 3, first.context_start + 5)
    assert answer_tokens(first, last_char - 2, last_char + 2) is None  # runs past the edge
    assert answer_tokens(ws[1], 0, 2) is None  # before the window


@given(st.integers(0, 95), st.integers(1, 5))
@settings(max_examples=60, deadline=None)
def test_every_short_answer_fits_some_window(start: int, length: int) -> None:
    passage = "".join(chr(0x4E00 + i) for i in range(100))
    end = min(100, start + length)
    found = [answer_tokens(w, start, end) for w in windows_for("问题", passage)]
    assert any(f is not None for f in found)


def test_best_span_decodes_to_characters_and_skips_the_question() -> None:
    passage = "前三季度增长5.8%。"
    [w] = windows_for("增长多少？", passage)
    n = len(w.input_ids)
    s, e = np.full(n, -5.0), np.full(n, -5.0)
    s[1] = e[1] = 9.0  # inside the question: never a span
    s[w.context_start + 6] = 4.0  # "5"
    e[w.context_start + 9] = 4.0  # "%"
    s[0], e[0] = 1.0, 0.5
    g = best_span(w, s, e)
    assert g is not None and passage[g.start : g.end] == "5.8%"
    assert g.score == 8.0 and g.null_score == 1.5


def test_best_span_rejects_reversed_and_overlong_spans() -> None:
    passage = "一二三四五六七八九十"
    [w] = windows_for("问", passage)
    n = len(w.input_ids)
    s, e = np.zeros(n), np.zeros(n)
    s[w.context_start + 8] = 10.0
    e[w.context_start + 1] = 10.0  # end before start: not allowed
    g = best_span(w, s, e, max_answer_tokens=3)
    assert g is not None and g.end > g.start and g.end - g.start <= 3


def test_pad_batch_masks_padding() -> None:
    a = windows_for("问", "短")[0]
    b = windows_for("问", "长一点的段落")[0]
    ids, mask = pad_batch([a, b], pad_id=1)
    assert ids.shape == mask.shape == (2, len(b.input_ids))
    assert mask[0].sum() == len(a.input_ids) and (ids[0][len(a.input_ids):] == 1).all()


def test_best_span_within_a_stretch_of_the_passage() -> None:
    passage = "甲增长5%。乙增长7%。"
    [w] = windows_for("增长多少？", passage)
    n = len(w.input_ids)
    s, e = np.zeros(n), np.zeros(n)
    s[w.context_start + 3], e[w.context_start + 4] = 9.0, 9.0  # "5%" (best overall)
    s[w.context_start + 9], e[w.context_start + 10] = 5.0, 5.0  # "7%"
    assert passage[slice(*(lambda g: (g.start, g.end))(best_span(w, s, e)))] == "5%"
    g = best_span(w, s, e, within=(6, 12))
    assert g is not None and passage[g.start : g.end] == "7%" and g.score == 10.0
    assert best_span(w, s, e, within=(100, 120)) is None


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("國家統計局發佈數據規模以上工業增長體制萬億臺灣乾隆後面髮型abc1.,，。 \n")), max_size=60))
def test_reader_form_keeps_every_offset(text: str) -> None:
    assert len(reader_form(text)) == len(text)


def test_reader_form_reads_traditional_as_simplified() -> None:
    assert reader_form("國家統計局發佈數據，規模以上工業增長5.8%") == "国家统计局发布数据，规模以上工业增长5.8%"


def test_the_reader_reads_a_simplified_question_and_a_traditional_passage_in_one_script() -> None:
    from types import SimpleNamespace

    from rag.answer.span_reader import SpanReader

    card = {"windows": SMALL.to_dict()}
    reader = SpanReader(SimpleNamespace(tokenizer=TOK), None, card)  # type: ignore[arg-type]
    trad = reader.windows("規模以上工業增長多少？", ["國家統計局：規模以上工業增長5.8%。"])
    simp = reader.windows("规模以上工业增长多少？", ["国家统计局：规模以上工业增长5.8%。"])
    assert trad == simp  # same tokens, same offsets into the (Traditional) passage
    [w] = trad
    text = "國家統計局：規模以上工業增長5.8%。"
    assert w.offsets == tuple((i, i + 1) for i in range(len(text)))


def test_echo_filter_rejects_spans_the_question_already_says() -> None:
    from rag.answer.span_features import echo_filter

    passage = "工信部運行監測協調局局長陶青表示，前三季度工業增長5.8%。"
    reject = echo_filter("陶青是谁？", [passage])
    name = passage.index("陶青")
    assert reject(0, name, name + 2)  # the name asked about, in either script
    role = passage.index("工信部")
    assert not reject(0, role, name)  # the role is news to the asker
    assert not reject(0, 0, 0)  # an empty span is the reader's "no answer", not an echo
    en = echo_filter("Who is Guan Bing?", ["Guan Bing, director of the institute, said so."])
    assert en(0, 0, 9) and not en(0, 11, 35)


def test_best_span_skips_rejected_spans() -> None:
    import numpy as np

    from rag.answer.span_features import Window, best_span

    w = Window(0, (0, 5, 6, 2, 7, 8, 9, 2), 3, ((0, 2), (2, 4), (4, 6), (6, 8)))
    s = np.array([0, 0, 0, 0, 9, 1, 5, 0], dtype=np.float64)  # context tokens sit at 3..6
    e = np.array([0, 0, 0, 0, 9, 1, 6, 0], dtype=np.float64)
    first = best_span(w, s, e)
    assert first is not None and (first.start, first.end) == (2, 4)
    g = best_span(w, s, e, reject=lambda p, a, b: (a, b) == (2, 4))
    assert g is not None and (g.start, g.end) == (2, 8)
