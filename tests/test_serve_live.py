"""`rag serve` as a user runs it: the real command, the real models, a real headless Chromium."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import ROOT, read_source

pytestmark = pytest.mark.integration

ANSWERABLE = "Who leads the resistance in the Panjshir Valley?"
UNANSWERABLE = "What is the boiling point of mercury?"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def call(base: str, path: str, body: dict | None = None) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as problem:
        return problem.code, json.loads(problem.read())


def start_server(index_dir: Path, *args: str, port: int | None = None) -> tuple[subprocess.Popen, str]:
    port = port or free_port()
    server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--index-dir", str(index_dir), *args],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 240
    while time.time() < deadline:
        assert server.poll() is None, server.stderr.read()
        try:
            if call(base, "/healthz")[1]["status"] == "ready":
                return server, base
        except (OSError, ValueError):
            pass
        time.sleep(0.5)
    server.kill()
    pytest.fail("rag serve never became ready")


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    server, base = start_server(tmp_path_factory.mktemp("serve-index"))
    yield base
    server.terminate()
    server.wait(30)


def test_cited_answers_over_http_slice_their_articles(served):
    status, body = call(served, "/ask", {"question": ANSWERABLE})
    c = body["citation"]
    assert status == 200 and not body["abstained"] and "Massoud" in body["answer"]
    assert read_source(c["doc_id"])[c["start"]:c["end"]] == body["answer"]
    _, article = call(served, f"/documents/{c['doc_id']}")
    assert article["text"][c["start"]:c["end"]] == body["answer"]


def test_concurrent_questions_get_the_answers_sequential_ones_get(served):
    questions = [ANSWERABLE, UNANSWERABLE, "How far is the Panjshir Valley from Kabul?", "What does Panjshir mean?"] * 2
    strip = lambda body: {k: v for k, v in body.items() if k != "timings_ms"}  # noqa: E731
    sequential = [strip(call(served, "/ask", {"question": q})[1]) for q in questions]
    with ThreadPoolExecutor(8) as pool:
        concurrent = [strip(body) for _, body in pool.map(lambda q: call(served, "/ask", {"question": q}), questions)]
    assert concurrent == sequential


def test_sigterm_stops_the_server_cleanly(tmp_path):
    server, base = start_server(tmp_path / "index")
    assert call(base, "/ask", {"question": ANSWERABLE})[0] == 200
    started = time.time()
    server.send_signal(signal.SIGTERM)
    assert server.wait(20) == 0 and time.time() - started < 20
    assert "Traceback" not in server.stderr.read()


def test_ctrl_c_while_the_models_load_exits_130_at_once(tmp_path):
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "rag", "serve", "--port", str(port), "--index-dir", str(tmp_path / "index")],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline, status = time.time() + 60, None
    while status is None and time.time() < deadline:  # until it listens
        assert server.poll() is None, server.stderr.read()
        try:
            status = call(f"http://127.0.0.1:{port}", "/healthz")[1]["status"]
        except (OSError, ValueError):
            time.sleep(0.05)
    assert status == "loading"  # a new index is built first: seconds
    started = time.time()
    server.send_signal(signal.SIGINT)
    assert server.wait(20) == 130 and time.time() - started < 5  # at once: the load is not waited for
    said = server.stderr.read()
    assert said.strip().endswith("interrupted") and "Traceback" not in said


def test_ctrl_c_once_ready_says_interrupted_once(tmp_path):
    server, base = start_server(tmp_path / "index")
    server.send_signal(signal.SIGINT)
    assert server.wait(20) == 130
    said = server.stderr.read()
    assert said.count("interrupted") == 1 and "Traceback" not in said


def test_a_port_in_use_is_one_line():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "rag", "serve", "--port", str(port)], cwd=ROOT,
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


@pytest.mark.parametrize("host", ["999.1.1.1", "192.0.2.1"])  # no address at all; none of this machine's
def test_a_host_to_listen_on_that_cannot_be_is_one_line_naming_host(host):
    result = subprocess.run([sys.executable, "-m", "rag", "serve", "--host", host, "--port", "8767"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and f"{host}:8767" in result.stderr and "choose another with --host" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


# --- the page, in headless Chromium -----------------------------------------------------------

def chromium():
    try:
        from selenium import webdriver
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver")
    if not binary or not driver:
        pytest.skip("no Chromium here: install Debian's chromium and chromium-driver (.ci/run does)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1360,900"):
        options.add_argument(flag)
    from selenium.webdriver.chrome.service import Service

    return webdriver.Chrome(service=Service(driver), options=options)


@pytest.fixture(scope="module")
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def ask_in_page(browser, base: str, question: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(base + "/")
    WebDriverWait(browser, 30).until(ready.text_to_be_present_in_element((By.ID, "status"), "ready"))
    box = browser.switch_to.active_element  # the question box has the focus: keyboard only from here
    assert box.get_attribute("id") == "question"
    box.send_keys(question, Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "article-text").text.strip())
    return By


def test_the_page_shows_the_answer_highlighted_in_its_article(served, browser):
    By = ask_in_page(browser, served, ANSWERABLE)
    _, expected = call(served, "/ask", {"question": ANSWERABLE})
    c = expected["citation"]
    assert browser.find_element(By.ID, "answer").text == expected["answer"]
    assert browser.find_element(By.CSS_SELECTOR, "mark.sentence mark.answer").text == expected["answer"]
    assert expected["answer"] in browser.find_element(By.CSS_SELECTOR, "mark.sentence").text
    citation = browser.find_element(By.ID, "citation").text
    assert c["date"] in citation and f"{c['start']}–{c['end']}" in citation
    assert c["date"] in browser.find_element(By.ID, "article-meta").text
    if os.environ.get("RAG_SCREENSHOT"):  # how the README's picture is made
        browser.save_screenshot(os.environ["RAG_SCREENSHOT"])
    supporting = browser.find_elements(By.CSS_SELECTOR, "#supporting button")
    assert len(supporting) == len(expected["supporting"])
    if supporting:  # one click away: the other article, its span marked
        supporting[0].click()
        span = expected["supporting"][0]
        assert browser.find_element(By.CSS_SELECTOR, "#article-text mark").text == read_source(span["doc_id"])[span["start"]:span["end"]]


def test_the_page_says_not_in_the_articles_and_shows_the_closest_passage(served, browser):
    By = ask_in_page(browser, served, UNANSWERABLE)
    _, expected = call(served, "/ask", {"question": UNANSWERABLE})
    assert expected["abstained"]
    assert browser.find_element(By.ID, "answer").text == "Not in the articles"
    closest = expected["passages"][0]
    shown = browser.find_element(By.CSS_SELECTOR, "mark.passage").text
    assert " ".join(shown.split()) == " ".join(read_source(closest["doc_id"])[closest["start"]:closest["end"]].split())
    # beneath, what the "not in the articles" rests on: the most trusted span, one click from its place
    _, why = call(served, "/ask", {"question": UNANSWERABLE, "why": True})
    best = why["candidates"][0]
    browser.find_element(By.CSS_SELECTOR, "#evidence summary").click()
    said = " ".join(f"reader's span — {best['answer']}".split())
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "#passages tr.span-row")
               if " ".join(r.find_element(By.CSS_SELECTOR, "button").text.split()) == said)
    assert f"confidence {best['confidence']:.2f}" in row.text and f"{best['margin']:.2f}" in row.text
    span_button = row.find_element(By.CSS_SELECTOR, "button")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", span_button)
    span_button.click()
    from selenium.webdriver.support.ui import WebDriverWait

    marked = WebDriverWait(browser, 30).until(lambda b: b.find_elements(By.CSS_SELECTOR, "mark.passage mark.answer"))[0].text
    assert " ".join(marked.split()) == " ".join(read_source(best["doc_id"])[best["start"]:best["end"]].split())


EMOJI_ARTICLE = ("date 2021-09-07\n🇦🇫🔥 Breaking 😀😀: The capital of the Zorbian Republic is Quillton, officials said. "
                 "It lies on the river Vell.\n")


def test_the_highlight_slices_the_answer_where_emoji_come_before_it(tmp_path, browser):
    # the offsets count code points, as Python does; a JS string counts UTF-16 units, and each emoji is two
    seeds = tmp_path / "seeds"
    shutil.copytree(ROOT / "seeds", seeds)
    (seeds / "900_emoji.txt").write_text(EMOJI_ARTICLE, encoding="utf-8")
    server, base = start_server(tmp_path / "index", "--seeds", str(seeds))
    try:
        question = "What is the capital of the Zorbian Republic?"
        By = ask_in_page(browser, base, question)
        _, expected = call(base, "/ask", {"question": question})
        cited = expected["citation"]
        assert cited["doc_id"] == "900_emoji" and EMOJI_ARTICLE[cited["start"]:cited["end"]] == expected["answer"]
        assert browser.find_element(By.CSS_SELECTOR, "mark.sentence mark.answer").text == expected["answer"]
        assert browser.find_element(By.CSS_SELECTOR, "mark.sentence").text == cited["sentence"].strip()
        assert not browser.find_element(By.ID, "unmentioned").is_displayed()
        # the page says when the cited article never names what the question asks about
        question = "What is the capital of the Zorbian Republic in Freedonia?"
        ask_in_page(browser, base, question)
        _, expected = call(base, "/ask", {"question": question})
        assert expected["answer"] == "Quillton" and expected["unmentioned"] == ["Freedonia"]
        assert browser.find_element(By.ID, "unmentioned").text == "Check it: the cited article never mentions “Freedonia”."
    finally:
        server.terminate()
        server.wait(30)


def test_a_question_that_fails_leaves_no_earlier_answer_beneath_it(served, browser):
    """The last answer stayed on screen under an error for the next question: read as its answer."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(served + "/")
    assert not browser.find_element(By.ID, "result").is_displayed()  # no empty card before any question
    ask_in_page(browser, served, ANSWERABLE)
    assert browser.find_element(By.ID, "result").is_displayed()
    box = browser.find_element(By.ID, "question")
    box.clear()
    box.send_keys("   ", Keys.ENTER)  # words enough for the browser, none for the server: a 400
    WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "error").is_displayed())
    assert "the question is empty" in browser.find_element(By.ID, "error").text
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert browser.switch_to.active_element.get_attribute("id") in ("question", "ask-button")  # focus kept
    logged = [entry["message"] for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert [message for message in logged if "/ask " not in message] == []  # the 400 itself; no script error, no favicon 404


def test_an_answer_has_its_own_address_and_back_brings_the_last_one_again(served, browser):
    """Bookmarked, shared, or reached with Back: the address holds the question, and opening it asks."""
    from urllib.parse import parse_qs, quote, urlparse

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _, expected = call(served, "/ask", {"question": ANSWERABLE})
    answer_is = lambda text: lambda b: b.find_element(By.ID, "answer").text == text  # noqa: E731
    browser.get(f"{served}/?q={quote(ANSWERABLE)}")  # a shared link: nothing typed
    WebDriverWait(browser, 60).until(answer_is(expected["answer"]))
    assert browser.find_element(By.ID, "question").get_attribute("value") == ANSWERABLE
    entries = browser.execute_script("return history.length")
    box = browser.find_element(By.ID, "question")
    box.send_keys(Keys.ENTER)  # the same question again: the same address (spelled %20 or +), no new entry
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "ask-button").text == "Ask")
    assert browser.execute_script("return history.length") == entries
    box.clear()
    box.send_keys(UNANSWERABLE, Keys.ENTER)
    WebDriverWait(browser, 60).until(answer_is("Not in the articles"))
    assert parse_qs(urlparse(browser.current_url).query) == {"q": [UNANSWERABLE]}
    browser.back()
    WebDriverWait(browser, 60).until(answer_is(expected["answer"]))
    assert browser.find_element(By.ID, "question").get_attribute("value") == ANSWERABLE
    assert browser.title.startswith(ANSWERABLE)


