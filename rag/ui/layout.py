"""The Gradio 6 Blocks: chat, settings, Documents tab, and the public API endpoints.

Public endpoints (``gradio_client.Client(url).view_api()``):

* ``/ask``            (question: str, k: int = 5 (1..50), mode: "hybrid" | "bm25" | "dense",
                      history: list[str] | None = None (earlier questions of the conversation))
                      -> the :class:`rag.Answer` as a dict (``dataclasses.asdict``)
* ``/documents``      () -> the indexed documents, model and build time
* ``/add_documents``  (files: list of .txt/.md files) -> (status HTML, result dict)

Every other event is UI-internal (``api_visibility="private"``).

The document viewer: each source of an answer has a button (``.rag-open``; the class
``rag-key-<reply>-<item>`` names what it opens, as the chat's sanitiser keeps classes only).
:data:`JS` (run on page load) hands a click on one to the hidden ``#rag-cite-key`` box and
``#rag-cite-go`` button, whose event renders the document into the viewer panel
(``#rag-viewer``, over the page's right side, the whole screen on a phone); the viewer's
``gr.HTML`` scrolls the quote into view whenever it is rendered. Escape closes it.
"""

# No `from __future__ import annotations`: gr.api reads the endpoint types at run time.

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any, Literal

import gradio as gr
from gradio.events import api as gr_api

from rag.errors import RagError
from rag.settings import MODES

from rag.ui import handlers
from rag.ui.service import QAService
from rag.ui.http_limits import UPLOAD_CACHE
from rag.ui.uploads import ALLOWED_SUFFIXES, MAX_UPLOAD_BYTES

Mode = Literal["hybrid", "bm25", "dense"]

ASK_CONCURRENCY = 4
"""Questions answered at once (they only read the current index)."""

TITLE = "Ask the documents · 文档问答"

