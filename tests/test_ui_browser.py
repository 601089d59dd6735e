"""End to end in a real headless browser: Debian's chromium + chromium-driver, driven by Selenium.

Install them with ``scripts/install_browser.sh`` (``apt-get install chromium chromium-driver``).
The driver is given by path, so Selenium Manager never downloads a browser or driver.
Screenshots are saved under ``tests/screenshots/`` and their paths printed (``pytest -s``).
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "docs" / "000_7acc4ff99040d81b.txt"
SHOTS = ROOT / "tests" / "screenshots"
CHROMIUM = os.environ.get("RAG_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("RAG_CHROMEDRIVER", "/usr/bin/chromedriver")
FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1360,1500", "--lang=zh-CN",
)


def _browser_missing() -> str | None:
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} not found: install Debian's {package} (scripts/install_browser.sh)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install selenium)"
    return None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    import rag
    from rag.ui.launcher import ServerProcess

    base = tmp_path_factory.mktemp("ui_browser")
    docs = base / "docs"
    docs.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    rag.build_index([docs], index_dir=base / "index", model="test-hash")
    args = ["--docs", str(docs), "--index", str(base / "index"), "--uploads", str(base / "uploads"), "--model", "test-hash"]
    with ServerProcess(args, log_path=base / "server.log", cwd=ROOT) as srv:
        yield srv.url


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    missing = _browser_missing()
    if missing:
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="rag-chromium-")
    opts = Options()
    opts.binary_location = CHROMIUM
    for flag in FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _shot(driver: object, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    driver.save_screenshot(str(path))  # type: ignore[attr-defined]
    print(f"screenshot: {path}")
    return path


def test_ask_in_the_browser(server: str, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    wait = WebDriverWait(d, 60)
    d.get(server + "/")  # type: ignore[attr-defined]
    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")))
    wait.until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "passages"))

    # A Simplified-Chinese question typed and sent with Enter.
    box.send_keys("前三季度规模以上工业增加值同比增长多少？")
    box.send_keys(Keys.ENTER)
    answer = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-chat .rag-found")))
    assert answer.find_element(By.CSS_SELECTOR, ".rag-text mark.rag-span").text == "5.8%"
    assert answer.find_element(By.CSS_SELECTOR, ".rag-short-value").text == "5.8%"
    assert "[1]" in answer.find_element(By.CSS_SELECTOR, ".rag-text .rag-ref").text
    sources = answer.find_elements(By.CSS_SELECTOR, ".rag-source")
    assert sources, "the answer shows its sources"
    head = sources[0].find_element(By.CSS_SELECTOR, ".rag-source-head").text
    assert "[1]" in head and SEED.name in head and "characters" in head
    assert sources[0].find_element(By.CSS_SELECTOR, "mark.rag-quote").text.startswith("前三季度")
    d.execute_script("arguments[0].scrollIntoView({block: 'start'});", answer)  # type: ignore[attr-defined]
    _shot(d, "ui_chat_answer.png")

    # An example in Traditional characters is one click away.
    d.find_element(By.ID, "rag-example-1").click()  # type: ignore[attr-defined]
    wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-found")) >= 2)
    spans = [e.text for e in d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-found .rag-short-value")]  # type: ignore[attr-defined]
    assert "12個" in spans

    # A question the documents do not answer: a plain refusal and the closest passages, marked.
    box = d.find_element(By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")  # type: ignore[attr-defined]
    box.send_keys("灵璧县属于哪个省？")
    d.find_element(By.ID, "rag-ask").click()  # type: ignore[attr-defined]
    refusal = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-chat .rag-notfound")))
    assert "Not found in the documents" in refusal.text
    assert "not an answer" in refusal.find_element(By.CSS_SELECTOR, ".rag-closest-title").text
    d.execute_script("arguments[0].scrollIntoView({block: 'start'});", refusal)  # type: ignore[attr-defined]
    _shot(d, "ui_chat_refusal.png")

    # The Documents tab: the document, its passages, the model and its cleaning report.
    tab = next(b for b in d.find_elements(By.CSS_SELECTOR, "button[role='tab']") if "Documents" in b.text)  # type: ignore[attr-defined]
    tab.click()
    overview = wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#rag-overview .rag-overview")))
    assert SEED.name in overview.text and "test-hash" in overview.text
    overview.find_element(By.CSS_SELECTOR, "details.rag-report summary").click()
    assert "pinyin reading" in overview.find_element(By.CSS_SELECTOR, "details.rag-report").text
    _shot(d, "ui_documents.png")

    # Add a document through the upload box; the chat then answers from it.
    note = tmp_path / "museum.txt"
    note.write_text("The city museum was founded in 1887 by Anna Berg. It opens at 10 am on Saturdays.\n",
                    encoding="utf-8")
    d.find_element(By.CSS_SELECTOR, "#rag-upload input[type=file]").send_keys(str(note))  # type: ignore[attr-defined]
    # The file is on the server once the upload box links to it.
    wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-upload a[download='museum.txt']")))
    d.find_element(By.ID, "rag-add").click()  # type: ignore[attr-defined]
    done = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-add-status .rag-upload-result")))
    assert "museum.txt" in done.text and "now uses the new index" in done.text
    wait.until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "2 documents"))
    _shot(d, "ui_documents_added.png")
    chat_tab = next(b for b in d.find_elements(By.CSS_SELECTOR, "button[role='tab']") if "Chat" in b.text)  # type: ignore[attr-defined]
    chat_tab.click()
    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")))
    box.send_keys("Who founded the city museum?")
    box.send_keys(Keys.ENTER)
    wait.until(lambda drv: "Anna Berg" in drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")[-1].text)
    last = d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")[-1]  # type: ignore[attr-defined]
    assert "museum" in last.find_element(By.CSS_SELECTOR, ".rag-source-head").text
    d.execute_script("arguments[0].scrollIntoView({block: 'start'});", last)  # type: ignore[attr-defined]
    _shot(d, "ui_chat_uploaded.png")


def test_conversation_in_the_browser(server: str, browser: object) -> None:
    """A follow-up question is understood from the turn before it, and says so under the
    question; "New conversation" forgets the turns."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    wait = WebDriverWait(d, 60)
    d.get(server + "/")  # type: ignore[attr-defined]
    box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")))
    wait.until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "passages"))
    box.send_keys("赵志国是谁？")
    box.send_keys(Keys.ENTER)
    wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")) >= 1)
    box = d.find_element(By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")  # type: ignore[attr-defined]
    box.send_keys("他认为下一步应该怎么做？")
    box.send_keys(Keys.ENTER)
    understood = wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-chat .rag-understood")))
    assert "赵志国认为下一步应该怎么做" in understood.text and "理解为" in understood.text
    wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")) >= 2)
    last = d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")[-1]  # type: ignore[attr-defined]
    assert "趙志國" in last.text
    _shot(d, "ui_chat_follow_up.png")

    d.find_element(By.ID, "rag-new").click()  # type: ignore[attr-defined]
    wait.until(lambda drv: not drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer"))
    box = d.find_element(By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")  # type: ignore[attr-defined]
    box.send_keys("他认为下一步应该怎么做？")
    box.send_keys(Keys.ENTER)
    wait.until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")) >= 1)
    assert not d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-understood")  # type: ignore[attr-defined]


# -- the document viewer, themes, the phone layout, excluding a documents-folder file ----------

NEEDLE = "The lighthouse on Marrow Island was painted red in 1957 by Tove Lind, a shipwright from Bergen."
HARBOUR = "The harbour museum opens at 10 am. It was founded in 1911 by Ida Lund.\n"
QUESTION = "前三季度规模以上工业增加值同比增长多少？"


def long_document(chars: int = 200_000, needle_at: float = 0.8) -> str:
    """About ``chars`` characters of varied English lines (nothing the cleaner removes), with
    :data:`NEEDLE` at ``needle_at`` of the way through: longer than the viewer shows whole."""
    rng = random.Random(7)
    subjects = ["The valley council", "A survey team", "The river authority", "The school board", "A local bakery",
                "The railway office", "The weather station", "A farmers' group", "The town library", "The harbour crew"]
    verbs = ["reviewed", "published", "discussed", "measured", "planned", "repaired", "recorded", "approved", "studied"]
    objects = ["the spring water levels", "a new footpath", "the autumn timetable", "the roof of the old mill",
               "the monthly rainfall", "a bridge inspection", "the winter stock of grain", "a bicycle lane"]
    lines: list[str] = []
    size, placed, i = 0, False, 0
    while size < chars:
        if not placed and size >= chars * needle_at:
            lines.append(NEEDLE)
            placed = True
        else:
            lines.append(f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} in week {i % 52 + 1} of "
                         f"year {1900 + i // 52}, with {rng.randint(2, 900)} people taking part.")
        size += len(lines[-1]) + 1
        i += 1
        if i % 7 == 0:
            lines.append("")
    return "\n".join(lines) + "\n"


@dataclass
class Live:
    url: str
    docs: Path
    index: Path


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """A server over docs/ holding the seed article, a short note and a long report."""
    import rag
    from rag.ui.launcher import ServerProcess

    base = tmp_path_factory.mktemp("ui_browser_viewer")
    docs = base / "docs"
    docs.mkdir()
    shutil.copy(SEED, docs / SEED.name)
    (docs / "harbour.txt").write_text(HARBOUR, encoding="utf-8")
    (docs / "long_report.txt").write_text(long_document(), encoding="utf-8")
    rag.build_index([docs], index_dir=base / "index", model="test-hash")
    args = ["--docs", str(docs), "--index", str(base / "index"), "--uploads", str(base / "uploads"), "--model", "test-hash"]
    with ServerProcess(args, log_path=base / "server.log", cwd=ROOT) as srv:
        yield Live(srv.url, docs, base / "index")


# WCAG 2 contrast of an element's text against its effective background: the background
# colours of it and its ancestors composited (alpha) from the page's root down.
CONTRAST_JS = r"""
const parse = (c) => {
  const m = /^rgba?\(([^)]+)\)$/.exec(c);
  if (!m) throw new Error('unexpected colour ' + c);
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
};
const over = (top, below) => {
  const a = top.a + below.a * (1 - top.a);
  const mix = (x, y) => (x * top.a + y * below.a * (1 - top.a)) / a;
  return {r: mix(top.r, below.r), g: mix(top.g, below.g), b: mix(top.b, below.b), a: a};
};
const background = (el) => {
  const layers = [];
  for (let e = el; e; e = e.parentElement) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c.a > 0) { layers.push(c); if (c.a >= 1) break; }
  }
  let bg = {r: 255, g: 255, b: 255, a: 1};
  for (let i = layers.length - 1; i >= 0; i--) bg = over(layers[i], bg);
  return bg;
};
const luminance = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const hex = (c) => '#' + [c.r, c.g, c.b].map((v) => Math.round(v).toString(16).padStart(2, '0')).join('');
return arguments[0].map((sel) => {
  const el = document.querySelector(sel);
  if (!el) return {sel: sel, missing: true};
  const bg = background(el);
  const fg = over(parse(getComputedStyle(el).color), bg);
  const l1 = luminance(fg), l2 = luminance(bg);
  return {sel: sel, fg: hex(fg), bg: hex(bg), ratio: (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05)};
});
"""

CHAT_COLOURS = [
    "#rag-chat .rag-found .rag-short-value",              # the short answer
    "#rag-chat .rag-found .rag-text mark.rag-span",        # the answer span in the answer sentence
    "#rag-chat .rag-found .rag-text",                      # the answer sentence
    "#rag-chat .rag-found .rag-passage mark.rag-quote",    # the quoted sentence in its passage
    "#rag-chat .rag-found .rag-passage mark.rag-quote mark.rag-span",
    "#rag-chat .rag-found .rag-num",
    "#rag-chat .rag-found .rag-pos",
    "#rag-chat .rag-found button.rag-open-btn",
]
VIEWER_COLOURS = [
    "#rag-viewer .rag-viewer-text mark.rag-view-quote",    # the quoted sentence in the document
    "#rag-viewer .rag-viewer-text mark.rag-view-span",     # the answer inside it
    "#rag-viewer .rag-viewer-text",
    "#rag-viewer .rag-viewer-meta",
    "#rag-viewer .rag-viewer-title .rag-num",
]
PASSAGE_COLOURS = ["#rag-viewer .rag-viewer-text mark.rag-view-passage"]  # a closest passage, not an answer

OVERFLOW_JS = r"""
const vw = document.documentElement.clientWidth;
const wide = [];
for (const el of document.querySelectorAll('body *')) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 || r.height === 0) continue;
  if (r.width > vw + 0.5 || r.right > vw + 0.5 || r.left < -0.5) {
    wide.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + ' ' + String(el.className).slice(0, 50)
              + ` left=${r.left.toFixed(1)} width=${r.width.toFixed(1)}`);
  }
}
return {scrollWidth: document.documentElement.scrollWidth, clientWidth: vw, innerWidth: window.innerWidth,
        widest: Math.max(0, ...Array.from(document.querySelectorAll('body *'), (e) => e.getBoundingClientRect().right)),
        wide: wide.slice(0, 10), count: wide.length};
"""

IN_VIEW_JS = r"""
const hit = document.querySelector('#rag-viewer .rag-viewer-text .rag-view-hit');
const body = document.querySelector('#rag-viewer-body');
const head = document.querySelector('#rag-viewer .rag-viewer-head');
if (!hit || !body) return null;
const h = hit.getBoundingClientRect(), b = body.getBoundingClientRect();
const top = head ? head.getBoundingClientRect().bottom : b.top;
return {hit_top: h.top, hit_bottom: h.bottom, visible_top: top, visible_bottom: Math.min(b.bottom, window.innerHeight),
        in_view: h.top >= top - 1 && h.bottom <= Math.min(b.bottom, window.innerHeight) + 1};
"""

# The viewer's text and where its marks are, as character offsets into it.
VIEW_TEXT_JS = r"""
const root = document.querySelector('#rag-viewer .rag-viewer-text');
const view = document.querySelector('#rag-viewer .rag-viewer');
const offset = (node) => {
  const range = document.createRange();
  range.setStart(root, 0);
  range.setEnd(node, 0);
  return range.toString().length;
};
const marks = (cls) => Array.from(root.querySelectorAll('mark.' + cls), (m) => [offset(m), m.textContent]);
return {text: root.textContent, lo: Number(view.dataset.lo), hi: Number(view.dataset.hi),
        quote: marks('rag-view-quote'), span: marks('rag-view-span'), passage: marks('rag-view-passage')};
"""


def _wait(d: object, timeout: float = 60) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(d, timeout)


def _open_chat(d: object, url: str) -> object:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    d.get(url)  # type: ignore[attr-defined]
    box = _wait(d).until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")))
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "passages"))
    return box


