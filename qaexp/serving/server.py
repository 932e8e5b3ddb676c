"""Loading a model into a Service and running the app with uvicorn on a socket bound beforehand."""
from __future__ import annotations

import asyncio
import functools
import socket
import threading

from qaexp.errors import QAExpError
from qaexp.serving.app import Service, create_app
from qaexp.serving.batcher import STOP_GRACE_S, RequestBatcher
from qaexp.serving.payload import Limits

WARM_UP = [{"question": "Who wrote it?", "context": "Ada wrote it."},
           {"question": "Which city is the capital of the country in the story?",
            "context": "The story is set in a small country whose capital city sits beside a river. " * 4}]


def build_service(model_dir: str, overrides: dict, *, limits: Limits = Limits(), batching: bool = True,
                  max_batch_questions: int = 32, max_wait_ms: float = 5.0, max_pending: int = 256,
                  windows_per_forward: int = 32) -> Service:
    from qaexp.model.saved import answer_settings, load_saved
    from qaexp.serving.answers import ranked_answers

    saved = load_saved(model_dir, answer_settings(model_dir, overrides))
    abandon = threading.Event()  # set by the batcher when it stops: the forward passes end at the next one
    answer_all = functools.partial(ranked_answers, saved, batch_size=windows_per_forward,
                                   should_stop=abandon.is_set)
    # Trace the forward pass before the first request: once for one shape, then (another batch size and width)
    # for any shape, so no request waits for a retrace.
    answer_all(WARM_UP[:1])
    answer_all(WARM_UP)
    batcher = RequestBatcher(answer_all, batching=batching, max_questions=max_batch_questions,
                             max_wait_ms=max_wait_ms, max_pending=max_pending, abandon=abandon)
    return Service(saved, limits, batcher)


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


def uvicorn_server(service: Service, log_level: str = "warning", access_log: bool = False,
                   stop_grace_s: float = STOP_GRACE_S):
    """uvicorn, whose stop (a signal, or should_exit) gives requests in flight stop_grace_s to be answered.

    uvicorn alone waits for every connection (up to its timeout_graceful_shutdown), then cancels what is left
    (a bare 500 and a traceback) and only then runs the lifespan's shutdown, which waited for the model thread
    to finish the whole batch in progress; on a forced stop (a second Ctrl-C) it skipped the lifespan, and the
    process lived on after "stopped" until that batch was done. Here the batcher's grace period starts with the
    stop: then the requests still unanswered get a 503 that says so and the model thread gives up at its next
    forward pass."""
    import uvicorn

    class Server(uvicorn.Server):
        async def shutdown(self, sockets=None) -> None:
            closing = asyncio.ensure_future(service.batcher.close(stop_grace_s))
            await super().shutdown(sockets)  # returns once the connections are done, or at once when forced
            service.batcher.hurry()  # a forced stop skips the lifespan (and its batcher.stop())
            await closing
            if self.force_exit:
                unfinished = [task for task in self.server_state.tasks if not task.done()]
                if unfinished:  # the requests refused just now write their 503 before the loop ends
                    await asyncio.wait(unfinished, timeout=0.2)
                await self.lifespan.shutdown()  # quick now; skipped, it ends in a CancelledError traceback

    # uvicorn's own limit only covers connections the batcher does not hold (say, a body still uploading).
    config = uvicorn.Config(create_app(service), log_level=log_level, access_log=access_log,
                            timeout_graceful_shutdown=stop_grace_s + 1.0)
    return Server(config)


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