CSS = """
:root, .gradio-container {
  --rag-span-bg: #ffe58f; --rag-span-fg: #1f1f1f;
  --rag-quote-bg: #d6e8ff; --rag-quote-fg: #0b1f3a; --rag-quote-line: #1d63d8;
  --rag-passage-bg: #e8e8e8; --rag-passage-fg: #1f1f1f;
  --rag-accent-fg: #0b57d0; --rag-good-fg: #1e6b0a; --rag-bad-fg: #b3261e; --rag-muted-fg: #4b5563;
}
.dark, .dark .gradio-container {
  --rag-span-bg: #ffd666; --rag-span-fg: #141414;
  --rag-quote-bg: #17365f; --rag-quote-fg: #eaf2ff; --rag-quote-line: #8ab4ff;
  --rag-passage-bg: #3a3a3a; --rag-passage-fg: #f2f2f2;
  --rag-accent-fg: #9cc2ff; --rag-good-fg: #8fdc6a; --rag-bad-fg: #ff9a93; --rag-muted-fg: #b4bcc8;
}
.gradio-container { max-width: 1200px !important; margin: 0 auto !important; }
#rag-header h1 { margin-bottom: 0.1em; }
#rag-header p { margin-top: 0; color: var(--rag-muted-fg); }
.rag-status { font-size: 0.9em; color: var(--rag-muted-fg); }
.rag-answer { line-height: 1.6; overflow-wrap: anywhere; }
.rag-short { font-size: 1.05em; margin-bottom: 0.35em; }
.rag-short-value { font-size: 1.15em; color: var(--rag-accent-fg); }
.rag-text { margin: 0.2em 0 0.5em 0; }
mark.rag-span { background: var(--rag-span-bg); color: var(--rag-span-fg); font-weight: 700; padding: 0 2px;
  border-radius: 3px; }
mark.rag-quote { background: var(--rag-quote-bg); color: var(--rag-quote-fg); padding: 0 1px; border-radius: 3px;
  text-decoration: underline; text-decoration-color: var(--rag-quote-line); text-underline-offset: 3px; }
mark.rag-quote mark.rag-span { background: var(--rag-span-bg); color: var(--rag-span-fg); }
.rag-ref { color: var(--rag-accent-fg); font-weight: 600; margin-left: 2px; }
.rag-also { font-size: 0.9em; color: var(--rag-muted-fg); margin: 0 0 0.4em 0; }
.rag-sources { border-top: 1px solid var(--border-color-primary); margin-top: 0.4em; padding-top: 0.4em; }
.rag-sources-title, .rag-closest-title { font-size: 0.85em; font-weight: 600; text-transform: none;
  color: var(--rag-muted-fg); margin-bottom: 0.3em; }
.rag-source, .rag-closest-item { margin-bottom: 0.6em; }
.rag-source-head { font-size: 0.85em; }
.rag-num { font-weight: 700; color: var(--rag-accent-fg); }
.rag-doc { font-weight: 600; overflow-wrap: anywhere; }
.rag-pos { color: var(--rag-muted-fg); margin-left: 0.4em; }
button.rag-open { font: inherit; cursor: pointer; color: var(--rag-accent-fg); background: transparent;
  border: 1px solid currentColor; border-radius: 4px; padding: 0 0.45em; margin-left: 0.4em; line-height: 1.5; }
button.rag-open:hover, button.rag-open:focus-visible { background: var(--rag-quote-bg); color: var(--rag-quote-fg); }
button.rag-open-ref { border: none; padding: 0 1px; margin: 0; font-weight: 600; text-decoration: underline; }
.rag-passage { margin: 0.25em 0 0 0; padding: 0.35em 0.7em; border-left: 3px solid var(--rag-quote-line);
  background: var(--background-fill-secondary); font-size: 0.92em; border-radius: 0 4px 4px 0; }
.rag-notfound .rag-refusal { margin: 0 0 0.2em 0; }
.rag-notfound .rag-refusal-detail { margin: 0 0 0.5em 0; color: var(--rag-muted-fg); font-size: 0.9em; }
.rag-closest { border: 1px dashed var(--border-color-primary); border-radius: 6px; padding: 0.4em 0.6em; }
.rag-closest .rag-passage { border-left-color: #8c8c8c; }
.rag-error p { color: var(--rag-bad-fg); margin: 0; }
.rag-table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; max-width: 100%; }
.rag-table th, .rag-table td { border: 1px solid var(--border-color-primary); padding: 0.25em 0.6em; text-align: left; }
.rag-table td:first-child { overflow-wrap: anywhere; }
.rag-report { margin: 0.4em 0; overflow-wrap: anywhere; }
.rag-report summary { cursor: pointer; }
.rag-summary { font-size: 0.85em; white-space: pre-wrap; overflow-wrap: anywhere; }
.rag-good { color: var(--rag-good-fg); }
.rag-bad { color: var(--rag-bad-fg); }
.rag-muted { color: var(--rag-muted-fg); }
.rag-understood { font-size: 0.85em; color: var(--rag-muted-fg); margin-top: 0.2em; }
.rag-example button, button.rag-example { font-size: 0.9em !important; text-align: left; white-space: normal !important;
  overflow-wrap: anywhere; }
#rag-viewer { position: fixed; top: 0; right: 0; bottom: 0; width: min(760px, 50vw); max-width: 100vw; z-index: 1000;
  display: flex; flex-direction: column; flex-wrap: nowrap; overflow: hidden; margin: 0; padding: 0 1em; gap: 0;
  background: var(--background-fill-primary); border-left: 1px solid var(--border-color-primary);
  box-shadow: -6px 0 24px rgba(0, 0, 0, 0.25); box-sizing: border-box; }
#rag-viewer-bar { flex: 0 0 auto; background: var(--background-fill-primary); padding: 0.6em 0 0.4em 0;
  flex-wrap: wrap; gap: 0.4em; }
#rag-viewer-bar button { flex: 1 1 auto; min-width: 0 !important; }
#rag-viewer-body { flex: 1 1 auto; min-height: 0; overflow-y: auto !important; overflow-x: hidden; padding-bottom: 1em; }
.rag-viewer-head { position: sticky; top: 0; z-index: 1; background: var(--background-fill-primary);
  padding: 0.3em 0 0.5em 0; margin-bottom: 0.6em; border-bottom: 1px solid var(--border-color-primary); }
.rag-viewer-title { font-size: 1.1em; overflow-wrap: anywhere; }
.rag-viewer-meta { font-size: 0.85em; color: var(--rag-muted-fg); margin-top: 0.15em; }
.rag-viewer-legend { font-size: 0.85em; margin-top: 0.3em; display: flex; gap: 0.5em; flex-wrap: wrap; }
.rag-viewer-key { padding: 0 0.35em; border-radius: 3px; }
.rag-viewer-cut { font-size: 0.85em; color: var(--rag-muted-fg); font-style: italic; }
.rag-viewer-text { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.75; font-size: 1em;
  color: var(--body-text-color); }
.rag-vb { content-visibility: auto; contain-intrinsic-size: auto 30em; }
.rag-view-quote, mark.rag-view-quote { background: var(--rag-quote-bg); color: var(--rag-quote-fg);
  outline: 2px solid var(--rag-quote-line); outline-offset: 1px; border-radius: 2px; }
.rag-view-passage, mark.rag-view-passage { background: var(--rag-passage-bg); color: var(--rag-passage-fg);
  outline: 2px dashed #8c8c8c; border-radius: 2px; }
.rag-view-span, mark.rag-view-span, mark.rag-view-quote mark.rag-view-span { background: var(--rag-span-bg);
  color: var(--rag-span-fg); font-weight: 700; outline: none; }
@media (max-width: 999px) { #rag-viewer { width: 100vw; border-left: none; } }
.rag-viewer-error p { margin: 0.3em 0; }
.rag-viewer-error strong { color: var(--rag-bad-fg); }
@media (max-width: 640px) {
  #rag-header h1 { font-size: 1.25em; margin-top: 0.2em; }
  #rag-header p { display: none; }
  #rag-chat { height: min(560px, calc(100svh - 330px)) !important; min-height: 220px; }
  #rag-ask { flex: 0 0 auto !important; min-width: 0 !important; white-space: nowrap; padding-left: 0.7em;
    padding-right: 0.7em; }
  #rag-question { flex: 1 1 0 !important; min-width: 0 !important; }
  #rag-viewer { padding: 0 0.6em; }
  .rag-table { font-size: 0.8em; }
  .rag-table .rag-col-extra { display: none; }
  .rag-table th, .rag-table td { padding: 0.2em 0.3em; }
}
"""

