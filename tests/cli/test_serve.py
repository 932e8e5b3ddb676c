"""qaexp.serve: the HTTP API on a free local port, batching equivalence with `qaexp.predict --file`, SQuAD v2
no-answers, bad requests, the page in headless chromium, the command itself (huggingface_hub's clients on its root
URL, stopping on SIGTERM), and the batcher on its own."""
import asyncio
import dataclasses
import html
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers.repo import REPO
from helpers.cli import popen_cli
from qaexp.errors import QAExpError
from qaexp.model.saved import answer_settings, trained_settings
from qaexp.serving.batcher import RequestBatcher, ServiceBusy, ServiceStopping

httpx = pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def synthetic_questions() -> list[dict]:
    """Short questions and a few long contexts that need several windows (of 256 tokens, the run's setting)."""
    from qaexp.data.synthetic import generate_examples

    return (generate_examples(24, seed=3, split="validation")
            + generate_examples(6, seed=4, split="test", long_context_sentences=40))


def as_input(record: dict) -> dict:
    return {"question": record["question"], "context": record["context"]}


@pytest.fixture(scope="module")
def service(trained_tiny_model):
    from qaexp.serving.server import build_service

    return build_service(str(trained_tiny_model / "model"), {})


@pytest.fixture(scope="module")
def url(service):
    from qaexp.serving.server import ServerThread

    with ServerThread(service) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(url):
    with httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=16)) as http:
        yield http


