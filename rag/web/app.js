// The page of `rag serve`: asks /ask, shows the answer where it stands in its article.
// No framework and nothing from the internet; text is always inserted as text, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const articles = new Map(); // doc_id -> /documents/{doc_id}, fetched once per answer (an article may be edited)

function authHeaders() {
  const token = sessionStorage.getItem("rag-token") || $("token").value;
  return token ? { Authorization: `Bearer ${token}` } : {};
}

// An error that passes: the server gone, loading, or unable to read the articles for now (503).
// Its message is taken down once the server says it is ready again.
function passingError(message) {
  return Object.assign(new Error(message), { passing: true });
}

async function call(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  } catch {  // the browser's own "Failed to fetch" says nothing a reader can act on
    throw passingError("The server does not answer: is `rag serve` still running?");
  }
  const body = await response.json().catch(() => ({ error: `${response.status} ${response.statusText}` }));
  if (response.status === 401) {
    const tried = Object.keys(authHeaders()).length > 0;
    $("token-box").hidden = false;
    $("token").focus();
    throw new Error(tried ? "This server did not accept the token: enter its token in the box above, then ask again."
                          : "This server needs a token: enter it in the box above, then ask again.");
  }
  if (response.status === 503) throw passingError(body.error || "503");
  if (!response.ok) throw new Error(body.error || `${response.status}`);
  return body;
}

function showError(problem) {
  $("error").textContent = problem.message;
  $("error").dataset.passing = problem.passing ? "yes" : "";
  $("error").hidden = false;
}

async function article(docId) {
  if (!articles.has(docId)) {
    const doc = await call(`/documents/${encodeURIComponent(docId)}`);
    // Offsets count code points (Python's str); a JS string counts UTF-16 units, and an emoji is two.
    doc.codePoints = Array.from(doc.text);
    articles.set(docId, doc);
  }
  return articles.get(docId);
}

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function label(doc) {
  return `${doc.title || doc.doc_id} · ${doc.date || "undated"}`;
}

// The article's text with `outer` (a sentence or passage) marked and `inner` (the answer) marked inside it.
async function showArticle(docId, inner, outer, outerClass = "sentence") {
  const doc = await article(docId);
  $("article-title").textContent = doc.title || doc.doc_id;
  $("article-meta").textContent = `${doc.date || "undated"} · ${doc.source} · ${doc.doc_id}`;
  const slice = (start, end) => doc.codePoints.slice(start, end).join("");
  const box = $("article-text");
  box.replaceChildren();
  const out = outer || inner;
  box.append(slice(0, out.start));
  const mark = el("mark", undefined, outer ? outerClass : "answer");
  if (outer && inner) {
    mark.append(slice(outer.start, inner.start), el("mark", slice(inner.start, inner.end), "answer"),
                slice(inner.end, outer.end));
  } else {
    mark.textContent = slice(out.start, out.end);
  }
  box.append(mark, slice(out.end));
  $("article").hidden = false; // a hidden box cannot be scrolled
  const target = mark.querySelector("mark.answer") || mark; // the answer itself, wherever its sentence starts
  box.scrollTop = Math.max(0, target.offsetTop - box.clientHeight / 3); // within the article, not the page
}

function sentenceOf(citation) {
  return { start: citation.sentence_start, end: citation.sentence_start + Array.from(citation.sentence).length };
}

function docButton(text, said, onOpen) {
  const button = el("button", undefined, "link");
  button.type = "button";
  if (said) button.append(el("span", said, "said"), " — ");
  button.append(text);
  button.addEventListener("click", () => onOpen().catch(showError)); // e.g. the server stopped meanwhile
  return button;
}