def test_a_date_range_no_article_is_in_says_which_dates_the_articles_cover(served, browser):
    from urllib.parse import quote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, health = call(served, "/healthz")
    first, last = health["dates"]
    browser.get(f"{served}/?q={quote(ANSWERABLE)}&until=1990-01-01")
    said = WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "citation").text)
    assert said == f"No article is dated in the range asked (they run from {first} to {last})."
    assert browser.find_element(By.ID, "options").get_attribute("open") is not None  # the range asked, in sight
    assert browser.find_element(By.ID, "until").get_attribute("value") == "1990-01-01"


def test_a_shared_address_with_a_field_the_form_cannot_hold_asks_without_it(served, browser):
    from urllib.parse import parse_qs, quote, urlparse

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, expected = call(served, "/ask", {"question": ANSWERABLE})
    browser.get(f"{served}/?q={quote(ANSWERABLE)}&k=abc&since=2021-13-45")
    WebDriverWait(browser, 60).until(lambda b: b.find_element(By.ID, "answer").text == expected["answer"])
    assert parse_qs(urlparse(browser.current_url).query) == {"q": [ANSWERABLE]}  # the address says what was asked


def test_a_shared_address_whose_question_is_blank_asks_nothing(served, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/?q=%20%0A&k=3")  # a space and a line break: no question to ask
    WebDriverWait(browser, 30).until(ready.text_to_be_present_in_element((By.ID, "status"), "ready"))
    browser.execute_script("return fetch('/healthz')")  # one more round trip: an ask sent on load would be answered by now
    time.sleep(1)
    assert browser.find_element(By.ID, "error").is_displayed() is False
    assert browser.find_element(By.ID, "result").is_displayed() is False
    assert browser.current_url == f"{served}/?k=3"  # the address says what the form holds


def test_a_question_asked_while_another_is_answered_is_asked_next_and_only_its_answer_shows(served, browser):
    from urllib.parse import parse_qs, urlparse

    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    ask_in_page(browser, served, "How far is the Panjshir Valley from Kabul?")
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.emulateNetworkConditions",  # every answer takes a second and a half
                            {"offline": False, "latency": 1500, "downloadThroughput": -1, "uploadThroughput": -1})
    try:
        box = browser.find_element(By.ID, "question")
        box.clear()
        box.send_keys(ANSWERABLE, Keys.ENTER)
        box.clear()
        box.send_keys(UNANSWERABLE, Keys.ENTER)  # while the first is on its way
        box.clear()
        box.send_keys("a question typed, not asked yet")
        shown = []
        def settled(b):
            shown.append(b.find_element(By.ID, "answer").text)
            return b.find_element(By.ID, "ask-button").text == "Ask" and shown[-1] == "Not in the articles"
        WebDriverWait(browser, 60, poll_frequency=0.1).until(settled)
    finally:
        browser.execute_cdp_cmd("Network.emulateNetworkConditions",
                                {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": -1})
    assert "Ahmad Massoud" not in shown  # the first question's answer never stood under the second
    assert parse_qs(urlparse(browser.current_url).query) == {"q": [UNANSWERABLE]}
    assert box.get_attribute("value") == "a question typed, not asked yet"  # left as typed
    assert browser.title.startswith(UNANSWERABLE)


def test_on_a_narrow_screen_nothing_is_wider_than_the_window(served, browser):
    """Article 002 holds a 58-character link with no space in it: it widened the page to 496 px."""
    width = browser.get_window_size()["width"]
    browser.set_window_size(400, 900)
    try:
        ask_in_page(browser, served, ANSWERABLE)
        assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    finally:
        browser.set_window_size(width, 900)


def test_the_page_stops_saying_the_server_does_not_answer_once_it_answers_again(tmp_path, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    server, base = start_server(tmp_path / "index")
    port = int(base.rsplit(":", 1)[1])
    ask_in_page(browser, base, ANSWERABLE)
    server.terminate()
    server.wait(30)
    box = browser.find_element(By.ID, "question")
    box.send_keys(Keys.ENTER)
    error = WebDriverWait(browser, 30).until(lambda b: b.find_element(By.ID, "error").is_displayed() and b.find_element(By.ID, "error"))
    assert "does not answer" in error.text
    server, _ = start_server(tmp_path / "index", port=port)  # the same address, back
    try:
        WebDriverWait(browser, 60).until(lambda b: not b.find_element(By.ID, "error").is_displayed())
        assert "ready" in browser.find_element(By.ID, "status").text
    finally:
        server.terminate()
        server.wait(30)