def predict_json(client, body):
    response = client.post("/predict", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def assert_same_answers(mine: list[dict], theirs: list[dict]) -> None:
    """The same texts and spans; scores may differ in float32 rounding (windows padded to other widths)."""
    assert [(c["answer"], c["start"], c["end"]) for c in mine] == [(c["answer"], c["start"], c["end"]) for c in theirs]
    assert [c["score"] for c in mine] == pytest.approx([c["score"] for c in theirs], rel=1e-5)


@pytest.mark.slow
def test_health_describes_the_model_with_the_run_settings(client):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_type"] == "roformer"
    # The quick run trains with data=synthetic: windows of 256 tokens, stride 96 (not the 384/128 defaults).
    assert (health["max_length"], health["doc_stride"], health["version_2_with_negative"]) == (256, 96, False)


@pytest.mark.slow
def test_single_question_answers_in_the_inference_api_shape(client, service):
    from qaexp.evaluation.answering import answer_questions

    record = synthetic_questions()[0]
    answer = predict_json(client, {"inputs": as_input(record)})
    assert set(answer) == {"answer", "score", "start", "end"}
    assert record["context"][answer["start"]:answer["end"]] == answer["answer"] != ""
    assert 0 < answer["score"] <= 1
    expected = answer_questions(service.saved, [record]).predictions
    assert answer["answer"] == expected[record["id"]]


@pytest.mark.slow
def test_a_list_gets_one_reply_per_question_and_top_k_ranked_lists(client):
    records = synthetic_questions()[:3] + synthetic_questions()[-1:]
    best = predict_json(client, {"inputs": [as_input(r) for r in records]})
    ranked = predict_json(client, {"inputs": [as_input(r) for r in records], "parameters": {"top_k": 4}})
    assert len(best) == len(ranked) == 4
    for record, first, candidates in zip(records, best, ranked):
        assert isinstance(first, dict) and len(candidates) == 4
        assert_same_answers(candidates[:1], [first])
        assert [c["score"] for c in candidates] == sorted((c["score"] for c in candidates), reverse=True)
        for candidate in candidates:
            assert record["context"][candidate["start"]:candidate["end"]] == candidate["answer"]
    single_ranked = predict_json(client, {"inputs": as_input(records[0]), "parameters": {"top_k": 2}})
    assert_same_answers(single_ranked, ranked[0][:2])


@pytest.mark.slow
def test_huggingface_hub_inference_client_talks_to_it(url, monkeypatch):
    from huggingface_hub import InferenceClient, constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' offline switch; this URL is local
    # huggingface_hub >= 1.0 checks offline mode on every request, so no session made earlier needs resetting

    record = synthetic_questions()[3]
    client = InferenceClient(model=f"{url}/predict")
    best = client.question_answering(question=record["question"], context=record["context"])
    ranked = client.question_answering(question=record["question"], context=record["context"], top_k=3)
    assert len(ranked) == 3 and (ranked[0].answer, ranked[0].start, ranked[0].end) == (best.answer, best.start,
                                                                                          best.end)
    assert record["context"][best.start:best.end] == best.answer


@pytest.mark.slow
def test_inference_client_parameters_set_this_requests_answers_or_are_refused_by_name(url, service, monkeypatch):
    """InferenceClient.question_answering's parameters: max_answer_len and handle_impossible_answer answer as
    predict does with those settings; the windows at the served values are accepted; the rest is a 400."""
    from huggingface_hub import InferenceClient, constants
    from huggingface_hub.errors import HfHubHTTPError

    from qaexp.evaluation.answering import answer_questions

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' offline switch; this URL is local
    client = InferenceClient(model=url)
    records = synthetic_questions()[:12]
    settings = service.saved.settings

    def expected(**changes) -> dict:
        saved = dataclasses.replace(service.saved, settings=dataclasses.replace(settings, **changes))
        return answer_questions(saved, records).predictions

    short, allowed, served = expected(max_answer_length=1), expected(version_2_with_negative=True), expected()
    assert short != served  # so that the parameter is seen to change answers (handle_impossible_answer=false
    # is seen to on a v2 model: test_v2_model_answers_no_answer_by_the_threshold_saved_with_it)
    same_windows = dict(max_seq_len=settings.max_length, doc_stride=settings.doc_stride, align_to_words=False)
    for record in records:
        ask = dict(question=record["question"], context=record["context"])
        assert client.question_answering(**ask, max_answer_len=1).answer == short[record["id"]]
        assert client.question_answering(**ask, handle_impossible_answer=True).answer == allowed[record["id"]]
        assert client.question_answering(**ask, handle_impossible_answer=False, **same_windows).answer \
            == served[record["id"]]
    with pytest.raises(HfHubHTTPError) as refused:
        client.question_answering(question="Who?", context="Ada wrote it.", max_question_len=16)
    assert refused.value.response.status_code == 400 and "parameters.max_question_len: " in str(refused.value)


class ServeProcess:
    """`python -m qaexp.serve MODEL --port 0` as a user runs it, (re)started when a test asks for its URL."""

    def __init__(self, model_dir: str, log_dir):
        self.model_dir, self.log_dir = model_dir, log_dir
        self.process, self._url, self.starts = None, None, 0

    @property
    def url(self) -> str:
        if self.process is None or self.process.poll() is not None:
            self._start()
        return self._url

    def _start(self) -> None:
        self.starts += 1
        self.log = self.log_dir / f"serve-{self.starts}.stderr"  # a file: a full pipe would block the service
        with open(self.log, "w") as stderr:
            self.process = popen_cli(["-m", "qaexp.serve", self.model_dir, "--port", "0"], stderr=stderr)
        for line in self.process.stdout:
            found = re.search(r"listening on (http://\S+?)/ ", line)
            if found:
                self._url = found.group(1)
                return
        raise AssertionError(f"qaexp serve did not start: {self.stderr()[-2000:]}")

    def stop(self, stop_signal=signal.SIGTERM) -> float:
        """Seconds from the signal to the end of the process."""
        began = time.monotonic()
        self.process.send_signal(stop_signal)
        self.process.wait(timeout=60)
        return time.monotonic() - began

    def stderr(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@pytest.fixture(scope="module")
def served(trained_tiny_model, tmp_path_factory):
    """One `qaexp serve` subprocess for the tests of the command (a test that stops it leaves the next a new one)."""
    process = ServeProcess(str(trained_tiny_model / "model"), tmp_path_factory.mktemp("serve_logs"))
    yield process
    process.kill()


@pytest.mark.slow
def test_huggingface_hub_clients_on_the_root_url_answer_as_qaexp_predict(served, tmp_path, monkeypatch):
    """InferenceClient(model="http://HOST:PORT"), the way any hosted endpoint is used, posts to / itself."""
    pytest.importorskip("aiohttp")  # AsyncInferenceClient's HTTP client (the dev extra)
    from huggingface_hub import AsyncInferenceClient, InferenceClient, QuestionAnsweringOutputElement, constants
    from qaexp.tools import predict

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # the tests' offline switch; this URL is local
    # huggingface_hub >= 1.0 checks offline mode on every request, so no session made earlier needs resetting

    records = synthetic_questions()[4:8] + synthetic_questions()[-2:]  # the last two need several windows
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    assert predict.main([served.model_dir, "--file", str(data), "--output", str(tmp_path / "out.json"),
                         "--top-k", "3"]) == 0
    expected = json.loads((tmp_path / "out.json").read_text())

    url = served.url
    client = InferenceClient(model=url)
    synchronous = [(client.question_answering(question=r["question"], context=r["context"]),
                    client.question_answering(question=r["question"], context=r["context"], top_k=3))
                   for r in records]

    async def ask_all():
        async with AsyncInferenceClient(model=url) as async_client:
            asked = [async_client.question_answering(question=r["question"], context=r["context"], top_k=top_k)
                     for r in records for top_k in (None, 3)]
            replies = await asyncio.gather(*asked)
        return list(zip(replies[::2], replies[1::2]))

    for replies in (synchronous, asyncio.run(ask_all())):
        for record, (best, ranked) in zip(records, replies):
            theirs = expected[record["id"]]
            assert isinstance(best, QuestionAnsweringOutputElement) and best.answer == theirs["answer"]
            assert record["context"][best.start:best.end] == best.answer
            assert [c.answer for c in ranked] == [a["text"] for a in theirs["answers"]]
            assert [c.score for c in ranked] == pytest.approx([a["score"] for a in theirs["answers"]], rel=1e-4)
            assert (ranked[0].answer, ranked[0].start, ranked[0].end) == (best.answer, best.start, best.end)


@pytest.mark.slow
def test_the_root_url_serves_the_page_on_get_and_answers_on_post(served):
    page = httpx.get(f"{served.url}/", timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form' in page.text and 'id="context-view"' in page.text
    body = {"inputs": [{"question": "Who wrote it?", "context": "Ada wrote it in London."}],
            "parameters": {"top_k": 2}}
    at_root, at_predict = (httpx.post(f"{served.url}{path}", json=body, timeout=60) for path in ("/", "/predict"))
    assert at_root.status_code == at_predict.status_code == 200
    assert_same_answers(at_root.json()[0], at_predict.json()[0])
    bad = httpx.post(f"{served.url}/", content=b'{"inputs": ', timeout=60)
    assert bad.status_code == 400 and bad.json()["error"].startswith("invalid JSON")


@pytest.mark.slow
def test_sigterm_refuses_the_request_in_flight_with_a_503_and_ends_the_process_within_1_5_s(served):
    from qaexp.data.synthetic import generate_examples

    url = served.url
    # 64 contexts of about 44,000 characters (the most one request may carry): some 4,500 windows, tens of
    # seconds of work for the model on two cores, far beyond the 0.5 s grace a stop gives.
    records = generate_examples(64, seed=4, split="test", long_context_sentences=800)
    with ThreadPoolExecutor(max_workers=1) as pool:
        reply = pool.submit(httpx.post, f"{url}/", json={"inputs": [as_input(r) for r in records]}, timeout=120)
        time.sleep(1.0)
        assert not reply.done(), "the request was answered before the stop: make it longer"
        seconds = served.stop(signal.SIGTERM)
        response = reply.result()
    assert response.status_code == 503, response.text[:500]
    error = response.json()["error"]
    assert error.startswith("the service is stopping and did not answer") and "send the request again" in error
    log = served.stderr()
    assert served.process.returncode == 0, log[-2000:]
    assert seconds < 1.5, f"{seconds:.2f} s from SIGTERM to the end of the process"
    assert log.rstrip().endswith("qaexp serve: stopped") and "Traceback" not in log, log[-2000:]


@pytest.mark.slow
def test_concurrent_requests_share_forward_passes_and_answer_as_predict_file(client, service, tmp_path):
    from qaexp.tools import predict

    records = synthetic_questions()
    data = tmp_path / "questions.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    settings = service.saved.settings
    assert predict.main([service.saved.model_dir, "--file", str(data), "--output", str(tmp_path / "out.json"),
                         "--top-k", "3", "--max-length", str(settings.max_length),
                         "--doc-stride", str(settings.doc_stride)]) == 0
    expected = json.loads((tmp_path / "out.json").read_text())

    before = client.get("/health").json()
    # Single questions and small lists, 12 clients at once: the service must batch them together.
    groups = [records[i:i + 1] for i in range(0, 18)] + [records[i:i + 3] for i in range(18, len(records), 3)]
    with ThreadPoolExecutor(max_workers=12) as pool:
        replies = list(pool.map(lambda group: predict_json(client, {"inputs": [as_input(r) for r in group],
                                                                    "parameters": {"top_k": 3}}), groups))
    after = client.get("/health").json()
    assert after["requests"] - before["requests"] == len(groups)
    assert after["batches"] - before["batches"] < len(groups), "no two requests shared a forward pass"

    served = {r["id"]: candidates for group, reply in zip(groups, replies) for r, candidates in zip(group, reply)}
    for record in records:
        mine, theirs = served[record["id"]], expected[record["id"]]
        assert mine[0]["answer"] == theirs["answer"], record["id"]
        assert [c["answer"] for c in mine] == [a["text"] for a in theirs["answers"]]
        assert [c["score"] for c in mine] == pytest.approx([a["score"] for a in theirs["answers"]], rel=1e-4)


def v2_run(tmp_path, trained_tiny_model, threshold: float):
    """A run directory whose config says SQuAD v2 with this no-answer threshold, around the tiny run's model."""
    from omegaconf import OmegaConf

    run = tmp_path / "v2-run"
    (run / ".hydra").mkdir(parents=True)
    (run / "model").mkdir()
    for path in (trained_tiny_model / "model").iterdir():
        if path.name != "qaexp.json":  # the model's own settings file would win over the run config written here
            (run / "model" / path.name).symlink_to(path)
    config = OmegaConf.load(trained_tiny_model / ".hydra" / "config.yaml")
    config.data.version_2_with_negative = True
    config.data.null_score_diff_threshold = threshold
    OmegaConf.save(config, run / ".hydra" / "config.yaml")
    return run / "model"


@pytest.mark.slow
def test_v2_model_answers_no_answer_by_the_threshold_saved_with_it(service, trained_tiny_model, tmp_path):
    from qaexp.evaluation.answering import answer_questions
    from qaexp.serving.server import ServerThread, build_service

    records = synthetic_questions()[:16]
    model_dir = str(trained_tiny_model / "model")
    v2_settings = answer_settings(model_dir, {"version_2_with_negative": True})
    odds = answer_questions(dataclasses.replace(service.saved, settings=v2_settings), records).null_odds
    threshold = sorted(odds.values())[len(odds) // 2]  # about half the questions get the no-answer
    v2_model = v2_run(tmp_path, trained_tiny_model, threshold)
    v2_service = build_service(str(v2_model), {})
    assert v2_service.saved.settings.null_score_diff_threshold == threshold
    expected = answer_questions(v2_service.saved, records).predictions

    always = answer_questions(dataclasses.replace(v2_service.saved, settings=dataclasses.replace(
        v2_service.saved.settings, version_2_with_negative=False)), records).predictions

    with ServerThread(v2_service) as v2_url, httpx.Client(base_url=v2_url, timeout=60) as v2_client:
        assert v2_client.get("/health").json()["version_2_with_negative"] is True
        replies = predict_json(v2_client, {"inputs": [as_input(r) for r in records]})
        # The Inference API's handle_impossible_answer=false: this request always gets a span, as SQuAD v1
        answered = predict_json(v2_client, {"inputs": [as_input(r) for r in records],
                                            "parameters": {"handle_impossible_answer": False}})
    assert [reply["answer"] for reply in answered] == [always[r["id"]] for r in records]
    assert all(reply["answer"] != "" for reply in answered)
    for record, reply in zip(records, replies):
        assert reply["answer"] == expected[record["id"]]
        if odds[record["id"]] > threshold:
            assert (reply["answer"], reply["start"], reply["end"]) == ("", 0, 0)
        else:
            assert reply["answer"] != ""
    assert 0 < sum(r["answer"] == "" for r in replies) < len(records)


BAD_REQUESTS = [
    (b'{"inputs": {"question": "Who?", ', 400, "invalid JSON"),
    (b'\xff\xfe', 400, "not UTF-8"),
    (b'[{"question": "Who?", "context": "Ada."}]', 422, "must be a JSON object"),
    (b'{"question": "Who?", "context": "Ada."}', 422, "unknown field 'context'"),
    (b'{"parameters": {"top_k": 2}}', 422, 'missing field "inputs"'),
    (b'{"inputs": {"question": "Who?"}}', 422, 'inputs: missing field "context"'),
    (b'{"inputs": [{"context": "Ada."}]}', 422, 'inputs[0]: missing field "question"'),
    (b'{"inputs": {"question": "   ", "context": "Ada wrote it."}}', 422, "inputs.question is empty"),
    (b'{"inputs": {"question": "Who?", "context": ""}}', 422, "inputs.context is empty"),
    (b'{"inputs": {"question": 7, "context": "Ada."}}', 422, "inputs.question must be a string, not a number"),
    (b'{"inputs": "Who wrote it?"}', 422, '"inputs" must be an object'),
    (b'{"inputs": []}', 422, "non-empty list"),
    (b'{"inputs": [{"question": "Who?", "context": "Ada."}, 3]}', 422, "inputs[1] must be an object"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"top_k": "3"}}', 422,
     "top_k must be an integer"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"top_k": 0}}', 422, "between 1 and 20"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": [3]}', 422, '"parameters" must be'),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"max_answer_length": 5}}', 422,
     "unsupported parameter 'max_answer_length': this service takes align_to_words, doc_stride"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"max_answer_len": "5"}}', 422,
     "parameters.max_answer_len must be an integer, not a string"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"max_answer_len": 0}}', 422,
     "parameters.max_answer_len must be in [1, "),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"handle_impossible_answer": 1}}', 422,
     "parameters.handle_impossible_answer must be a boolean, not a number"),
    # What the Inference API defines but this service cannot do: 400, naming the parameter and what to do.
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"max_question_len": 64}}', 400,
     "parameters.max_question_len: qaexp keeps the whole question"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"align_to_words": true}}', 400,
     "parameters.align_to_words=true cannot be honoured"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"max_seq_len": 384}}', 400,
     "parameters.max_seq_len=384 cannot be honoured: this service's windows have max_length=256 (set when it "
     "starts: restart qaexp serve with --max-length 384)"),
    (b'{"inputs": {"question": "Who?", "context": "Ada."}, "parameters": {"doc_stride": 128}}', 400,
     "parameters.doc_stride=128 cannot be honoured"),
]