async function render(answer) {
  $("result").hidden = false;
  const cited = answer.citation;
  $("answer").textContent = answer.abstained ? "Not in the articles" : answer.answer;
  $("answer").classList.toggle("abstained", answer.abstained);
  if (cited) {
    $("citation").textContent = `${label(cited)} · characters ${cited.start}–${cited.end}`;
  } else {
    $("citation").textContent = answer.passages.length
      ? "No article says it. The closest passage is shown beside."
      : `No article is dated in the range asked (${await datesHeld()}).`; // every index holds passages: only dates leave none
  }
  $("latest").hidden = !(answer.latest && cited && answer.latest.doc_id !== cited.doc_id);
  if (!$("latest").hidden) $("latest").textContent = `The latest article to say it: ${label(answer.latest)}`;
  // the question names what the cited article never does: the answer may be about something else
  $("unmentioned").hidden = answer.unmentioned.length === 0;
  const names = answer.unmentioned.map((n) => `“${n}”`).join(", ");
  $("unmentioned").textContent = cited ? `Check it: the cited article never mentions ${names}.`
    : `None of the articles read mentions ${names}.`;

  const supporting = $("supporting");
  supporting.replaceChildren();
  for (const span of answer.supporting) {
    const doc = await article(span.doc_id);
    supporting.append(el("li"));
    supporting.lastChild.append(docButton(label(doc), null, () => openSpan(span.doc_id, span)));
  }
  $("supporting-box").hidden = answer.supporting.length === 0;

  const conflicts = $("conflicts");
  conflicts.replaceChildren();
  for (const conflict of answer.conflicts) {
    const c = conflict.citation;
    conflicts.append(el("li"));
    conflicts.lastChild.append(docButton(label(c), conflict.answer, () => openSpan(c.doc_id, c, sentenceOf(c))));
  }
  $("conflicts-box").hidden = answer.conflicts.length === 0;

  $("evidence").hidden = answer.passages.length === 0; // a date range no article is in: nothing was read
  const rows = $("passages");
  rows.replaceChildren();
  answer.passages.forEach((p, n) => {
    const row = el("tr");
    const open = docButton(p.doc_id, null, () => openSpan(p.doc_id, null, p, "passage"));
    const cell = el("td");
    cell.append(open);
    row.append(el("td", String(n + 1)), cell, el("td", `${p.start}–${p.end}`), el("td", p.score.toFixed(4)));
    rows.append(row);
    // Beneath it, the reader's best span in it (asked with why): what an answer, or its absence, rests on.
    const span = (answer.candidates || []).find((c) => c.passage_index === n);
    if (!span) return;
    const said = el("td", undefined, "span");
    said.colSpan = 4;
    said.append(docButton(span.answer, "reader's span", () => openSpan(p.doc_id, span, p, "passage")),
                ` · confidence ${span.confidence.toFixed(2)} · margin over “no answer” ${span.margin.toFixed(2)}`);
    rows.append(el("tr", undefined, "span-row"));
    rows.lastChild.append(said);
  });

  if (cited) await showArticle(cited.doc_id, cited, sentenceOf(cited));
  else if (answer.passages.length) await showArticle(answer.passages[0].doc_id, null, answer.passages[0], "passage");
  else $("article").hidden = true;
}

// What the empty-range message adds, as the terminal says it: the dates the articles cover.
async function datesHeld() {
  try {
    const { dates } = await (await fetch("/healthz")).json();
    if (Array.isArray(dates)) return `they run from ${dates[0]} to ${dates[1]}`;
    if (dates === null) return "none of them is dated";
  } catch {} // stopped or loading again: said without the dates
  return "the server did not say which dates the articles cover";
}

async function openSpan(docId, inner, outer, outerClass) {
  $("error").hidden = true;
  await showArticle(docId, inner, outer, outerClass);
  $("article").focus(); // and into view: on a narrow screen the article is below the answer
}

// The question and its options live in the address (?q=…&since=…&until=…&k=…), so an answer
// can be bookmarked, shared and reached again with Back. The token never goes there.
const PAGE_TITLE = document.title;
const ADDRESS_FIELDS = { q: "question", since: "since", until: "until", k: "top-k" };

function addressOfForm() {
  const params = new URLSearchParams();
  for (const [param, id] of Object.entries(ADDRESS_FIELDS)) if ($(id).value) params.set(param, $(id).value);
  return `?${params}`;
}

// The address as addressOfForm writes it (a shared link may spell spaces %20, or order its fields otherwise).
function addressNow() {
  const now = new URLSearchParams(location.search);
  const params = new URLSearchParams();
  for (const param of Object.keys(ADDRESS_FIELDS)) if (now.get(param)) params.set(param, now.get(param));
  return `?${params}`;
}

// Fills the form from the address; true when it holds a question to ask. A field the form cannot
// hold (k=abc, k=999, since=2021-13-45) is left out, and the address is made to say what is asked.
function formFromAddress() {
  const params = new URLSearchParams(location.search);
  for (const [param, id] of Object.entries(ADDRESS_FIELDS)) {
    $(id).value = params.get(param) || "";
    if (!$(id).checkValidity() || !$(id).value.trim()) $(id).value = ""; // q=%0A or q=%20 asks nothing
  }
  if (addressOfForm() !== addressNow()) history.replaceState(null, "", addressOfForm().length > 1 ? addressOfForm() : location.pathname);
  $("options").open = ["since", "until", "top-k"].some((id) => $(id).value); // a range asked is in sight
  if ($("question").value) document.title = `${$("question").value} · rag`;
  return Boolean($("question").value);
}

