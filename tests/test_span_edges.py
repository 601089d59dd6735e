import pytest

from rag.answer.span_edges import trim_span


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        (" 5.8% ", "5.8%"),
        ("，北京。", "北京"),
        ("《三國演義》", "《三國演義》"),
        ("。", ""),
        ("美國的", "美國"),
        ("趙志國表示", "趙志國"),
        ("由於滿洲是清朝的發祥地", "滿洲是清朝的發祥地"),
        ("因為英法兩國都擁有龐大的海外殖民地，", "英法兩國都擁有龐大的海外殖民地"),
        ("在中國", "中國"),
        ("和有色金屬", "有色金屬"),
        ("與會代表", "與會代表"),
        # function words inside a word, or the whole span, stay
        ("目的", "目的"),
        ("的", "的"),
        ("於是", "於是"),
        ("國家名勝古蹟信託", "國家名勝古蹟信託"),
        ("1972年", "1972年"),
        ("The bridge", "The bridge"),
    ],
)
def test_edges_lose_punctuation_and_function_words(raw: str, want: str) -> None:
    a, b = trim_span(raw, 0, len(raw))
    assert raw[a:b] == want


def test_offsets_are_into_the_whole_text() -> None:
    text = "據報道，工信部總工程師趙志國表示，下一步將聚焦新型工業化。"
    start = text.index("趙")
    a, b = trim_span(text, start, text.index("，下一步"))
    assert text[a:b] == "趙志國" and a == start


@pytest.mark.parametrize(
    ("text", "cut", "want"),
    [
        ("It produced 3.2 million tonnes of steel.", "3.2 million tonn", "3.2 million tonnes"),
        ("the territory of the empire", "territor", "territory"),
        ("B lymphocytes are white cells", "lymphocy", "lymphocytes"),
        ("worth 1,000 dollars", "1,0", "1,000"),
        ("a 2.45 metre mirror", "2.4", "2.45"),
        ("in the city of Sacramento", "acrament", "Sacramento"),
        ("Garreth Mallory's office", "Garreth Mallory", "Garreth Mallory"),  # a possessive is not the name
        # edges already on word boundaries, and CJK text, are left alone
        ("opened in 1931. It is long", "1931", "1931"),
        ("增長5.8%，比上半年", "5.8%", "5.8%"),
        ("北京Olympic公園", "Olym", "Olympic"),
    ],
)
def test_latin_spans_end_on_word_boundaries(text: str, cut: str, want: str) -> None:
    start = text.index(cut)
    a, b = trim_span(text, start, start + len(cut))
    assert text[a:b] == want