def _ask(d: object, question: str, css: str = ".rag-answer") -> object:
    """Ask in the chat; the new reply (``css`` inside it) once it is there."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    before = len(d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer"))  # type: ignore[attr-defined]
    box = d.find_element(By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")  # type: ignore[attr-defined]
    box.send_keys(question)
    box.send_keys(Keys.ENTER)
    _wait(d).until(lambda drv: len(drv.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")) > before)
    reply = d.find_elements(By.CSS_SELECTOR, "#rag-chat .rag-answer")[-1]  # type: ignore[attr-defined]
    assert d.execute_script("return arguments[0].matches(arguments[1]) || !!arguments[0].querySelector(arguments[1]);",  # type: ignore[attr-defined]
                            reply, css), reply.text
    return reply


def _open_source(d: object, reply: object, index: int = 0) -> dict:
    """Click a source's button in ``reply`` (one the viewer does not show already); the
    viewer's text and marks once it shows it with the quote in view."""
    from selenium.webdriver.common.by import By

    buttons = reply.find_elements(By.CSS_SELECTOR, "button.rag-open-btn")  # type: ignore[attr-defined]
    d.execute_script("arguments[0].scrollIntoView({block: 'center'});", buttons[index])  # type: ignore[attr-defined]
    d.execute_script("const v = document.querySelector('#rag-viewer .rag-viewer'); "  # type: ignore[attr-defined]
                     "if (v) v.setAttribute('data-stale', '1');")
    buttons[index].click()
    _wait(d).until(lambda drv: drv.execute_script(
        "const v = document.querySelector('#rag-viewer .rag-viewer'); return !!v && !v.hasAttribute('data-stale');"))
    _wait(d).until(lambda drv: (drv.execute_script(IN_VIEW_JS) or {}).get("in_view"))
    return d.execute_script(VIEW_TEXT_JS)  # type: ignore[attr-defined]


