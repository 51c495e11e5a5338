"""`rag serve`: the answer contract of `rag ask --json` over HTTP, and the page at `/`.

FastAPI, because it gives the OpenAPI docs at /docs and typed request validation from the same
few lines, and runs on uvicorn, which stops cleanly on SIGTERM. The Swagger page's scripts come
from the swagger-ui-bundle package, so /docs works offline like everything else.

Models load in a background thread as the server starts: /healthz answers 503 "loading" until
the pipeline is ready (and has answered one warm-up question), then 200 "ready". Questions run
on a pool with one thread per core, each bounded by a timeout. The pipeline is shared by those
threads; nothing in it changes while it answers (see rag.reader for its two tokenizers): when
the index is switched (`rag add` beside the server), a new pipeline is made and put in its place."""
from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import hmac
import json
import os
import signal
import sys
import threading
import traceback
from importlib import resources
from typing import Callable, Optional

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag.background import exit_now, start_loading
from rag.errors import INTERRUPTED, BadInput, RagError, Unavailable, first_line
from rag.dates import DateRange
from rag.pipeline import ANSWER_TIMEOUT_S, MAX_QUESTION_CHARS
from rag.render import ArticleView
from rag.schema import NOTE

MAX_BODY_BYTES = 256 * 1024
MAX_BATCH = 100  # questions in one /ask/batch request
MAX_REQUEST_TOP_K = 50  # passages one request may ask to read: each costs a reader pass
# While the models load, or the archive cannot be read (a Milvus server gone), a 503 tells clients
# that retry (curl --retry) to wait 5 s and ask again
RETRY_LATER = {"Retry-After": "5"}
PUBLIC_PATHS = ("/", "/healthz", "/docs", "/openapi.json")  # no article text: no token needed
PUBLIC_PREFIXES = ("/static/", "/docs-assets/")
# the one answer to bad JSON, no body, or a body not in UTF-8
NOT_JSON = 'the body is not valid JSON: send a JSON object in UTF-8, such as {"question": "Who leads the resistance?"}'


class AskRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")  # "5" is not a number here, as in models.toml

    question: str = Field(max_length=MAX_QUESTION_CHARS, description="The question, in words.")
    top_k: Optional[int] = Field(None, ge=1, le=MAX_REQUEST_TOP_K, description="How many passages to read (default: models.toml).")
    since: Optional[str] = Field(None, description="Only articles dated on or after this day (YYYY-MM-DD).")
    until: Optional[str] = Field(None, description="Only articles dated on or before this day (YYYY-MM-DD).")
    why: bool = Field(False, description="Also give \"candidates\": each passage's best span, confidence and margin "
                      "(as `rag ask --why`).")


class BatchRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")

    questions: list[str] = Field(max_length=MAX_BATCH, description=f"Up to {MAX_BATCH} questions.")
    top_k: Optional[int] = Field(None, ge=1, le=MAX_REQUEST_TOP_K)
    since: Optional[str] = None
    until: Optional[str] = None
    why: bool = False


def open_to_the_network(host: str) -> bool:
    """Whether listening on `host` lets other machines in (anything but this machine's loopback)."""
    return host not in ("localhost", "::1") and not host.startswith("127.")