@pytest.mark.slow
def test_bad_requests_get_one_clear_message_and_the_service_keeps_answering(client, service):
    for body, status, message in BAD_REQUESTS:
        response = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert message in error and "\n" not in error, (body, error)
    limit = service.limits.max_context_chars
    too_long = client.post("/predict", json={"inputs": {"question": "Who?", "context": "x" * (limit + 1)}})
    assert too_long.status_code == 413 and f"at most {limit}" in too_long.json()["error"]
    too_many = client.post("/predict", json={"inputs": [{"question": "Who?", "context": "Ada."}]
                                             * (service.limits.max_inputs + 1)})
    assert too_many.status_code == 413 and "questions" in too_many.json()["error"]
    # FastAPI's own refusals come in the same one-line {"error": ...} body
    for method, path, status, message in [("GET", "/predict", 405, "GET /predict is not allowed: use POST"),
                                          ("POST", "/health", 405, "POST /health is not allowed: use GET"),
                                          ("GET", "/nowhere", 404, "no such path /nowhere: POST /predict")]:
        response = client.request(method, path)
        assert (response.status_code, list(response.json())) == (status, ["error"]), response.text
        assert message in response.json()["error"], response.text
    record = synthetic_questions()[1]
    answer = predict_json(client, {"inputs": as_input(record)})
    assert record["context"][answer["start"]:answer["end"]] == answer["answer"] != ""