def _tab(d: object, name: str) -> None:
    from selenium.webdriver.common.by import By

    next(b for b in d.find_elements(By.CSS_SELECTOR, "button[role='tab']") if name in b.text).click()  # type: ignore[attr-defined]


def _close_viewer(d: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)  # type: ignore[attr-defined]
    _wait(d, 20).until(lambda drv: not drv.execute_script(
        "const v = document.querySelector('#rag-viewer'); return !!v && v.offsetParent !== null && v.getBoundingClientRect().width > 0;"))


def _answer(live: Live, question: str) -> dict:
    from gradio_client import Client

    return Client(live.url, verbose=False).predict(question, api_name="/ask")


def test_viewer_opens_the_cited_document_at_the_quote(live: Live, browser: object) -> None:
    """A source's button opens the whole cleaned document with the quote and the answer span
    marked at the citation's offsets, scrolled into view; a long document opens in a window
    around the quote that widens to all of it."""
    import rag
    from selenium.webdriver.common.by import By

    d = browser
    qa = rag.load(live.index)
    _open_chat(d, live.url)
    ans = _answer(live, QUESTION)
    c, sc = ans["citations"][0], ans["span_citation"]
    reply = _ask(d, QUESTION, ".rag-found")
    view = _open_source(d, reply)
    doc = qa.document(c["source"]).text
    assert (view["lo"], view["hi"]) == (0, len(doc)) and view["text"] == doc  # the whole document, as indexed
    (quote,) = view["quote"]
    assert quote == [c["start"], c["quote"]]  # at the citation's offsets
    assert doc[:quote[0]] + quote[1] + doc[quote[0] + len(quote[1]):] == doc
    assert view["span"] == [[sc["start"], ans["span"]]] and doc[sc["start"]:sc["end"]] == ans["span"] == "5.8%"
    print("viewer, seed article:", d.execute_script(IN_VIEW_JS))  # type: ignore[attr-defined]
    _shot(d, "ui_viewer.png")

    # another source of the same answer: the viewer follows, the quote in view
    if len(ans["citations"]) > 1:
        c2 = ans["citations"][1]
        view = _open_source(d, reply, 1)
        assert [q[0] for q in view["quote"]][:1] == [c2["start"]] and "".join(q[1] for q in view["quote"]) == c2["quote"]

    # the long report: a window around the quote, far into the document, in view
    ans = _answer(live, "Who painted the lighthouse on Marrow Island?")
    c = ans["citations"][0]
    assert c["source"].endswith("long_report.txt") and c["quote"] == NEEDLE
    reply = _ask(d, "Who painted the lighthouse on Marrow Island?", ".rag-found")
    view = _open_source(d, reply)
    doc = qa.document(c["source"]).text
    lo, hi = view["lo"], view["hi"]
    assert 0 < lo < c["start"] and c["end"] < hi < len(doc), (lo, hi, len(doc))
    assert view["text"] == doc[lo:hi]
    assert view["quote"] == [[c["start"] - lo, NEEDLE]]
    place = d.execute_script(IN_VIEW_JS)  # type: ignore[attr-defined]
    assert place["in_view"], place
    print(f"viewer, long report ({len(doc):,} characters): window {lo:,}-{hi:,}, quote at {c['start']:,}; {place}")
    meta = d.find_element(By.CSS_SELECTOR, "#rag-viewer .rag-viewer-meta").text  # type: ignore[attr-defined]
    assert "showing" in meta and f"of {len(doc):,}" in meta
    assert d.find_element(By.ID, "rag-view-earlier").is_enabled() and d.find_element(By.ID, "rag-view-later").is_enabled()  # type: ignore[attr-defined]
    _shot(d, "ui_viewer_long_window.png")

    d.find_element(By.ID, "rag-view-earlier").click()  # type: ignore[attr-defined]
    _wait(d).until(lambda drv: drv.execute_script(VIEW_TEXT_JS)["lo"] < lo)
    view = d.execute_script(VIEW_TEXT_JS)  # type: ignore[attr-defined]
    assert view["hi"] == hi and view["text"] == doc[view["lo"]:hi]
    assert view["quote"] == [[c["start"] - view["lo"], NEEDLE]]
    _wait(d).until(lambda drv: drv.execute_script(IN_VIEW_JS)["in_view"])

    d.find_element(By.ID, "rag-view-whole").click()  # type: ignore[attr-defined]
    _wait(d).until(lambda drv: drv.execute_script(VIEW_TEXT_JS)["lo"] == 0
                   and drv.execute_script(VIEW_TEXT_JS)["hi"] == len(doc))
    view = d.execute_script(VIEW_TEXT_JS)  # type: ignore[attr-defined]
    assert view["text"] == doc and view["quote"] == [[c["start"], NEEDLE]]
    _wait(d).until(lambda drv: drv.execute_script(IN_VIEW_JS)["in_view"])
    assert not d.find_element(By.ID, "rag-view-whole").is_enabled()  # type: ignore[attr-defined]
    print("viewer, long report whole:", d.execute_script(IN_VIEW_JS))  # type: ignore[attr-defined]
    _shot(d, "ui_viewer_long_whole.png")
    _close_viewer(d)


