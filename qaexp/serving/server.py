"""Loading a model into a Service and running the app with uvicorn on a socket bound beforehand."""
from __future__ import annotations

import functools
import socket
import threading

from qaexp.errors import QAExpError
from qaexp.serving.app import Service, create_app
from qaexp.serving.batcher import RequestBatcher
from qaexp.serving.payload import Limits
from qaexp.serving.settings import answer_settings

WARM_UP = [{"question": "Who wrote it?", "context": "Ada wrote it."},
           {"question": "Which city is the capital of the country in the story?",
            "context": "The story is set in a small country whose capital city sits beside a river. " * 4}]


def build_service(model_dir: str, overrides: dict, *, limits: Limits = Limits(), batching: bool = True,
                  max_batch_questions: int = 32, max_wait_ms: float = 5.0, max_pending: int = 256,
                  windows_per_forward: int = 32) -> Service:
    from qaexp.tools.predict import load_saved
    from qaexp.serving.answers import ranked_answers

    settings = answer_settings(model_dir, overrides)
    tokenizer, model = load_saved(model_dir)
    answer_all = functools.partial(ranked_answers, tokenizer, model, settings=settings,
                                   batch_size=windows_per_forward)
    # Trace the forward pass before the first request: once for one shape, then (another batch size and width)
    # for any shape, so no request waits for a retrace.
    answer_all(WARM_UP[:1])
    answer_all(WARM_UP)
    batcher = RequestBatcher(answer_all, batching=batching, max_questions=max_batch_questions,
                             max_wait_ms=max_wait_ms, max_pending=max_pending)
    return Service(model_dir, tokenizer, model, settings, limits, batcher)


def listening_socket(host: str, port: int) -> socket.socket:
    """A socket bound to host:port (port 0: a free one), so a taken port is one clear error before serving."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)  # connections wait in the backlog until uvicorn accepts them
    except OSError as err:
        sock.close()
        raise QAExpError(f"cannot listen on {host}:{port}: {err.strerror}") from err
    return sock


def uvicorn_server(service: Service, log_level: str = "warning", access_log: bool = False):
    import uvicorn

    config = uvicorn.Config(create_app(service), log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=5)
    return uvicorn.Server(config)


class ServerThread:
    """Serve in a background thread of this process (tests, benchmarks): `with ServerThread(service) as url:`."""

    def __init__(self, service: Service, host: str = "127.0.0.1"):
        self.sock = listening_socket(host, 0)
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = uvicorn_server(service)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server thread ended before it started serving")
            self.thread.join(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