HEAD = """<style>
/* Page-level rules: Gradio scopes every rule of a custom stylesheet's @media blocks inside its
   container, so these go into the page's head as they are. */
@media (min-width: 1000px) {
  /* the open viewer takes the right half; the page moves into the left one */
  body:has(#rag-viewer) .gradio-container { margin-left: 0 !important; margin-right: min(760px, 50vw) !important;
    max-width: calc(100vw - min(760px, 50vw)) !important; }
}
@media (max-width: 640px) {
  .gradio-container { padding-left: 6px !important; padding-right: 6px !important; }
  .gradio-container .main { padding-left: 4px !important; padding-right: 4px !important; }
}
</style>"""
"""Injected into the page's ``<head>`` (``launch(head=...)``)."""

JS = """
() => {
  const reveal = () => {
    const hit = document.querySelector('#rag-viewer .rag-view-hit');
    if (hit) hit.scrollIntoView({block: 'center', inline: 'nearest'});
  };
  window.ragRevealQuote = reveal;
  document.addEventListener('click', (event) => {
    const button = event.target && event.target.closest ? event.target.closest('button.rag-open') : null;
    if (!button) return;
    event.preventDefault();
    event.stopPropagation();
    const key = Array.from(button.classList).find((c) => c.startsWith('rag-key-'));
    const box = document.querySelector('#rag-cite-key textarea, #rag-cite-key input');
    const go = document.querySelector('#rag-cite-go');
    if (!key || !box || !go) return;
    box.value = key;
    box.dispatchEvent(new Event('input', {bubbles: true}));
    setTimeout(() => go.click(), 0);
  }, true);
  document.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    const close = document.querySelector('#rag-viewer-close');
    if (close && close.offsetParent !== null) close.click();
  });
}
"""
"""Run on page load: a click on a source's button opens it in the viewer; Escape closes the viewer."""