def run_chromium(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess:
    profile = tempfile.mkdtemp(prefix="qaexp-chromium-")
    try:
        process = subprocess.Popen([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, err = process.communicate()
        return subprocess.CompletedProcess(process.args, process.returncode, out, err)
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is absent: apt-get install -y chromium")
def test_page_in_headless_chromium_asks_and_highlights_the_answer(client, url):
    record = synthetic_questions()[2]
    expected = predict_json(client, {"inputs": as_input(record), "parameters": {"top_k": 3}})
    # The page fills its boxes from the query, submits its form and renders the reply; the virtual-time budget
    # lets the page's requests finish before the DOM is dumped.
    query = urllib.parse.urlencode({"question": record["question"], "context": record["context"], "top_k": 3})
    result = run_chromium(["--virtual-time-budget=15000", "--dump-dom", f"{url}/?{query}"])
    dom = result.stdout
    assert result.returncode == 0 and "<body" in dom, result.stderr[-2000:]
    assert 'data-state="answered"' in dom, dom[-3000:]
    marked = re.search(r'<mark id="answer-mark">(.*?)</mark>', dom, re.S)
    assert marked and html.unescape(marked.group(1)) == expected[0]["answer"]
    before_mark = html.unescape(re.search(r'<div id="context-view">(.*?)<mark', dom, re.S).group(1))
    assert before_mark == record["context"][:expected[0]["start"]]  # highlighted where the API says it is
    alternatives = re.findall(r"<li[^>]*>(.*?)<span", re.search(r'<ol id="alternatives">(.*?)</ol>', dom, re.S)
                              .group(1), re.S)
    assert [html.unescape(a) for a in alternatives] == [c["answer"] for c in expected]
    assert "roformer" in re.search(r'<div id="model">(.*?)</div>', dom, re.S).group(1)


def test_a_missing_model_directory_is_one_line(tmp_path, capsys):
    from qaexp.tools import serve

    assert serve.main([str(tmp_path / "no-model"), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("qaexp serve: error: ") and "no-model is not a directory" in err


def test_a_taken_port_is_one_clear_error():
    from qaexp.serving.server import listening_socket

    taken = listening_socket("127.0.0.1", 0)
    try:
        with pytest.raises(QAExpError, match=r"cannot listen on 127\.0\.0\.1:\d+: Address already in use"):
            listening_socket("127.0.0.1", taken.getsockname()[1])
    finally:
        taken.close()


def test_settings_come_from_the_run_config_and_flags_override_them(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "model").mkdir()
    (run / "model" / "config.json").write_text("{}")
    assert trained_settings(str(run / "model")) == {}
    assert answer_settings(str(run / "model"), {}).max_length == 384
    (run / ".hydra" / "config.yaml").write_text(
        "data:\n  max_length: 200\n  doc_stride: 64\n  version_2_with_negative: true\n"
        "  null_score_diff_threshold: -1.5\n")
    settings = answer_settings(str(run / "model") + "/", {"doc_stride": 50, "max_length": None})
    assert (settings.max_length, settings.doc_stride, settings.version_2_with_negative,
            settings.null_score_diff_threshold, settings.max_answer_length) == (200, 50, True, -1.5, 30)
    with pytest.raises(QAExpError, match="data.doc_stride=300 must be > 0 and < data.max_length=200"):
        answer_settings(str(run / "model"), {"doc_stride": 300})


# ---- the batcher alone (no model) ------------------------------------------------------------------------


def echo_batches(calls: list, seconds: float = 0.0):
    def answer_all(questions):
        calls.append(list(questions))
        time.sleep(seconds)
        if "fail" in questions:
            raise ValueError("this batch failed")
        return [f"answer to {q}" for q in questions]
    return answer_all


def test_batcher_groups_waiting_requests_and_returns_each_its_own_answers():
    async def scenario():
        calls = []
        batcher = RequestBatcher(echo_batches(calls, 0.05), max_questions=5, max_wait_ms=0)
        await batcher.start()
        first = asyncio.create_task(batcher.answer(["a"]))
        await asyncio.sleep(0.01)  # "a" is being answered; these four queue up meanwhile and then share one pass
        rest = [asyncio.create_task(batcher.answer(q)) for q in (["b"], ["c", "d"], ["e", "f"], ["g"])]
        answers = await asyncio.gather(first, *rest)
        await batcher.stop()
        return calls, answers

    calls, answers = asyncio.run(scenario())
    assert answers == [["answer to a"], ["answer to b"], ["answer to c", "answer to d"],
                       ["answer to e", "answer to f"], ["answer to g"]]
    assert calls == [["a"], ["b", "c", "d", "e", "f"], ["g"]]  # at most 5 questions; "g" waits for the next


def test_batcher_waits_a_bounded_time_for_company_while_requests_come_together():
    async def scenario(max_wait_ms: float, together_first: bool):
        calls = []
        batcher = RequestBatcher(echo_batches(calls), max_wait_ms=max_wait_ms)
        await batcher.start()
        if together_first:  # two requests queued at once: one shared pass, so the next batch may wait
            await asyncio.gather(batcher.answer(["x"]), batcher.answer(["y"]))
        first = asyncio.create_task(batcher.answer(["a"]))
        await asyncio.sleep(0.03)
        await asyncio.gather(first, batcher.answer(["b"]))
        await batcher.stop()
        return calls[-2:] if calls[-1] == ["b"] else calls[-1:]

    assert asyncio.run(scenario(300, together_first=True)) == [["a", "b"]]  # "b" came within the wait
    assert asyncio.run(scenario(1, together_first=True)) == [["a"], ["b"]]  # "a" did not wait that long
    assert asyncio.run(scenario(300, together_first=False)) == [["a"], ["b"]]  # a lone request does not wait


def test_batcher_without_batching_answers_one_request_per_pass():
    async def scenario():
        calls = []
        batcher = RequestBatcher(echo_batches(calls, 0.01), batching=False)
        await batcher.start()
        await asyncio.gather(*(batcher.answer([q]) for q in "abc"))
        await batcher.stop()
        return calls

    assert asyncio.run(scenario()) == [["a"], ["b"], ["c"]]


def test_batcher_refuses_beyond_its_queue_and_survives_a_failing_batch():
    async def scenario():
        batcher = RequestBatcher(echo_batches([], 0.05), max_pending=1, max_wait_ms=0)
        await batcher.start()
        first = asyncio.create_task(batcher.answer(["a"]))
        await asyncio.sleep(0.01)  # "a" is taken from the queue and answered
        queued = asyncio.create_task(batcher.answer(["b"]))
        await asyncio.sleep(0)
        with pytest.raises(ServiceBusy):
            await batcher.answer(["c"])
        results = await asyncio.gather(first, queued)
        failing = await asyncio.gather(batcher.answer(["fail"]), return_exceptions=True)
        after = await batcher.answer(["d"])
        await batcher.stop()
        return results, failing, after, batcher.stats.busy_refusals

    results, failing, after, refusals = asyncio.run(scenario())
    assert results == [["answer to a"], ["answer to b"]] and after == ["answer to d"] and refusals == 1
    assert isinstance(failing[0], ValueError)


def test_batcher_close_answers_within_the_grace_then_refuses_and_the_model_thread_gives_up():
    """After the grace period the request being answered (5 s of work) and the one queued behind it get
    ServiceStopping, the model thread gives up at its next step, and later requests are refused at once."""
    steps = []

    def answer_all(questions):
        for _ in range(100 if "long" in questions else 1):  # steps of 50 ms, like forward passes
            if batcher.abandon.is_set():
                raise RuntimeError("abandoned")
            steps.append(questions[0])
            time.sleep(0.05)
        return [f"answer to {q}" for q in questions]

    batcher = RequestBatcher(answer_all, max_wait_ms=0)

    async def scenario():
        await batcher.start()
        long = asyncio.create_task(batcher.answer(["long"]))
        await asyncio.sleep(0.01)
        quick = asyncio.create_task(batcher.answer(["quick"]))  # queued behind "long"
        await asyncio.sleep(0.01)
        began = time.monotonic()
        closing = asyncio.create_task(batcher.close(0.3))
        results = await asyncio.gather(long, quick, return_exceptions=True)
        await closing
        closed_after = time.monotonic() - began
        with pytest.raises(ServiceStopping):
            await batcher.answer(["late"])
        await batcher.stop()  # the lifespan's stop after close() changes nothing
        return results, closed_after

    (long_result, quick_result), closed_after = asyncio.run(scenario())
    assert isinstance(long_result, ServiceStopping) and isinstance(quick_result, ServiceStopping)
    assert 0.3 <= closed_after < 1.0  # the grace, then at most one step of the model thread
    assert steps.count("long") < 20 and "quick" not in steps


def test_batcher_close_returns_as_soon_as_nothing_is_left_to_answer():
    async def scenario():
        batcher = RequestBatcher(echo_batches([], 0.05), max_wait_ms=0)
        await batcher.start()
        answered = asyncio.create_task(batcher.answer(["a"]))
        await asyncio.sleep(0.01)
        closing = asyncio.create_task(batcher.close(5.0))
        result = await answered  # answered within the grace
        began = time.monotonic()
        batcher.hurry()  # what the server does once the connections are done
        await closing
        return result, time.monotonic() - began

    result, hurried_after = asyncio.run(scenario())
    assert result == ["answer to a"] and hurried_after < 0.5


@pytest.mark.slow
def test_the_command_under_the_load_benchmark_answers_every_request_and_stops_cleanly(trained_tiny_model):
    """benchmarks/serve_load.py starts `python -m qaexp.serve MODEL --port 0` twice (with and without batching),
    loads it from 4 clients and stops it with SIGTERM."""
    from helpers.cli import run_cli

    pytest.importorskip("aiohttp")  # the benchmark's HTTP client

    done = run_cli([str(REPO / "benchmarks" / "serve_load.py"), str(trained_tiny_model / "model"),
                    "--clients", "4", "--requests", "24", "--duration", "20"], timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    assert figures["every_request_answered"] and figures["same_answers"]
    for mode in ("batching", "no-batching"):
        assert figures[mode]["sent"] == figures[mode]["answered"] == 24 and figures[mode]["lost"] == 0
        assert 0 < figures[mode]["p50_ms"] <= figures[mode]["p99_ms"]
        assert figures[mode]["server_exit_status"] == 0
    assert figures["no-batching"]["largest_batch_requests"] == 1
    assert "every request got an answer: yes" in done.stdout
