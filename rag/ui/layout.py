"""The Gradio 6 Blocks: chat, settings, Documents tab, and the public API endpoints.

Public endpoints (``gradio_client.Client(url).view_api()``):

* ``/ask``            (question: str, k: int = 5 (1..50), mode: "hybrid" | "bm25" | "dense",
                      history: list[str] | None = None (earlier questions of the conversation))
                      -> the :class:`rag.Answer` as a dict (``dataclasses.asdict``)
* ``/documents``      () -> the indexed documents, model and build time
* ``/add_documents``  (files: list of .txt/.md files) -> (status HTML, result dict)

Every other event is UI-internal (``api_visibility="private"``).
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
.gradio-container { max-width: 1200px !important; margin: 0 auto !important; }
#rag-header h1 { margin-bottom: 0.1em; }
#rag-header p { margin-top: 0; color: var(--body-text-color-subdued); }
.rag-status { font-size: 0.9em; color: var(--body-text-color-subdued); }
.rag-answer { line-height: 1.6; }
.rag-short { font-size: 1.05em; margin-bottom: 0.35em; }
.rag-short-value { font-size: 1.15em; color: var(--color-accent); }
.rag-text { margin: 0.2em 0 0.5em 0; }
mark.rag-span { background: #ffe58f; color: inherit; font-weight: 700; padding: 0 2px; border-radius: 3px; }
mark.rag-quote { background: #d6e8ff; color: inherit; padding: 0 1px; border-radius: 3px;
  text-decoration: underline; text-decoration-color: #4096ff; text-underline-offset: 3px; }
mark.rag-quote mark.rag-span { background: #ffe58f; }
.rag-ref { color: var(--color-accent); font-weight: 600; margin-left: 2px; }
.rag-also { font-size: 0.9em; color: var(--body-text-color-subdued); margin: 0 0 0.4em 0; }
.rag-sources { border-top: 1px solid var(--border-color-primary); margin-top: 0.4em; padding-top: 0.4em; }
.rag-sources-title, .rag-closest-title { font-size: 0.85em; font-weight: 600; text-transform: none;
  color: var(--body-text-color-subdued); margin-bottom: 0.3em; }
.rag-source, .rag-closest-item { margin-bottom: 0.6em; }
.rag-source-head { font-size: 0.85em; }
.rag-num { font-weight: 700; color: var(--color-accent); }
.rag-doc { font-weight: 600; }
.rag-pos { color: var(--body-text-color-subdued); margin-left: 0.4em; }
.rag-passage { margin: 0.25em 0 0 0; padding: 0.35em 0.7em; border-left: 3px solid #91caff;
  background: var(--background-fill-secondary); font-size: 0.92em; border-radius: 0 4px 4px 0; }
.rag-notfound .rag-refusal { margin: 0 0 0.2em 0; }
.rag-notfound .rag-refusal-detail { margin: 0 0 0.5em 0; color: var(--body-text-color-subdued); font-size: 0.9em; }
.rag-closest { border: 1px dashed var(--border-color-primary); border-radius: 6px; padding: 0.4em 0.6em; }
.rag-closest .rag-passage { border-left-color: #d9d9d9; }
.rag-error p { color: #cf1322; margin: 0; }
.rag-table { border-collapse: collapse; margin: 0.5em 0; font-size: 0.92em; }
.rag-table th, .rag-table td { border: 1px solid var(--border-color-primary); padding: 0.25em 0.6em; text-align: left; }
.rag-report { margin: 0.4em 0; }
.rag-report summary { cursor: pointer; }
.rag-summary { font-size: 0.85em; white-space: pre-wrap; }
.rag-good { color: #389e0d; }
.rag-bad { color: #cf1322; }
.rag-muted { color: var(--body-text-color-subdued); }
.rag-understood { font-size: 0.85em; color: var(--body-text-color-subdued); margin-top: 0.2em; }
.rag-example button, button.rag-example { font-size: 0.9em !important; text-align: left; }
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
                turns: tuple) -> tuple[handlers.History, str, tuple]:
        return handlers.converse_reply(service, question, history, k, mode, turns)

    def respond_example(question: str, history: handlers.History, k: float, mode: str,
                        turns: tuple) -> tuple[handlers.History, str, tuple]:
        return handlers.converse_reply(service, question, history, k, mode, turns)

    def refresh() -> tuple[str, str]:
        return handlers.documents_view(service)

    demo: gr.Blocks
    # delete_cache: Gradio deletes the uploads it holds once they are that old (never added ones).
    with gr.Blocks(title=TITLE, fill_width=False, analytics_enabled=False, delete_cache=delete_cache) as demo:
        gr.HTML(_header())
        status = gr.HTML('<div class="rag-status">Loading the index… · 正在加载索引…</div>', elem_id="rag-status")
        # this browser session's conversation: its earlier turns (rag.answer.conversation.Turn)
        turns = gr.State(())
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
                                placeholder="Ask a question about the documents… · 请输入问题…",
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
                gr.Markdown("### Remove a document · 删除文档\nDocuments added here can be removed; the files of "
                            "the documents folder are removed there.")
                with gr.Row(equal_height=True):
                    to_remove = gr.Dropdown(choices=[], value=None, label="Added document · 已添加的文档",
                                            elem_id="rag-remove-choice", scale=4, allow_custom_value=False)
                    remove_btn = gr.Button("Remove · 删除", variant="stop", elem_id="rag-remove", scale=1,
                                           min_width=110)
                remove_status = gr.HTML(elem_id="rag-remove-status")

        # Public API: the three documented endpoints.
        gr_api(ask, api_name="ask", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        gr_api(documents, api_name="documents", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask")
        add_btn.click(
            add_documents, inputs=[files], outputs=[add_status, add_result],
            api_name="add_documents", concurrency_limit=1, concurrency_id="index_write",
            show_progress="full",
        ).then(
            lambda: (None, *refresh(), choices()), outputs=[files, status, overview, to_remove],
            api_visibility="private", queue=False,
        )

        # UI-internal events.
        def choices() -> Any:
            return gr.update(choices=handlers.removable_choices(service), value=None)

        remove_btn.click(
            lambda source: handlers.remove_document(service, source), inputs=[to_remove], outputs=[remove_status],
            api_visibility="private", concurrency_limit=1, concurrency_id="index_write",
        ).then(lambda: (*refresh(), choices()), outputs=[status, overview, to_remove], api_visibility="private",
               queue=False)
        gr.on(
            [question.submit, ask_btn.click], respond, inputs=[question, chatbot, k, mode, turns],
            outputs=[chatbot, question, turns],
            api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask",
        )
        for btn, ex in zip(example_buttons, examples):
            btn.click(
                partial(respond_example, ex), inputs=[chatbot, k, mode, turns], outputs=[chatbot, question, turns],
                api_visibility="private", concurrency_limit=ASK_CONCURRENCY, concurrency_id="ask",
            )
        clear.click(lambda: ([], "", ()), outputs=[chatbot, question, turns], api_visibility="private", queue=False)
        # the chat's own clear icon starts a new conversation too
        chatbot.clear(lambda: (), outputs=[turns], api_visibility="private", queue=False)
        # Cheap, but they wait while the index loads at start: no shared concurrency slot.
        docs_tab.select(lambda: (*refresh(), choices()), outputs=[status, overview, to_remove],
                        api_visibility="private", concurrency_limit=None)
        demo.load(refresh, outputs=[status, overview], api_visibility="private", concurrency_limit=None)
    return demo
