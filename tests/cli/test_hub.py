"""Hub publishing: the token comes from HF_TOKEN only, failures are one clear error, results stay local."""
import json

import pytest
from omegaconf import OmegaConf

from helpers.cli import run_cli
from qaexp.tools import hub
from qaexp.errors import HubPushError
from qaexp.output.hub import push_model_dir, push_run

SECRET = "hf_not_a_real_token_0123456789"


@pytest.fixture
def model_dir(tmp_path):
    """A directory that passes the pre-upload checks (config.json of a known architecture, weights and tokenizer
    listed in the manifest) without being a loadable model: the upload never reads the weights."""
    from qaexp.output.manifest import write_manifest

    directory = tmp_path / "model"
    directory.mkdir()
    (directory / "config.json").write_text('{"model_type": "bert"}')
    (directory / "model.safetensors").write_bytes(b"not really weights, but exactly these bytes")
    (directory / "tokenizer.json").write_text('{"model": "not really a tokenizer either"}')
    write_manifest(str(directory), ["model.safetensors", "tokenizer.json"])
    return directory


@pytest.mark.parametrize("damage, repo, words", [
    ("a data folder", "someone/qa", ["has no config.json", "RUN_DIR/model"]),
    ("truncated weights", "someone/qa", ["model.safetensors has 10 bytes, not the 43 written", "damaged"]),
    ("no tokenizer.json", "someone/qa", ["tokenizer.json is missing", "damaged"]),
    (None, "notarepoid", ["'notarepoid' is not USER/NAME"]),
    (None, "some--one/qa", ["not a valid repository id", "--"]),
])
def test_hub_refuses_what_it_cannot_upload_before_the_network(model_dir, tmp_path, damage, repo, words):
    """A data folder, a damaged model (weights or tokenizer) or a repo id that is not USER/NAME: one line, exit 2, and no request (the
    conftest's HF_HUB_OFFLINE would make any request end as 'unreachable')."""
    if damage == "a data folder":
        model_dir = tmp_path / "data"
        model_dir.mkdir()
        (model_dir / "train.json").write_text('{"data": []}')
    elif damage == "truncated weights":
        (model_dir / "model.safetensors").write_bytes(b"not really")
    elif damage == "no tokenizer.json":
        (model_dir / "tokenizer.json").unlink()
    result = run_cli(["-m", "qaexp", "hub", str(model_dir), repo], env={"HF_TOKEN": SECRET})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1, result.stderr
    assert "unreachable" not in lines[0] and all(word in lines[0] for word in words), lines[0]