def _contrast(d: object, selectors: list[str], theme: str) -> list[dict]:
    rows = d.execute_script(CONTRAST_JS, selectors)  # type: ignore[attr-defined]
    for r in rows:
        assert not r.get("missing"), f"{theme}: nothing matches {r['sel']}"
        print(f"  {theme:5} {r['ratio']:5.2f}:1  {r['fg']} on {r['bg']}  {r['sel']}")
    return rows


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_highlights_are_readable_in_light_and_dark(live: Live, browser: object, theme: str) -> None:
    """Gradio follows the system theme: emulated ``prefers-color-scheme``. The short answer,
    the answer span, the quote and the viewer's highlights reach WCAG AA (4.5:1) against the
    background they are drawn on, as the browser computes the colours."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    d = browser
    d.execute_cdp_cmd("Emulation.setEmulatedMedia",  # type: ignore[attr-defined]
                      {"features": [{"name": "prefers-color-scheme", "value": theme}]})
    try:
        _open_chat(d, live.url)
        dark = d.execute_script("return document.body.classList.contains('dark')")  # type: ignore[attr-defined]
        assert dark is (theme == "dark")
        reply = _ask(d, QUESTION, ".rag-found")
        d.execute_script("arguments[0].scrollIntoView({block: 'start'});", reply)  # type: ignore[attr-defined]
        print(f"contrast, {theme} theme:")
        rows = _contrast(d, CHAT_COLOURS, theme)
        _shot(d, f"ui_{theme}_chat.png")
        _open_source(d, reply)
        rows += _contrast(d, VIEWER_COLOURS, theme)
        _shot(d, f"ui_{theme}_viewer.png")
        refusal = _ask(d, "灵璧县属于哪个省？", ".rag-closest")
        view = _open_source(d, refusal)
        assert view["passage"] and not view["quote"]
        rows += _contrast(d, PASSAGE_COLOURS, theme)
        _close_viewer(d)
        _tab(d, "Documents")
        _wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#rag-overview .rag-overview")))
        _shot(d, f"ui_{theme}_documents.png")
        low = [r for r in rows if r["ratio"] < 4.5]
        assert not low, f"{theme}: below 4.5:1: {low}"
        if theme == "dark":  # the query parameter gives the same theme
            d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})  # type: ignore[attr-defined]
            _open_chat(d, live.url + "/?__theme=dark")
            assert d.execute_script("return document.body.classList.contains('dark')")  # type: ignore[attr-defined]
    finally:
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})  # type: ignore[attr-defined]


def test_phone_viewport_has_no_horizontal_overflow(live: Live, browser: object) -> None:
    """390×844, as a phone: no tab is wider than the screen (nor any element in it), the
    question box is on screen without scrolling, and the viewer fills the screen."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    d = browser
    d.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",  # type: ignore[attr-defined]
                      {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    seen: dict[str, dict] = {}

    def check(where: str) -> None:
        time.sleep(0.3)  # let the layout settle
        m = d.execute_script(OVERFLOW_JS)  # type: ignore[attr-defined]
        seen[where] = m
        print(f"phone 390x844, {where}: scrollWidth {m['scrollWidth']}, clientWidth {m['clientWidth']}, "
              f"innerWidth {m['innerWidth']}, widest element ends at {m['widest']:.1f}, too wide: {m['count']}")
        assert m["clientWidth"] == 390
        assert m["scrollWidth"] <= m["clientWidth"], f"{where}: the page is {m['scrollWidth']} px wide: {m['wide']}"
        assert m["count"] == 0, f"{where}: elements wider than the screen: {m['wide']}"

    try:
        box = _open_chat(d, live.url)
        r = d.execute_script("const r = arguments[0].getBoundingClientRect(); "  # type: ignore[attr-defined]
                             "return [r.top, r.bottom, window.innerHeight, window.scrollY];", box)
        print(f"phone 390x844, first load: question box at {r[0]:.0f}-{r[1]:.0f} px of {r[2]}, scrolled {r[3]}")
        assert r[3] == 0 and 0 <= r[0] and r[1] <= r[2], f"the question box is not on screen: {r}"
        check("chat, first load")
        ask = d.execute_script("const b = document.querySelector('#rag-ask'); "  # type: ignore[attr-defined]
                               "return [b.scrollWidth, b.clientWidth, b.getBoundingClientRect().right];")
        assert ask[0] <= ask[1] + 1 and ask[2] <= 390, f"the Ask button's label does not fit: {ask}"
        _shot(d, "ui_phone_chat_first.png")
        reply = _ask(d, QUESTION, ".rag-found")
        check("chat, an answer")
        d.execute_script("arguments[0].scrollIntoView({block: 'start'});", reply)  # type: ignore[attr-defined]
        _shot(d, "ui_phone_chat.png")
        _open_source(d, reply)
        check("viewer")
        width = d.execute_script("return document.querySelector('#rag-viewer').getBoundingClientRect().width")  # type: ignore[attr-defined]
        assert width == 390, width
        _shot(d, "ui_phone_viewer.png")
        _close_viewer(d)
        _tab(d, "Documents")
        _wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#rag-overview .rag-overview")))
        for details in d.find_elements(By.CSS_SELECTOR, "#rag-overview details.rag-report"):  # type: ignore[attr-defined]
            details.find_element(By.CSS_SELECTOR, "summary").click()
        check("documents, reports open")
        _shot(d, "ui_phone_documents.png")
        assert len(seen) == 4
    finally:
        d.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})  # type: ignore[attr-defined]