function onSubmit(event) {
  event.preventDefault();
  if (addressOfForm() !== addressNow()) history.pushState(null, "", addressOfForm());
  // The button stays enabled while asking, so keyboard focus stays on it. An ask in flight asks
  // the address again when its answer is in, if the address moved meanwhile.
  if (!asking) ask();
}

function onAddressChange() { // Back and Forward
  formFromAddress();
  if (!asking) answerTheAddress();
}

// Asks the question in the address, or clears the answer when the address holds none.
function answerTheAddress() {
  if (new URLSearchParams(location.search).get("q")) {
    ask();
  } else {
    $("result").hidden = true;
    $("error").hidden = true;
    document.title = PAGE_TITLE;
  }
}

let asking = false;
let askWhenReady = false; // a question in the address the page was opened with, while the server loads

// Asks what the address says (the form may hold a question typed since, not asked yet); an
// answer that comes back after the address moved on is not shown: the address is asked again.
async function ask() {
  if (asking) return;
  askWhenReady = false; // asked now: the page's first question, or one asked instead of it
  const asked = addressNow();
  const params = new URLSearchParams(asked);
  document.title = `${params.get("q")} · rag`; // what the history and the bookmark say
  const token = $("token").value;
  if (token) sessionStorage.setItem("rag-token", token);
  // not cut short by a maxlength: a pasted question too long is the server's clear 422, not a silent cut
  const body = { question: params.get("q") || "", why: true };
  if (params.get("since")) body.since = params.get("since");
  if (params.get("until")) body.until = params.get("until");
  if (params.get("k")) body.top_k = Number(params.get("k"));
  asking = true;
  $("ask-button").textContent = "Asking…";
  $("result").classList.add("stale"); // the last answer is not this question's
  $("result").setAttribute("aria-busy", "true");
  $("error").hidden = true;
  try {
    const answer = await call("/ask", { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
    $("token-box").hidden = true; // accepted, or not needed
    if (addressNow() === asked) {
      articles.clear(); // this answer's offsets are into the articles as they are now
      await render(answer);
    }
    watchHealth(); // the counts move when articles are added while the page is open
  } catch (problem) {
    $("result").hidden = true; // an earlier answer under this question would read as its answer
    if (addressNow() === asked) showError(problem);
    watchHealth(); // stopped, or loading again: the status line must not keep saying "ready"
  } finally {
    asking = false;
    $("ask-button").textContent = "Ask";
    $("result").classList.remove("stale");
    $("result").removeAttribute("aria-busy");
  }
  if (addressNow() !== asked) answerTheAddress();
}

let healthCheck = null; // the next check scheduled: one at a time, however many asks call watchHealth

function checkHealthIn(ms) {
  clearTimeout(healthCheck);
  healthCheck = setTimeout(watchHealth, ms);
}

async function watchHealth() {
  const status = $("status");
  try {
    const health = await (await fetch("/healthz")).json();
    status.className = `status ${health.status}`;
    status.textContent = health.status === "ready"
      ? `ready · ${health.documents} articles, ${health.passages} passages`
      : health.status === "loading" ? "loading the models and the index…" : `${health.status}: ${health.problem}`;
    if (health.status === "ready") { // the server's own numbers, models.toml's top_k among them
      $("top-k").placeholder = health.top_k;
      $("top-k").max = health.max_top_k;
    }
    if (health.status === "loading") checkHealthIn(1000);
    if (health.status === "unavailable") checkHealthIn(3000); // the archive cannot be read now: until it can
    if (health.status === "ready" && $("error").dataset.passing) $("error").hidden = true; // it answers again
    if (health.status === "ready" && askWhenReady && !asking) { // else the ask in flight asks the address
      askWhenReady = false;
      answerTheAddress();
    }
  } catch {
    status.className = "status failed";
    status.textContent = "the server does not answer";
    checkHealthIn(3000);
  }
}

document.addEventListener("keydown", (event) => {
  if (event.key === "/" && document.activeElement.tagName !== "INPUT") {
    event.preventDefault();
    $("question").focus();
  }
});
$("ask-form").addEventListener("submit", onSubmit);
window.addEventListener("popstate", onAddressChange);
askWhenReady = formFromAddress();
watchHealth();
