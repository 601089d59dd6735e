"""Chinese names written in pinyin, found in Han text (rag.answer.romanized)."""

from __future__ import annotations

import pytest

from rag.normalize import fold
from rag.answer.romanized import romanized_names, syllables


@pytest.mark.parametrize(
    ("question", "names"),
    [
        ("What did Zhao Zhiguo say about new industrialization?", ["Zhao Zhiguo"]),
        ("Which institute does Deng Daozheng work for?", ["Deng Daozheng"]),
        ("What is Deng Daozheng's job?", ["Deng Daozheng"]),  # possessive
        ("Did Zhiguo Zhao and Tao Qing meet?", ["Zhiguo Zhao", "Tao Qing"]),
        ("Who is the chief engineer of the Ministry of Industry?", []),  # English words are not pinyin
        ("What does China Mobile do?", []),
        ("How much did GDP grow in Beijing?", []),  # one word: a place as often as a name
        ("Did Li Qiang visit Hong Kong?", ["Li Qiang"]),  # Hong Kong is Cantonese (香港 is xiang gang)
        ("What did Zhao Zhi Guo say?", ["Zhao Zhi Guo"]),  # one syllable a word
        ("Is Wang Li Na Li a name?", []),  # four words: not one name
    ],
)
def test_names_are_runs_of_capitalised_pinyin_words(question: str, names: list[str]) -> None:
    assert [n.text for n in romanized_names(question)] == names


def test_syllables_follow_pinyin_spelling() -> None:
    assert syllables("Zhiguo") == (("zhi", "guo"),)
    assert ("zhi", "gu", "o") not in syllables("Zhiguo")  # "o" starts a syllable only after an apostrophe
    assert ("xi", "an") in syllables("Xi'an") and ("xian",) not in syllables("Xi'an")
    assert syllables("Ministry") == () and syllables("Lü") == syllables("Lv") == (("lu",),)


def test_names_are_found_in_han_text_in_either_script_and_order() -> None:
    text = fold("工信部總工程師趙志國表示,陶青說。")
    (zhao,) = romanized_names("What did Zhao Zhiguo say?")
    (western,) = romanized_names("What did Zhiguo Zhao say?")
    (guan,) = romanized_names("What did Guan Bing say?")
    assert zhao.found_in(text) and western.found_in(text)
    assert zhao.pattern().search(text).group() == "赵志国"  # type: ignore[union-attr]
    assert not guan.found_in(text)
    assert guan.found_in(fold("He met Guan Bing."))  # written as the question writes it