def _choose(d: object, dropdown: str, text: str) -> None:
    """Pick the option of the Gradio dropdown ``#dropdown`` whose label holds ``text``."""
    from selenium.webdriver.common.by import By

    d.find_element(By.CSS_SELECTOR, f"#{dropdown} input").click()  # type: ignore[attr-defined]
    option = _wait(d, 20).until(lambda drv: next(
        (o for o in drv.find_elements(By.CSS_SELECTOR, f"#{dropdown} li[role=option]") if text in o.text), None))
    option.click()
    _wait(d, 20).until(lambda drv: text in drv.find_element(By.CSS_SELECTOR, f"#{dropdown} input").get_attribute("value"))


def test_exclude_and_restore_a_documents_folder_file(live: Live, browser: object) -> None:
    """Removing a file of the documents folder excludes it: the chat no longer cites it, the
    file stays, the Documents tab lists it; Restore indexes it again."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC

    from rag.index.exclusions import RECORD

    d = browser
    note = live.docs / "harbour.txt"
    _open_chat(d, live.url)
    reply = _ask(d, "Who founded the harbour museum?", ".rag-found")
    assert "harbour.txt" in reply.find_element(By.CSS_SELECTOR, ".rag-source-head").text  # type: ignore[attr-defined]

    _tab(d, "Documents")
    _wait(d).until(EC.visibility_of_element_located((By.CSS_SELECTOR, "#rag-overview .rag-overview")))
    _choose(d, "rag-remove-choice", "harbour.txt")
    d.find_element(By.ID, "rag-remove").click()  # type: ignore[attr-defined]
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-remove-status"), "Excluded"))
    assert "file stays in the documents folder" in d.find_element(By.ID, "rag-remove-status").text  # type: ignore[attr-defined]
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-excluded"), "harbour.txt"))
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "2 documents"))
    assert note.read_text(encoding="utf-8") == HARBOUR  # the user's file is kept
    assert "harbour.txt" in (live.index / RECORD).read_text(encoding="utf-8")
    assert "harbour.txt" not in d.find_element(By.ID, "rag-overview").text  # type: ignore[attr-defined]
    assert "harbour.txt" in d.find_element(By.CSS_SELECTOR, "#rag-restore-choice input").get_attribute("value")  # type: ignore[attr-defined]
    _shot(d, "ui_documents_excluded.png")

    _tab(d, "Chat")
    reply = _ask(d, "Who founded the harbour museum?")
    assert "harbour.txt" not in reply.text and "Ida Lund" not in reply.text

    _tab(d, "Documents")
    _wait(d).until(lambda drv: "harbour.txt" in drv.find_element(By.CSS_SELECTOR, "#rag-restore-choice input").get_attribute("value"))
    d.find_element(By.ID, "rag-restore").click()  # type: ignore[attr-defined]
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-restore-status"), "Restored"))
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "3 documents"))
    _wait(d).until(EC.text_to_be_present_in_element((By.ID, "rag-excluded"), "No document is excluded"))
    assert not (live.index / RECORD).exists() and note.is_file()
    _shot(d, "ui_documents_restored.png")
    _tab(d, "Chat")
    reply = _ask(d, "Who founded the harbour museum?", ".rag-found")
    assert "Ida Lund" in reply.text and "harbour.txt" in reply.text