_VIEWER_ON_LOAD = """
const reveal = () => {
  const hit = element.querySelector('.rag-view-hit');
  if (hit) hit.scrollIntoView({block: 'center', inline: 'nearest'});
};
const soon = () => requestAnimationFrame(() => requestAnimationFrame(reveal));
soon();
watch('value', soon);
"""

_FONTS = [
    "system-ui", "-apple-system", "Segoe UI", "Noto Sans", "Noto Sans CJK SC", "PingFang SC",
    "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", "sans-serif",
]
_MONO = ["ui-monospace", "SFMono-Regular", "Menlo", "Noto Sans Mono CJK SC", "monospace"]


def theme() -> gr.themes.Base:
    """System fonts only: nothing is fetched from a font service, and CJK text uses the
    platform's CJK fonts."""
    return gr.themes.Soft(primary_hue="blue", font=_FONTS, font_mono=_MONO)


def _header() -> str:
    return (
        f'<div id="rag-header"><h1>{TITLE}</h1>'
        "<p>Answers are quoted from the documents, never invented; every answer shows where it comes from. "
        "答案均摘自文档原文，并注明出处。</p></div>"
    )


def _error_for_user(exc: RagError) -> gr.Error:
    return gr.Error(str(exc), print_exception=False)


def _discard_uploads(paths: Sequence[str] | None) -> None:
    """Delete Gradio's cached copies of uploads once they are saved (or refused), so that the
    cache does not keep serving them."""
    cache = Path(gr.utils.get_upload_folder()).resolve()
    for p in paths or []:
        try:
            rp = Path(p).resolve()
            rp.relative_to(cache)
        except (ValueError, OSError):
            continue
        rp.unlink(missing_ok=True)
        try:
            rp.parent.rmdir()
        except OSError:
            pass


#: The Documents tab's removal help: a folder index records exclusions, a database index does not
#: (:meth:`rag.ui.service.QAService.remove_document` refuses a documents-folder file there).
REMOVE_HELP_FOLDER = ("### Remove a document · 删除文档\nA document added here is removed and its file deleted. "
                      "A file of the documents folder is *excluded*: it leaves the index, the file stays where it "
                      "is, and the next start does not index it again (restore it below). 文档文件夹中的文件只会"
                      "被排除，文件本身保留。")
REMOVE_HELP_DATABASE = ("### Remove a document · 删除文档\nA document added here is removed and its file deleted. "
                        "This index is a database, which keeps no list of excluded files: to drop a file of the "
                        "documents folder, delete it there, and the next start removes it from the index. "
                        "数据库索引不记录排除的文件：请删除文档文件夹中的文件。")


