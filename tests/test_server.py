"""`rag serve`'s HTTP API, with the fake models: the contract, every 4xx, the token, timeouts and
concurrency in milliseconds. tests/test_serve_live.py runs the real server and a real browser."""
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from fastapi.testclient import TestClient

from rag import background
from rag.assembly import build_pipeline
from rag.config import load_models_config
from rag.decision import Abstention
from rag.errors import RagError, Unavailable
from rag.pipeline import MAX_QUESTION_CHARS, Pipeline
from rag.server import MAX_BATCH, MAX_BODY_BYTES, MAX_REQUEST_TOP_K, create_app
from tests.conftest import ROOT, SEEDS, read_source
from tests.fakes import FakeEmbedder, FakeReader

DECISION = Abstention(bias=-4.0, margin=1.0, threshold=0.5)


@pytest.fixture(scope="module")
def fake_pipeline(tmp_path_factory):
    parts = build_pipeline(load_models_config(ROOT / "models.toml"), SEEDS, tmp_path_factory.mktemp("fake-index"),
                           embedder=FakeEmbedder(), reader=FakeReader([]))
    return Pipeline(parts.corpus, parts.retriever, FakeReader(["five lions", "Ahmad Massoud"]), DECISION, 5)


def started(app) -> TestClient:
    return wait_until_ready(TestClient(app).__enter__())


def wait_until_ready(client: TestClient) -> TestClient:
    deadline = time.time() + 10
    while client.get("/healthz").status_code == 503 and client.get("/healthz").json()["status"] == "loading":
        assert time.time() < deadline, "the server never became ready"
        time.sleep(0.01)
    return client


@pytest.fixture
def client(fake_pipeline):
    client = started(create_app(lambda: fake_pipeline))
    yield client
    client.__exit__(None, None, None)


def test_an_answer_over_http_is_the_ask_json_contract_and_slices_its_article(client, fake_pipeline):
    response = client.post("/ask", json={"question": "What does Panjshir mean?"})
    assert response.status_code == 200
    body = response.json()
    assert body == fake_pipeline.ask("What does Panjshir mean?").to_json() | {"timings_ms": body["timings_ms"]}
    c = body["citation"]
    article = client.get(f"/documents/{c['doc_id']}").json()
    assert article["text"] == read_source(c["doc_id"]) and article["text"][c["start"]:c["end"]] == body["answer"] == "five lions"
    assert article["text"][c["sentence_start"]:c["sentence_start"] + len(c["sentence"])] == c["sentence"]
    assert {"title", "date", "source", "doc_id"} <= set(article)


def test_why_adds_each_passages_best_span_most_trusted_first(client, fake_pipeline):
    body = client.post("/ask", json={"question": "What does Panjshir mean?", "why": True}).json()
    asked = fake_pipeline.ask("What does Panjshir mean?")
    assert body["candidates"] == asked.to_json(why=True)["candidates"] and len(body["candidates"]) == len(body["passages"])
    assert body["candidates"][0]["answer"] == body["answer"] == "five lions"
    assert "candidates" not in client.post("/ask", json={"question": "What does Panjshir mean?"}).json()
    batch = client.post("/ask/batch", json={"questions": ["What does Panjshir mean?"], "why": True}).json()
    assert batch["answers"][0]["candidates"] == body["candidates"]


def test_top_k_and_dates_are_honoured(client):
    assert len(client.post("/ask", json={"question": "What does Panjshir mean?", "top_k": 2}).json()["passages"]) == 2
    late = client.post("/ask", json={"question": "What does Panjshir mean?", "since": "2030-01-01"}).json()
    assert late["abstained"] and late["passages"] == []


