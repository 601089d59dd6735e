"""End to end in a real headless browser: Debian's chromium + chromium-driver, driven by Selenium.

Install them with ``scripts/install_browser.sh`` (``apt-get install chromium chromium-driver``).
The driver is given by path, so Selenium Manager never downloads a browser or driver.
Screenshots are saved under ``tests/screenshots/`` and their paths printed (``pytest -s``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
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


def test_phone_viewport_has_no_horizontal_overflow(server: str, browser: object) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    d = browser
    d.set_window_size(390, 844)  # type: ignore[attr-defined]
    try:
        wait = WebDriverWait(d, 60)
        d.get(server + "/")  # type: ignore[attr-defined]
        box = wait.until(EC.element_to_be_clickable((By.CSS_SELECTOR, "#rag-question textarea, #rag-question input")))
        wait.until(EC.text_to_be_present_in_element((By.ID, "rag-status"), "passages"))
        box.send_keys("前三季度规模以上工业增加值同比增长多少？")
        box.send_keys(Keys.ENTER)
        wait.until(EC.presence_of_element_located((By.CSS_SELECTOR, "#rag-chat .rag-found")))
        widths = d.execute_script(  # type: ignore[attr-defined]
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth, window.innerWidth];")
        _shot(d, "ui_phone_390.png")
        assert widths[0] <= widths[1], f"the page is {widths[0]} px wide in a {widths[1]} px viewport"
    finally:
        d.set_window_size(1360, 1500)  # type: ignore[attr-defined]