class Loading:
    """The pipeline, loaded in a background thread; the state /healthz reports. When the index
    it was loaded from moves on (`index_version` changes: `rag add`, `rag remove` or `rag index`
    switched it), it is loaded again by `load_again(pipeline)`, with the same models, in the
    background: questions meanwhile are answered from the one already loaded."""

    def __init__(self, load: Callable[[], object], on_problem: Callable[[str], None] = lambda message: None,
                 index_version: Callable[[], object] = lambda: None, load_again: Callable[[object], object] | None = None):
        self._load = load
        self._on_problem = on_problem
        self._index_version, self._load_again = index_version, load_again
        self._loaded_version = None
        self._failed_version = None  # the index version a failed load read
        self._retrying = threading.Lock()
        self._reloading = threading.Lock()
        self._reload_thread: threading.Thread | None = None
        self.pipeline = None
        self.problem: str | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = start_loading(self._run, name="rag-load")

    def abandon_if_running(self, stop_code: Callable[[], int]) -> None:
        """Ends the process at once, with stop_code(), if a load is still running."""
        if any(thread is not None and thread.is_alive() for thread in (self._thread, self._reload_thread)):
            exit_now(stop_code())  # not checked again: stop_code may have said "interrupted" already

    def _run(self) -> None:
        before = self._index_version()
        try:
            pipeline = self._load()
            self._loaded_version = self._version_of(pipeline, before)
            pipeline.ask("warm up")  # the first answer pays one-off costs; no user should
            self.pipeline = pipeline
        except Exception as problem:  # reported by /healthz; the server stays up to say so
            # the version as the load left it (it may have built the index before it failed), before
            # the problem is set: a request seeing the problem sees the version it failed on
            self._failed_version = self._index_version()
            self.problem = str(problem) if isinstance(problem, RagError) else f"{type(problem).__name__}: {problem}"
        if self.problem:
            self._on_problem(f"error: {self.problem} (the server stays up; /healthz reports it)")

    def load_again_if_failed_and_the_index_moved(self) -> None:
        """A load that failed (a folder with no readable article, say) is tried again, in the
        background, once the index has moved on: a `rag index` or `rag add` beside the server
        mended it. It stayed failed until the server was restarted."""
        if self.problem is None or self._index_version() == self._failed_version:
            return
        with self._retrying:
            if self.problem is None or self._index_version() == self._failed_version:  # another request started it
                return
            self.problem = None  # "loading" until it ends
            self.start()

    @property
    def state(self) -> str:
        return "failed" if self.problem else "ready" if self.pipeline is not None else "loading"

    @property
    def retry_after(self) -> dict[str, str] | None:
        """While loading, when to ask again (so `curl --retry` and other clients wait, then retry);
        a failed load is not worth asking again."""
        return RETRY_LATER if self.state == "loading" else None

    def ready(self):
        """The pipeline, or a 503 that says why there is none yet; starts loading the index
        again, in the background, when it was switched since it was loaded."""
        self.load_again_if_failed_and_the_index_moved()
        if self.pipeline is None:
            raise HTTPException(503, f"not ready: {self.problem or 'the models are loading'}", headers=self.retry_after)
        self._load_again_if_the_index_moved()
        return self.pipeline

    def _load_again_if_the_index_moved(self) -> None:
        if self._load_again is None or self._index_version() == self._loaded_version:
            return
        if not self._reloading.acquire(blocking=False):  # one reload at a time; the rest keep the pipeline they have
            return
        if self._index_version() == self._loaded_version:  # a reload that just ended loaded it
            self._reloading.release()
            return
        self._reload_thread = start_loading(self._reload, name="rag-reload")

    def _reload(self) -> None:
        version = self._index_version()
        try:
            pipeline = self._load_again(self.pipeline)
            pipeline.ask("warm up")
            self.pipeline = pipeline
            version = self._version_of(pipeline, version)
        except Exception as problem:  # the pipeline loaded before still answers; tried again at the next switch
            self._on_problem(f"{NOTE}could not load the index again ({problem}); answering from the one loaded before")
        finally:
            self._loaded_version = version  # not tried again for every question: a failed load may be a long one
            self._reloading.release()

    @staticmethod
    def _version_of(pipeline, read_before_loading):
        """The index build the pipeline answers from; for one that does not say, the version read
        before it was loaded (a switch meanwhile is then loaded again, never missed)."""
        return pipeline.index_version or read_before_loading