@pytest.mark.parametrize("request_kwargs, status, says", [
    ({"json": {"question": ""}}, 400, "empty"),
    ({"json": {"question": "?!"}}, 400, "no words"),
    ({"json": {"question": "x" * 1001}}, 422, "question"),
    ({"json": {"question": 5}}, 422, "question"),
    ({"json": {}}, 422, "question"),
    ({"json": {"question": "Who?", "top_k": 0}}, 422, "top_k"),
    ({"json": {"question": "Who?", "top_k": "5"}}, 422, "top_k"),  # read as 5 before, though the README said 422
    ({"json": {"question": "Who?", "why": "yes"}}, 422, "why"),
    ({"json": {"question": "Who?", "topk": 3}}, 422, "topk"),  # a misspelt field was silently ignored
    ({"json": {"question": "Who?", "since": "yesterday"}}, 400, "since 'yesterday' is not a date (use YYYY-MM-DD)"),
    ({"json": {"question": "Who?", "since": "2021-09-01", "until": "2021-08-01"}}, 400, "since 2021-09-01 is after until 2021-08-01"),
    ({"content": b'{"question": "Who', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b"\xff\xfe", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"content": b'{"question": "caf\xe9"}', "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({}, 400, "not valid JSON"),  # no body at all
    ({"json": {"question": "Who?" * (MAX_BODY_BYTES // 4)}}, 413, "over"),
])
def test_bad_input_is_a_4xx_with_a_json_error(client, request_kwargs, status, says):
    response = client.post("/ask", **request_kwargs)
    assert response.status_code == status and says in response.json()["error"] and "--" not in response.json()["error"]


@pytest.mark.parametrize("content_type", [None, "application/x-www-form-urlencoded", "text/plain"])
def test_a_body_is_read_as_json_whatever_content_type_it_declares(client, content_type):
    headers = {"content-type": content_type} if content_type else {}  # `curl -d` sends the form type
    response = client.post("/ask", content=b'{"question": "What does Panjshir mean?"}', headers=headers)
    assert response.status_code == 200 and response.json()["answer"] == "five lions"
    bad = client.post("/ask", content=b'{"question": "Who', headers=headers)
    assert bad.status_code == 400 and "not valid JSON" in bad.json()["error"]


def test_a_body_over_the_limit_without_a_declared_length_is_refused(client):
    chunks = (b"x" * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
    response = client.post("/ask", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "over" in response.json()["error"]


@pytest.mark.parametrize("doc_id", ["no-such-article", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "000_882549ac45e52293.txt"])
def test_only_articles_of_the_index_can_be_read(client, doc_id):
    response = client.get(f"/documents/{doc_id}")
    assert response.status_code == 404 and "error" in response.json() and "root:" not in response.text


def test_documents_without_an_id_says_how_to_name_one(client):
    for path in ("/documents", "/documents/"):
        response = client.get(path)
        assert response.status_code == 404 and "GET /documents/{doc_id}" in response.json()["error"]


def test_an_article_whose_id_holds_a_slash_can_be_read(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "feed.jsonl").write_text('{"id": "2021/09/panjshir", "text": "The valley held out."}\n', encoding="utf-8")
    parts = build_pipeline(load_models_config(ROOT / "models.toml"), seeds, tmp_path / "index",
                           embedder=FakeEmbedder(), reader=FakeReader([]))
    pipeline = Pipeline(parts.corpus, parts.retriever, FakeReader([]), DECISION, 5)
    with TestClient(create_app(lambda: pipeline)) as client:
        wait_until_ready(client)
        response = client.get("/documents/feed.jsonl%232021%2F09%2Fpanjshir")  # as the page asks: encodeURIComponent
        assert response.status_code == 200 and response.json()["text"] == "The valley held out."
        lost = client.get("/documents/feed.jsonl#2021/09/panjshir")  # as curl sends it: the # ends the path
        assert lost.status_code == 404 and lost.json()["error"] == (
            "no article 'feed.jsonl' in the index (a record of that file is feed.jsonl#2021/09/panjshir: "
            "write the # as %23 in a URL)")
        assert "%23" not in client.get("/documents/other.jsonl").json()["error"]  # no such file: no hint


def test_unknown_paths_and_methods_are_json_errors(client):
    assert client.get("/nowhere").status_code == 404 and "error" in client.get("/nowhere").json()
    assert client.get("/ask").status_code == 405 and "error" in client.get("/ask").json()


def test_a_batch_answers_each_question_and_a_bad_one_is_an_error_in_its_place(client):
    body = client.post("/ask/batch", json={"questions": ["What does Panjshir mean?", "", "Who leads the resistance?"]}).json()
    first, bad, third = body["answers"]
    assert first["answer"] == "five lions" and third["answer"] == "Ahmad Massoud"
    assert bad == {"question": "", "error": "the question is empty"}
    too_many = client.post("/ask/batch", json={"questions": ["Who?"] * (MAX_BATCH + 1)})
    assert too_many.status_code == 422


def test_a_batch_question_that_is_not_unicode_text_is_an_error_in_its_place(client):
    body = '{"questions": ["\\ud800 who?", "What does Panjshir mean?"]}'  # a lone surrogate, as JSON allows
    response = client.post("/ask/batch", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 200
    bad, good = response.json()["answers"]
    assert "not valid UTF-8" in bad["error"] and bad["question"] == "? who?"
    assert good["answer"] == "five lions"


def test_the_page_answers_head_as_link_checkers_and_monitors_ask(client):
    head = client.head("/")
    assert head.status_code == 200 and head.content == b"" and head.headers["content-type"].startswith("text/html")


def test_the_page_never_cuts_a_question_short_and_the_server_names_its_limit(client):
    """A maxlength cut a pasted question at its 500th character without a word, and the page
    answered what was left: the server's 422 says the limit instead."""
    assert "maxlength" not in client.get("/").text
    too_long = client.post("/ask", json={"question": "x" * (MAX_QUESTION_CHARS + 1)})
    assert too_long.status_code == 422 and f"at most {MAX_QUESTION_CHARS} characters" in too_long.json()["error"]


def test_concurrent_requests_give_the_answers_sequential_ones_give(client):
    questions = ["What does Panjshir mean?", "Who leads the resistance?", "Who won the World Cup?"] * 6
    sequential = [client.post("/ask", json={"question": q}).json() for q in questions]
    with ThreadPoolExecutor(8) as pool:
        concurrent = list(pool.map(lambda q: client.post("/ask", json={"question": q}).json(), questions))
    strip = lambda body: {k: v for k, v in body.items() if k != "timings_ms"}  # noqa: E731
    assert [strip(b) for b in concurrent] == [strip(b) for b in sequential]


def test_a_token_guards_everything_that_reads_the_articles(fake_pipeline):
    client = started(create_app(lambda: fake_pipeline, token="s3cret"))
    try:
        ask = {"json": {"question": "What does Panjshir mean?"}}
        assert client.post("/ask", **ask).status_code == 401
        assert client.post("/ask", headers={"Authorization": "Bearer wrong"}, **ask).status_code == 401
        assert client.get("/documents/000_882549ac45e52293").status_code == 401
        assert client.post("/ask", headers={"Authorization": "Bearer s3cret"}, **ask).json()["answer"] == "five lions"
        assert client.get("/").status_code == 200 and client.get("/healthz").status_code == 200  # no article text
    finally:
        client.__exit__(None, None, None)


def test_a_token_is_taken_in_any_case_of_its_scheme_and_a_wrong_one_is_said(fake_pipeline):
    client = started(create_app(lambda: fake_pipeline, token="s3cret"))
    try:
        ask = {"json": {"question": "What does Panjshir mean?"}}
        assert client.post("/ask", headers={"Authorization": "bearer s3cret"}, **ask).status_code == 200  # RFC 7235
        wrong = client.post("/ask", headers={"Authorization": "Bearer s3cre"}, **ask)
        assert wrong.status_code == 401 and wrong.json()["error"] == "the token given is not this server's"
        schema = client.get("/openapi.json").json()  # /docs can then send it: its "Authorize" button
        assert schema["components"]["securitySchemes"]["token"] == {"type": "http", "scheme": "bearer"}
        assert schema["security"] == [{"token": []}]
    finally:
        client.__exit__(None, None, None)


def test_healthz_says_loading_until_the_models_are_ready(fake_pipeline):
    release = threading.Event()
    client = TestClient(create_app(lambda: release.wait(10) and fake_pipeline)).__enter__()
    try:
        assert client.get("/healthz").status_code == 503 and client.get("/healthz").json()["status"] == "loading"
        asked = client.post("/ask", json={"question": "Who?"})
        assert asked.status_code == 503 and asked.headers["Retry-After"] == "5"  # clients that retry wait, then ask again
        assert client.get("/healthz").headers["Retry-After"] == "5"
        assert client.head("/healthz").status_code == 503  # monitors probe with HEAD too
        release.set()
        wait_until_ready(client)
        health = client.get("/healthz").json()
        assert health["status"] == "ready" and health["documents"] == len(fake_pipeline.corpus.documents)
        assert client.head("/healthz").status_code == 200 and client.head("/healthz").content == b""
        dates = sorted(d.date for d in fake_pipeline.corpus.documents.values() if d.date)
        assert health["dates"] == [dates[0], dates[-1]]  # what the page says when no article is in a range
        assert (health["top_k"], health["max_top_k"]) == (fake_pipeline.top_k, MAX_REQUEST_TOP_K)  # the page's "passages read"
    finally:
        client.__exit__(None, None, None)


def test_a_server_stopped_while_loading_ends_the_process_at_once(fake_pipeline, monkeypatch):
    # finalizing the interpreter while ONNX Runtime runs in the loading thread aborts it (exit 134)
    exits = []
    monkeypatch.setattr(background.os, "_exit", exits.append)
    release = threading.Event()
    TestClient(create_app(lambda: release.wait(10) and fake_pipeline)).__enter__().__exit__(None, None, None)
    assert exits == [0]
    TestClient(create_app(lambda: release.wait(10) and fake_pipeline, stop_code=lambda: 130)).__enter__().__exit__(None, None, None)
    assert exits == [0, 130]  # stopped by Ctrl-C
    release.set()
    asked = []
    started(create_app(lambda: fake_pipeline, stop_code=lambda: asked.append(1) or 130)).__exit__(None, None, None)
    assert exits == [0, 130] and asked == []  # a loaded server stops the ordinary way, saying nothing of its own


def test_a_question_past_the_timeout_is_a_504(fake_pipeline):
    class Slow:
        corpus, retriever, index_version = fake_pipeline.corpus, fake_pipeline.retriever, None
        warmed = False

        def ask(self, question, dates=None, top_k=None):
            if self.warmed:
                time.sleep(1.5)
            self.warmed = True
            return fake_pipeline.ask(question, dates, top_k)

    client = started(create_app(lambda: Slow(), timeout_s=0.2))
    try:
        response = client.post("/ask", json={"question": "Who?"})
        assert response.status_code == 504 and "0.2 s" in response.json()["error"]
    finally:
        client.__exit__(None, None, None)


def test_the_page_and_the_docs_load_nothing_from_the_internet(client):
    page = client.get("/").text
    assert "<form" in page and "http://" not in page and "https://" not in page
    docs = client.get("/docs").text
    assert "/docs-assets/swagger-ui-bundle.js" in docs and "cdn" not in docs.lower()
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200
    assert client.get("/static/app.js").status_code == 200
    assert "/ask" in client.get("/openapi.json").json()["paths"]


def test_a_pipeline_that_cannot_load_is_reported_and_the_server_says_why():
    from rag.errors import RagError

    def broken():
        raise RagError("the articles in /nowhere hold no text to index")

    heard = []
    client = TestClient(create_app(broken, on_problem=heard.append)).__enter__()
    try:
        deadline = time.time() + 5
        while client.get("/healthz").json()["status"] == "loading" and time.time() < deadline:
            time.sleep(0.01)
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json() == {"status": "failed", "problem": "the articles in /nowhere hold no text to index"}
        asked = client.post("/ask", json={"question": "Who?"})
        assert asked.status_code == 503 and "Retry-After" not in asked.headers and "Retry-After" not in health.headers
        assert heard and "/nowhere" in heard[0]
    finally:
        client.__exit__(None, None, None)


def test_a_load_that_failed_is_tried_again_once_the_index_changes(fake_pipeline):
    """Started on a folder of unreadable files, the server stayed "failed" after `rag index` mended
    it, until it was restarted."""
    from rag.errors import RagError

    version, loads = [None], []

    def load():
        loads.append(version[0])
        if version[0] is None:
            raise RagError("no readable articles in /news")
        return fake_pipeline

    client = TestClient(create_app(load, index_version=lambda: version[0])).__enter__()
    try:
        deadline = time.time() + 5
        while client.get("/healthz").json()["status"] == "loading" and time.time() < deadline:
            time.sleep(0.01)
        assert client.get("/healthz").json()["status"] == "failed" and loads == [None]  # not tried again as it is
        version[0] = "build-1"  # rag index, beside the server
        wait_until_ready(client)
        assert loads == [None, "build-1"]
        assert client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"] == "five lions"
    finally:
        client.__exit__(None, None, None)


def test_a_switched_index_is_loaded_again_with_the_same_models_while_questions_go_on(fake_pipeline):
    """`rag add` beside a running server switches the index: the server notices (the index's
    version changed), loads it again in the background, and answers from the new one."""
    version, asked_with = ["build-1"], []
    after = Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, FakeReader(["Panjshir"]), DECISION, 5)

    def load_again(old):
        asked_with.append(old)
        return after

    client = started(create_app(lambda: fake_pipeline, index_version=lambda: version[0], load_again=load_again))
    ask = lambda: client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"]  # noqa: E731
    assert ask() == "five lions" and asked_with == []  # the index has not moved: nothing is loaded again
    version[0] = "build-2"
    deadline = time.time() + 10
    while ask() != "Panjshir":
        assert time.time() < deadline, "the switched index was never loaded"
        time.sleep(0.01)
    assert asked_with == [fake_pipeline]  # once, with the models already loaded
    client.__exit__(None, None, None)


def test_an_index_that_cannot_be_loaded_again_leaves_the_server_answering(fake_pipeline):
    """Said once, not tried again at every question (a failed load may be a long rebuild)."""
    problems, version, tries = [], ["build-1"], []

    def load_again(old):
        tries.append(old)
        raise RuntimeError("the disk is gone")

    client = started(create_app(lambda: fake_pipeline, on_problem=problems.append, index_version=lambda: version[0],
                                load_again=load_again))
    version[0] = "build-2"
    for _ in range(3):
        assert client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"] == "five lions"
    deadline = time.time() + 10
    while not problems:
        assert time.time() < deadline
        time.sleep(0.01)
    assert "could not load the index again (the disk is gone)" in problems[0]
    for _ in range(3):
        assert client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"] == "five lions"
    assert len(tries) == 1 and len(problems) == 1
    client.__exit__(None, None, None)


def answering_from(fake_pipeline, build: str) -> Pipeline:
    return Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, fake_pipeline.reader, DECISION, 5, index_version=build)


@pytest.mark.parametrize("before", [None, "build-0"])  # no index yet, or one out of date
def test_an_index_the_server_built_as_it_started_is_not_loaded_again(fake_pipeline, before):
    """The start-up load builds the index, which switches it: that is the one loaded."""
    version, reloads = [before], []

    def load():
        version[0] = "build-1"  # what the start-up load built
        return answering_from(fake_pipeline, "build-1")

    client = started(create_app(load, index_version=lambda: version[0], load_again=reloads.append))
    for _ in range(3):
        assert client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"] == "five lions"
    time.sleep(0.1)
    assert reloads == []
    client.__exit__(None, None, None)


def test_an_index_switched_while_the_server_loaded_its_models_is_loaded_again(fake_pipeline):
    """A `rag add` waiting for the start-up build switched the index while the reader loaded."""
    version, reloads = [None], []

    def load():
        version[0] = "build-2"  # built by the add once the server's own build-1 was done
        return answering_from(fake_pipeline, "build-1")

    def load_again(old):
        reloads.append(old.index_version)
        return answering_from(fake_pipeline, "build-2")

    client = started(create_app(load, index_version=lambda: version[0], load_again=load_again))
    client.post("/ask", json={"question": "What does Panjshir mean?"})
    deadline = time.time() + 10
    while not reloads:
        assert time.time() < deadline, "the add's index was never loaded"
        time.sleep(0.01)
    assert reloads == ["build-1"]
    client.__exit__(None, None, None)


def test_a_batch_is_answered_from_one_index_though_it_is_switched_meanwhile(fake_pipeline):
    version = ["build-1"]
    after = Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, FakeReader(["Panjshir"]), DECISION, 5)
    client = started(create_app(lambda: fake_pipeline, index_version=lambda: version[0], load_again=lambda old: after))
    version[0] = "build-2"  # switched as the batch starts: the reload ends while it runs
    answers = client.post("/ask/batch", json={"questions": ["What does Panjshir mean?"] * 40}).json()["answers"]
    # one index for the whole batch: the old one, or the new one when the reload (instant here) won the race
    assert len({a["answer"] for a in answers}) == 1
    deadline = time.time() + 10
    while client.post("/ask", json={"question": "What does Panjshir mean?"}).json()["answer"] != "Panjshir":
        assert time.time() < deadline
        time.sleep(0.01)
    client.__exit__(None, None, None)


class GoneArchive:
    """An archive whose server went away after the pipeline loaded: every read fails, in one line."""

    def __getattr__(self, name):
        raise Unavailable("Milvus at http://archive:19530 failed: connection refused")


def test_an_archive_that_cannot_be_read_is_a_503_to_retry_not_the_askers_fault_nor_a_500(fake_pipeline):
    gone = Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, fake_pipeline.reader, DECISION, 5)
    client = started(create_app(lambda: gone))
    gone.corpus, gone.retriever = GoneArchive(), GoneArchive()  # gone after the server was ready
    try:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.headers["Retry-After"] == "5"
        assert health.json() == {"status": "unavailable", "problem": "Milvus at http://archive:19530 failed: connection refused"}
        for answered in (client.post("/ask", json={"question": "Who?"}), client.post("/ask/batch", json={"questions": ["Who?"]}),
                         client.get("/documents/000_882549ac45e52293")):
            assert answered.status_code == 503 and answered.headers["Retry-After"] == "5"
            assert answered.json() == {"error": "Milvus at http://archive:19530 failed: connection refused"}
        assert client.post("/ask", json={"question": "?!"}).status_code == 400  # still the asker's fault
    finally:
        client.__exit__(None, None, None)


def test_an_archive_that_asking_again_will_not_mend_is_a_503_without_retry_after():
    from rag.server import http_error_for

    problem = http_error_for(RagError("the archive was rebuilt with other settings; restart rag serve"))
    assert problem.status_code == 503 and not problem.headers


def test_with_rag_debug_a_bug_shows_its_traceback_and_is_still_a_json_500(fake_pipeline, monkeypatch, capsys):
    monkeypatch.setenv("RAG_DEBUG", "1")
    broken = Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, fake_pipeline.reader, DECISION, 5)
    client = started(create_app(lambda: broken))
    broken.retriever = None
    try:
        answered = client.post("/ask", json={"question": "Who leads the resistance?"})
        assert answered.status_code == 500 and answered.json()["error"].startswith("unexpected error: AttributeError: ")
        assert "Traceback" in capsys.readouterr().err
    finally:
        client.__exit__(None, None, None)


def test_a_bug_is_a_500_with_one_line_not_a_traceback(fake_pipeline, monkeypatch):
    monkeypatch.delenv("RAG_DEBUG", raising=False)
    broken = Pipeline(fake_pipeline.corpus, fake_pipeline.retriever, fake_pipeline.reader, DECISION, 5)
    said = []
    client = started(create_app(lambda: broken, on_problem=said.append))
    broken.retriever = None  # a bug: asking reaches for an attribute of None
    try:
        answered = client.post("/ask", json={"question": "Who leads the resistance?"})
        assert answered.status_code == 500 and answered.json()["error"].startswith("unexpected error: AttributeError: ")
        assert said == [f"error: {answered.json()['error']} (POST /ask; RAG_DEBUG=1 shows the traceback)"]
    finally:
        client.__exit__(None, None, None)