def build_blocks(service: QAService, *, default_mode: str = "hybrid", examples: Sequence[str] = handlers.EXAMPLES,
                 delete_cache: tuple[int, int] | None = UPLOAD_CACHE) -> gr.Blocks:
    def ask(question: str, k: int = handlers.K_DEFAULT, mode: Mode = default_mode,  # type: ignore[assignment]
            history: list[str] | None = None) -> dict[str, Any]:
        """Answer a question from the documents: the extracted sentence (`text`), the short answer
        (`span`), numbered `citations` (source, character offsets, quote), or `found` false with
        the closest `passages`. `history`: the earlier questions of the conversation, oldest
        first; a follow-up ("他认为…？", "What did he say?") is then understood from them
        (`understood`)."""
        try:
            return handlers.ask_json(service, question, k, mode, history)
        except RagError as exc:
            raise _error_for_user(exc) from None

    def documents() -> dict[str, Any]:
        """The indexed documents with their passage counts and cleaning, the model and build time."""
        try:
            return handlers.documents_json(service)
        except RagError as exc:
            raise _error_for_user(exc) from None

    def add_documents(files: list[str] | None, progress: gr.Progress = gr.Progress()) -> tuple[str, dict[str, Any]]:
        def show(fraction: float, desc: str) -> None:
            progress(fraction, desc=desc)

        try:
            return handlers.add_files(service, files, handlers.progress_bar(show))
        finally:
            _discard_uploads(files)

    def respond(question: str, history: handlers.History, k: float, mode: str,
                turns: tuple, refs: tuple) -> tuple[handlers.History, str, tuple, tuple]:
        return handlers.chat_turn(service, question, history, k, mode, turns, refs)

    def respond_example(question: str, history: handlers.History, k: float, mode: str,
                        turns: tuple, refs: tuple) -> tuple[handlers.History, str, tuple, tuple]:
        return handlers.chat_turn(service, question, history, k, mode, turns, refs)

    def refresh() -> tuple[str, str]:
        return handlers.documents_view(service)

    def documents_tab() -> tuple[Any, ...]:
        """Everything the Documents tab shows: the status line, the overview, what can be
        removed, what is excluded and can be restored."""
        status_html, overview_html = refresh()
        excluded_html, restorable = handlers.excluded_view(service)
        return (status_html, overview_html,
                gr.update(choices=handlers.removable_choices(service), value=None),
                excluded_html,
                gr.update(choices=restorable, value=restorable[0] if restorable else None))

    def viewer_outputs(html_out: str, state: handlers.ViewerState | None, *, panel: bool = True) -> tuple[Any, ...]:
        buttons = (gr.update(interactive=bool(state and state.can_earlier)),
                   gr.update(interactive=bool(state and state.can_later)),
                   gr.update(interactive=bool(state and state.can_whole)))
        shown = (gr.update(visible=True),) if panel else ()
        return (html_out, state, *shown, *buttons)

    def open_source(key: str, refs: tuple) -> tuple[Any, ...]:
        return viewer_outputs(*handlers.open_view(service, key, refs))

    def widen(how: str, state: handlers.ViewerState | None) -> tuple[Any, ...]:
        return viewer_outputs(*handlers.widen_view(service, state, how), panel=False)

    def restore(source: str | None, progress: gr.Progress = gr.Progress()) -> str:
        def show(fraction: float, desc: str) -> None:
            progress(fraction, desc=desc)

        return handlers.restore_document(service, source, handlers.progress_bar(show))

    demo: gr.Blocks
    # delete_cache: Gradio deletes the uploads it holds once they are that old (never added ones).
    with gr.Blocks(title=TITLE, fill_width=False, analytics_enabled=False, delete_cache=delete_cache) as demo:
        gr.HTML(_header())
        status = gr.HTML('<div class="rag-status">Loading the index… · 正在加载索引…</div>', elem_id="rag-status")
        # this browser session's conversation: its earlier turns (rag.answer.conversation.Turn)
        turns = gr.State(())
        # what each reply's source buttons open (handlers.Refs), and what the viewer shows
        refs = gr.State(())
        viewer_state = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Chat · 问答", id="chat"):
                with gr.Row(equal_height=False):
                    with gr.Column(scale=4):
                        chatbot = gr.Chatbot(
                            label="Chat",
                            show_label=False,
                            elem_id="rag-chat",
                            height=580,
                            latex_delimiters=[],
                            sanitize_html=True,
                            allow_tags=False,
                            render_markdown=True,
                            feedback_options=None,
                            buttons=["copy"],
                            placeholder=(
                                "<div style='text-align:center'><b>Ask about the documents · 就文档内容提问</b><br>"
                                "The answer is quoted from the text, with its source. 答案摘自原文并注明出处。</div>"
                            ),
                        )
                        with gr.Row(equal_height=True):
                            question = gr.Textbox(
                                show_label=False,
                                placeholder="Ask a question… · 请输入问题…",
                                elem_id="rag-question",
                                scale=6,
                                max_length=2000,
                                autofocus=True,
                                container=False,
                            )
                            ask_btn = gr.Button("Ask · 提问", variant="primary", elem_id="rag-ask", scale=1, min_width=110)
                        gr.HTML('<div class="rag-muted">Try an example · 试试这些问题：</div>')
                        example_buttons = [
                            gr.Button(ex, size="sm", variant="secondary", elem_classes=["rag-example"], elem_id=f"rag-example-{i}")
                            for i, ex in enumerate(examples)
                        ]
                    with gr.Column(scale=1, min_width=240):
                        gr.Markdown("### Settings · 设置")
                        k = gr.Slider(
                            handlers.K_MIN, handlers.K_MAX, value=handlers.K_DEFAULT, step=1,
                            label="Passages searched (k) · 检索段落数",
                            info="More passages: more candidates for the answer, slower.",
                        )
                        mode = gr.Radio(
                            list(MODES), value=default_mode,
                            label="Retrieval mode · 检索方式",
                            info="hybrid: keywords + meaning; bm25: keywords only; dense: meaning only.",
                        )
                        clear = gr.Button("New conversation · 新对话", variant="secondary", elem_id="rag-new",
                                          elem_classes=["rag-new"])
                        gr.HTML('<div class="rag-muted">Follow-up questions (他…？, What did he say?) are understood '
                                "from the earlier ones; a new conversation forgets them. 追问会结合前文理解。</div>")
            with gr.Tab("Documents · 文档", id="documents") as docs_tab:
                overview = gr.HTML('<div class="rag-muted">Loading… · 正在加载…</div>', elem_id="rag-overview")
                gr.Markdown(
                    f"### Add documents · 添加文档\n{', '.join(ALLOWED_SUFFIXES)} files, up to "
                    f"{MAX_UPLOAD_BYTES // (1024 * 1024)} MB each. The chat switches to the new index once it is "
                    "complete; if anything fails, the current index stays as it is. A file that cannot be added "
                    "is listed with its reason; the others are added."
                )
                # no file_types filter: a file of another type arrives and is refused, with its reason, in
                # the batch's one message (the browser's filter would drop it with a toast of its own)
                files = gr.File(
                    file_count="multiple",
                    type="filepath",
                    label="Documents (text, Markdown, HTML, PDF, Word) · 文档",
                    elem_id="rag-upload",
                    height=140,
                )
                add_btn = gr.Button("Add to the index · 加入索引", variant="primary", elem_id="rag-add")
                add_status = gr.HTML(elem_id="rag-add-status")
                add_result = gr.JSON(visible=False)
                gr.Markdown(REMOVE_HELP_FOLDER if service.index_folder is not None else REMOVE_HELP_DATABASE)
                with gr.Row(equal_height=True):
                    to_remove = gr.Dropdown(choices=[], value=None, label="Document · 文档",
                                            elem_id="rag-remove-choice", scale=4, min_width=200,
                                            allow_custom_value=False)
                    remove_btn = gr.Button("Remove · 删除", variant="stop", elem_id="rag-remove", scale=1,
                                           min_width=110)
                remove_status = gr.HTML(elem_id="rag-remove-status")
                gr.Markdown("### Excluded documents · 已排除的文档\nFiles of the documents folder taken out of the "
                            "index. Restore one to index it again.")
                excluded_list = gr.HTML('<div class="rag-muted">Loading… · 正在加载…</div>', elem_id="rag-excluded")
                with gr.Row(equal_height=True):
                    to_restore = gr.Dropdown(choices=[], value=None, label="Excluded document · 已排除的文档",
                                             elem_id="rag-restore-choice", scale=4, min_width=200,
                                             allow_custom_value=False)
                    restore_btn = gr.Button("Restore · 恢复", variant="primary", elem_id="rag-restore", scale=1,
                                            min_width=110)
                restore_status = gr.HTML(elem_id="rag-restore-status")

        # The document viewer, over the page; the hidden box and button carry a source's button click.
        cite_key = gr.Textbox(visible="hidden", elem_id="rag-cite-key", show_label=False, container=False)
        cite_go = gr.Button("Open", visible="hidden", elem_id="rag-cite-go")
        with gr.Column(visible=False, elem_id="rag-viewer") as viewer_panel:
            with gr.Row(elem_id="rag-viewer-bar", equal_height=True):
                view_earlier = gr.Button("◀ Earlier · 前文", size="sm", elem_id="rag-view-earlier", interactive=False)
                view_later = gr.Button("Later ▶ · 后文", size="sm", elem_id="rag-view-later", interactive=False)
                view_whole = gr.Button("Whole document · 全文", size="sm", elem_id="rag-view-whole",
                                       interactive=False)
                view_close = gr.Button("✕ Close · 关闭", size="sm", variant="secondary", elem_id="rag-viewer-close")
            viewer = gr.HTML("", elem_id="rag-viewer-body", js_on_load=_VIEWER_ON_LOAD)

        # Public API: the three documented endpoints.
        gr_api(ask, api_name="ask", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        gr_api(documents, api_name="documents", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        documents_outputs = [status, overview, to_remove, excluded_list, to_restore]
        add_btn.click(
            add_documents, inputs=[files], outputs=[add_status, add_result],
            api_name="add_documents", concurrency_limit=1, concurrency_id="index_write",
            show_progress="full",
        ).then(
            lambda: (None, *documents_tab()), outputs=[files, *documents_outputs],
            api_visibility="private", queue=False,
        )

        # UI-internal events.
        remove_btn.click(
            lambda source: handlers.remove_document(service, source), inputs=[to_remove], outputs=[remove_status],
            api_visibility="private", concurrency_limit=1, concurrency_id="index_write",
        ).then(documents_tab, outputs=documents_outputs, api_visibility="private", queue=False)
        restore_btn.click(
            restore, inputs=[to_restore], outputs=[restore_status], api_visibility="private", concurrency_limit=1,
            concurrency_id="index_write", show_progress="full",
        ).then(documents_tab, outputs=documents_outputs, api_visibility="private", queue=False)
        gr.on(
            [question.submit, ask_btn.click], respond, inputs=[question, chatbot, k, mode, turns, refs],
            outputs=[chatbot, question, turns, refs],
            api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask",
        )
        for btn, ex in zip(example_buttons, examples):
            btn.click(
                partial(respond_example, ex), inputs=[chatbot, k, mode, turns, refs],
                outputs=[chatbot, question, turns, refs],
                api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask",
            )
        clear.click(lambda: ([], "", (), ()), outputs=[chatbot, question, turns, refs], api_visibility="private",
                    queue=False)
        # the chat's own clear icon starts a new conversation too
        chatbot.clear(lambda: ((), ()), outputs=[turns, refs], api_visibility="private", queue=False)
        view_buttons = [view_earlier, view_later, view_whole]
        cite_go.click(open_source, inputs=[cite_key, refs], outputs=[viewer, viewer_state, viewer_panel, *view_buttons],
                      api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="view")
        for btn, how in zip(view_buttons, ("earlier", "later", "whole")):
            btn.click(partial(widen, how), inputs=[viewer_state], outputs=[viewer, viewer_state, *view_buttons],
                      api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="view")
        view_close.click(lambda: gr.update(visible=False), outputs=[viewer_panel], api_visibility="private",
                         queue=False)
        # Cheap, but they wait while the index loads at start: no shared concurrency slot.
        docs_tab.select(documents_tab, outputs=documents_outputs, api_visibility="private", concurrency_limit=None)
        demo.load(documents_tab, outputs=documents_outputs, api_visibility="private", concurrency_limit=None)
    return demo