class Answering:
    """Each question answered on the thread pool, within the timeout, in the `rag ask --json` contract."""

    def __init__(self, loading: Loading, pool: concurrent.futures.Executor, timeout_s: float):
        self.loading, self.pool, self.timeout_s = loading, pool, timeout_s

    async def __call__(self, question: str, dates, top_k: int | None, why: bool, pipeline=None) -> dict:
        """`pipeline`: the one to answer from (a batch keeps one for all its questions, so that
        a reload in the middle of it never mixes two indexes), else the loaded one."""
        pipeline = pipeline or self.loading.ready()
        future = asyncio.get_running_loop().run_in_executor(self.pool, pipeline.ask, question, dates, top_k)
        try:
            return (await asyncio.wait_for(future, self.timeout_s)).to_json(why)
        except asyncio.TimeoutError:
            raise HTTPException(504, f"no answer within {self.timeout_s:g} s") from None
        except RagError as problem:
            raise http_error_for(problem) from None


def create_app(load: Callable[[], object], token: str | None = None, timeout_s: float = ANSWER_TIMEOUT_S,
               workers: int | None = None, on_problem: Callable[[str], None] = lambda message: None,
               index_version: Callable[[], object] = lambda: None,
               load_again: Callable[[object], object] | None = None, stop_code: Callable[[], int] = lambda: 0) -> FastAPI:
    """`load` gives the pipeline; `index_version` and `load_again`: see Loading. `stop_code`: the
    exit code of a server stopped while it still loads (which ends the process at once)."""
    loading = Loading(load, on_problem, index_version, load_again)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2, thread_name_prefix="rag-ask")

    async def lifespan(app):
        loading.start()
        yield
        pool.shutdown(wait=False, cancel_futures=True)
        loading.abandon_if_running(stop_code)  # stopped while still loading

    app = FastAPI(title="rag", description="Cited answers from your articles: the `rag ask --json` contract over HTTP.",
                  docs_url=None, redoc_url=None, lifespan=lifespan)
    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(BodiesAreJson)
    _add_error_handlers(app, on_problem)
    _add_token_check(app, token)
    web = resources.files("rag") / "web"
    app.mount("/static", StaticFiles(directory=str(web)), name="static")
    _add_offline_docs(app)
    _add_page_and_health(app, web, loading)
    _add_question_routes(app, Answering(loading, pool, timeout_s))
    _add_article_route(app, loading)
    return app


def _add_page_and_health(app: FastAPI, web, loading: Loading) -> None:
    @app.get("/", include_in_schema=False)
    @app.head("/", include_in_schema=False)  # link checkers and uptime monitors ask with HEAD
    def page():
        return FileResponse(str(web / "index.html"), media_type="text/html")

    @app.get("/healthz", summary="Whether the models are loaded and questions can be asked")
    @app.head("/healthz", include_in_schema=False)  # monitors and load balancers often probe with HEAD
    def healthz():
        loading.load_again_if_failed_and_the_index_moved()
        body = {"status": loading.state}
        if loading.problem:
            body["problem"] = loading.problem
        if loading.pipeline is not None:
            try:
                body |= _counts(loading.pipeline)
            except RagError as problem:  # the archive cannot be read; asked again, it says when it can
                return JSONResponse({"status": "unavailable", "problem": str(problem)}, status_code=503,
                                    headers=_retry_later_for(problem))
        return JSONResponse(body, status_code=200 if loading.state == "ready" else 503, headers=loading.retry_after)


def http_error_for(problem: RagError) -> HTTPException:
    """400 for what the asker sent (a question with no words); 503 when the articles cannot be
    read, with Retry-After where asking again later may work (a Milvus server gone), without it
    where it cannot (an archive rebuilt with other settings: restart the server)."""
    if isinstance(problem, BadInput):
        return HTTPException(400, str(problem))
    return HTTPException(503, str(problem), headers=_retry_later_for(problem))


def _retry_later_for(problem: RagError) -> dict[str, str] | None:
    return RETRY_LATER if isinstance(problem, Unavailable) else None