def test_missing_token_is_one_clear_error(model_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(HubPushError, match="set the HF_TOKEN environment variable"):
        push_model_dir(str(model_dir), "someone/model")


def test_offline_hub_is_one_clear_error(model_dir, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)  # conftest sets HF_HUB_OFFLINE=1
    with pytest.raises(HubPushError, match="someone/model.*unreachable") as caught:
        push_model_dir(str(model_dir), "someone/model")
    assert "\n" not in str(caught.value) and SECRET not in str(caught.value)


def test_unreachable_endpoint_is_one_clear_error(model_dir, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    with pytest.raises(HubPushError, match="unreachable"):
        push_model_dir(str(model_dir), "someone/model", endpoint="http://127.0.0.1:9")


class FakeApi:
    calls: list = []

    def __init__(self, endpoint=None, token=None):
        FakeApi.calls.append(("init", token))

    def create_repo(self, repo_id, private, exist_ok):
        FakeApi.calls.append(("create_repo", repo_id, private, exist_ok))
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, repo_id, folder_path, commit_message):
        FakeApi.calls.append(("upload_folder", repo_id, folder_path))


def test_push_creates_the_repo_and_uploads_the_folder_with_the_env_token(model_dir, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", SECRET)
    FakeApi.calls = []
    publication = push_run(str(model_dir), OmegaConf.create({"repo_id": "me/qa", "private": True}))
    assert publication.error is None
    assert publication.record() == {"hub_url": "https://huggingface.co/me/qa", "pushed": True}
    assert FakeApi.calls == [("init", SECRET), ("create_repo", "me/qa", True, True),
                             ("upload_folder", "me/qa", str(model_dir))]


def test_failed_push_is_recorded_and_names_the_retry_command(model_dir, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    publication = push_run(str(model_dir), OmegaConf.create({"repo_id": "me/qa", "private": True}))
    summary = {"status": "completed", **publication.record()}
    assert summary["pushed"] is False and "HF_TOKEN" in summary["push_error"]
    assert f"python -m qaexp.hub {model_dir} me/qa" in str(publication.error)


def test_hub_cli_without_token_exits_2_with_one_line(model_dir, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert hub.main([str(model_dir), "me/qa"]) == 2
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("repo", [None, "notarepoid"])
def test_push_without_a_user_name_repo_id_is_rejected_before_training(tmp_path, repo):
    extra = [f"hub.repo_id={repo}"] if repo else []
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "hub.push=true", *extra, f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "hub.repo_id" in result.stderr and (not repo or "not USER/NAME" in result.stderr)


@pytest.mark.slow
def test_offline_push_keeps_the_run_and_marks_it_not_pushed(trained_tiny_model, tmp_path):
    # Evaluate the shared tiny model (no training) and push it: saving works, pushing cannot.
    result = run_cli(["-m", "qaexp", "experiment=quickstart", "data.num_train=50", "data.num_validation=20",
                      f"model.checkpoint={trained_tiny_model / 'model'}", "trainer.epochs=0", "hub.push=true",
                      "hub.repo_id=someone/qa-model", f"hydra.run.dir={tmp_path}"], env={"HF_TOKEN": SECRET})
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "someone/qa-model" in result.stderr.strip().splitlines()[-1]
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["pushed"] is False
    assert "unreachable" in metrics["push_error"]
    assert (tmp_path / "model" / "model.safetensors").exists() and (tmp_path / "model" / "README.md").exists()
    assert (tmp_path / "predictions.json").exists()
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix in {".json", ".md", ".yaml", ".log", ".txt"}:
            assert SECRET not in path.read_text(errors="replace"), path


def test_a_hub_checkpoint_with_the_hub_unreachable_is_one_line_naming_the_cache(tmp_path, monkeypatch):
    """huggingface_hub >= 1.0 raises its HTTP client's (httpx / httpx2) connection errors, which are not OSErrors:
    the hub counts as unreachable all the same, and with nothing cached the answer is one line."""
    import socket
    import time

    import huggingface_hub.constants

    from qaexp.errors import ModelLoadError
    from qaexp.model.pretrained import resolve_checkpoint

    with socket.socket() as probe:  # a port that was free a moment ago: connections to it are refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="not in the Hugging Face cache, and it cannot be downloaded") as caught:
        resolve_checkpoint("someone/model")
    assert "\n" not in str(caught.value) and time.monotonic() - started < 30


class RefusingHub:
    """A loopback HF_ENDPOINT whose model API answers as the real hub refuses: no such repo, a gated repo, no such
    revision (the X-Error-Code header huggingface_hub turns into its error classes)."""

    ANSWERS = {"qaexp-test/missing": (404, "RepoNotFound"), "qaexp-test/gated": (403, "GatedRepo"),
               "qaexp-test/bert": (404, "RevisionNotFound")}

    def __enter__(self):
        import http.server
        import threading

        answers = self.ANSWERS

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802  (http.server's name)
                repo = "/".join(self.path.split("?")[0].split("/")[3:5])  # /api/models/OWNER/NAME[/revision/R]
                status, code = answers.get(repo, (404, "RepoNotFound"))
                self.send_response(status)
                self.send_header("X-Error-Code", code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("repo, revision, words", [
    ("qaexp-test/missing", None, ["'qaexp-test/missing' is not a repository", "check the name"]),
    ("qaexp-test/gated", None, ["gated repository", "HF_TOKEN"]),
    ("qaexp-test/bert", "no-such-branch", ["has no revision 'no-such-branch'", "model.revision"]),
])
def test_the_hubs_refusals_are_one_line_each(tmp_path, monkeypatch, repo, revision, words):
    """huggingface_hub's own error classes for the hub's answers (whichever HTTP client it uses) become one line."""
    import huggingface_hub.constants

    from qaexp.errors import ModelLoadError
    from qaexp.model.pretrained import resolve_checkpoint

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with RefusingHub() as url:
        monkeypatch.setattr(huggingface_hub.constants, "ENDPOINT", url)
        with pytest.raises(ModelLoadError) as caught:
            resolve_checkpoint(repo, revision)
    message = str(caught.value)
    assert "\n" not in message and all(word in message for word in words), message