def _counts(pipeline) -> dict:
    corpus = pipeline.corpus
    return {"documents": len(corpus.documents), "passages": pipeline.retriever.passage_count,
            "dates": corpus.date_range,  # [first, last]; null when no article is dated
            "top_k": pipeline.top_k, "max_top_k": MAX_REQUEST_TOP_K}  # the page's "passages read" shows them


def _add_question_routes(app: FastAPI, answer: Answering) -> None:
    @app.post("/ask", summary="Answer one question: the `rag ask --json` contract")
    async def ask(request: AskRequest):
        return await answer(request.question, _dates(request), request.top_k, request.why)

    @app.post("/ask/batch", summary="Answer several questions; a bad one is an error in its place")
    async def ask_batch(request: BatchRequest):
        dates = _dates(request)
        answers, pipeline = [], answer.loading.ready()
        for question in request.questions:
            try:
                answers.append(await answer(question, dates, request.top_k, request.why, pipeline))
            except HTTPException as problem:
                if problem.status_code != 400:
                    raise
                # echoed as UTF-8 can carry it: a lone surrogate would fail the whole response
                answers.append({"question": question.encode("utf-8", "replace").decode("utf-8"), "error": problem.detail})
        return {"answers": answers}


def _add_article_route(app: FastAPI, loading: Loading) -> None:
    # `:path`: a JSON Lines record's id may hold "/" (`feed.jsonl#2021/09/panjshir`), which arrives decoded
    @app.get("/documents/{doc_id:path}", summary="An article's text (the text citations slice) and metadata")
    def document(doc_id: str):
        if not doc_id:  # GET /documents, redirected to /documents/
            raise HTTPException(404, "name an article: GET /documents/{doc_id}, its id as an answer cites it")
        try:
            documents = loading.ready().corpus.documents
            found = documents.get(doc_id)  # a name in the index, never a path
        except RagError as problem:
            raise http_error_for(problem) from None
        if found is None:
            raise HTTPException(404, f"no article {doc_id!r} in the index{_lost_record_hint(doc_id, documents)}")
        return ArticleView(found).to_json()  # what `rag show --json` gives


def _lost_record_hint(doc_id: str, documents: dict) -> str:
    """A JSON Lines record's id asked for with its # unescaped reaches us as the file's name
    alone: a URL ends its path at a #."""
    record = next((other for other in documents if other.startswith(f"{doc_id}#")), None)
    return f" (a record of that file is {record}: write the # as %23 in a URL)" if record else ""


def _dates(request) -> DateRange | None:
    try:
        return DateRange.parse(request.since, request.until, names=("since", "until"))
    except RagError as problem:
        raise HTTPException(400, str(problem)) from None


def _add_error_handlers(app: FastAPI, on_problem: Callable[[str], None]) -> None:
    """Every error is {"error": "..."}: 4xx for what the client sent, never a 500 for it."""

    @app.middleware("http")
    async def one_line_for_a_bug(request, call_next):
        """A bug is a 500 {"error"} and one line on the server's stderr, not uvicorn's traceback."""
        try:
            return await call_next(request)
        except Exception as problem:
            message = f"unexpected error: {type(problem).__name__}: {first_line(problem)}"
            if os.environ.get("RAG_DEBUG"):
                traceback.print_exc()
            else:
                on_problem(f"error: {message} ({request.method} {request.url.path}; RAG_DEBUG=1 shows the traceback)")
            return JSONResponse({"error": message}, status_code=500)

    @app.exception_handler(StarletteHTTPException)  # FastAPI's own and routing's (404, 405)
    async def http_error(request, problem: StarletteHTTPException):
        message = {"Not Found": f"no such path: {request.url.path}",
                   "Method Not Allowed": f"{request.method} is not allowed on {request.url.path}",
                   "There was an error parsing the body": NOT_JSON}.get(problem.detail, problem.detail)
        return JSONResponse({"error": message}, status_code=problem.status_code, headers=problem.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request, problem: RequestValidationError):
        first = problem.errors()[0]
        if first.get("type") == "json_invalid" or (first.get("type") == "missing" and tuple(first.get("loc", ())) == ("body",)):
            return JSONResponse({"error": NOT_JSON}, status_code=400)  # no body at all is no JSON either
        where = ".".join(str(part) for part in first.get("loc", ()) if part != "body")
        return JSONResponse({"error": f"{where or 'body'}: {first.get('msg', 'invalid')}"}, status_code=422)


def _add_token_check(app: FastAPI, token: str | None) -> None:
    if not token:
        return
    expected = token.encode()
    schema_without_token = app.openapi

    def schema_with_token() -> dict:  # /docs then has its "Authorize" button, and "Try it out" works
        schema = schema_without_token()
        schema.setdefault("components", {}).setdefault("securitySchemes", {})["token"] = {"type": "http", "scheme": "bearer"}
        schema["security"] = [{"token": []}]
        return schema

    app.openapi = schema_with_token

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        path = request.url.path
        public = path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if not public and not (scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected)):
            said = "the token given is not this server's" if given else "this server needs 'Authorization: Bearer <token>'"
            return JSONResponse({"error": said}, status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)


def _add_offline_docs(app: FastAPI) -> None:
    import swagger_ui_bundle

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs():
        return get_swagger_ui_html(openapi_url="/openapi.json", title="rag API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/docs-assets/favicon-32x32.png")


class BodiesAreJson:
    """Reads every request body as JSON, whatever content type it declares: `curl -d` sends
    application/x-www-form-urlencoded, and FastAPI would refuse that body as "not an object"."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            headers = [(name, value) for name, value in scope["headers"] if name != b"content-type"]
            scope = dict(scope, headers=headers + [(b"content-type", b"application/json")])
        return await self.app(scope, receive, send)


class BodyLimit:
    """Refuses a request body over `limit` bytes with 413, whether or not it declares its length."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:  # FastAPI passes an HTTPException from reading the body on
                raise HTTPException(413, self._message)
            return message

        await self.app(scope, counted, send)

    @property
    def _message(self) -> str:
        return f"the body is over {self.limit // 1024} kB"

    async def _refuse(self, send):
        body = json.dumps({"error": self._message}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def serve(load: Callable[[], object], host: str, port: int, token: str | None, timeout_s: float,
          on_ready: Callable[[str], None], index_version: Callable[[], object] = lambda: None,
          load_again: Callable[[object], object] | None = None) -> None:
    """Run until SIGTERM or Ctrl-C (uvicorn finishes the requests in flight, then stops).
    `on_ready` hears the address, any problem loading the pipeline, and a Ctrl-C while loading."""
    import socket

    import uvicorn

    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        # as uvicorn binds: a port the last server left in TIME-WAIT is free to use
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:  # uvicorn would log a bind failure and exit; say it in one line first
            probe.bind((host, port))
        except OSError as exc:
            # a host that is no address of this machine, or no address at all, is --host's fault
            wrong = "--host" if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL else "--port"
            raise RagError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another with {wrong}") from None
    stops: list[int] = []  # the signals that stopped it

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            stops.append(sig)
            super().handle_exit(sig, frame)

    def stop_code() -> int:  # asked only of a stop while loading: after it, main() says a Ctrl-C itself
        if signal.SIGINT not in stops:
            return 0
        on_ready("interrupted")
        return INTERRUPTED

    app = create_app(load, token, timeout_s, on_problem=on_ready, index_version=index_version, load_again=load_again,
                     stop_code=stop_code)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", timeout_graceful_shutdown=10)
    server = Server(config)
    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again under the handler it
    # found: this one makes a requested stop exit 0 instead of "killed by SIGTERM"
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    on_ready(f"rag serve: http://{host}:{port}  (API docs: /docs; readiness: /healthz)")
    if open_to_the_network(host) and not token:
        on_ready(f"{NOTE}{host} is open to the network and no --token (or RAG_TOKEN) is set: whoever reaches port "
                 f"{port} can read every article")
    server.run()
