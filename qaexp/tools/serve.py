"""Serve a saved model over HTTP on this machine, with a page to try it.

    python -m qaexp.serve MODEL_DIR [--port 8000] [--host 127.0.0.1] [--no-batching]

POST /predict (and POST /, where huggingface_hub's InferenceClient(model="http://HOST:PORT") sends) takes the
Hugging Face Inference API's question-answering requests,
    {"inputs": {"question": "...", "context": "..."}, "parameters": {"top_k": 3}}
or a list of such inputs, and answers {"answer", "score", "start", "end"} (a list of them for top_k > 1, per
question for a list); for SQuAD v2 models the no-answer is {"answer": "", "start": 0, "end": 0}. The parameters
max_answer_len and handle_impossible_answer change one request's answers; max_seq_len and doc_stride are accepted
at the served windows; what cannot be honoured is a 400 naming it. GET /health describes the model and the
batching; the page at / asks questions from a browser. Concurrent requests share one forward pass: those waiting
while the model works and, while requests come together, those arriving within --max-wait-ms. Window and answer
settings default to the model's own (MODEL_DIR/qaexp.json; for a model without one, RUN_DIR/.hydra/config.yaml).
SIGINT (Ctrl-C) or SIGTERM stops it: requests in flight get --stop-grace-ms to be answered, then 503; exit status 0.
The service needs fastapi and uvicorn, the serve extra: pip install -e ".[serve]" in qaexp's clone.
"""
from __future__ import annotations

import gc
import logging
import os
import signal
import sys

from qaexp import extras, tools
from qaexp.errors import QAExpError
from qaexp.model.saved import describe
from qaexp.serving.batcher import STOP_GRACE_S
from qaexp.serving.payload import Limits
from qaexp.tools.setting_flags import add_setting_flags, setting_overrides

SERVE_PACKAGES = ("fastapi", "uvicorn")  # pyproject.toml's `serve` extra


def parse_args(argv):
    parser = tools.parser("serve", __doc__, model_dir=True)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (printed at start)")
    batching = parser.add_argument_group("batching")
    batching.add_argument("--no-batching", action="store_true", help="one request per forward pass")
    batching.add_argument("--max-batch-questions", type=int, default=32, help="questions per shared forward pass")
    batching.add_argument("--max-wait-ms", type=float, default=5.0,
                          help="how long a batch waits for more requests (only while requests come together)")
    batching.add_argument("--max-pending", type=int, default=256,
                          help="waiting requests beyond which new ones get 503 busy")
    batching.add_argument("--windows-per-forward", type=int, default=32, help="windows per model call")
    limits = parser.add_argument_group("request limits")
    limits.add_argument("--max-context-chars", type=int, default=Limits.max_context_chars)
    limits.add_argument("--max-question-chars", type=int, default=Limits.max_question_chars)
    limits.add_argument("--max-inputs", type=int, default=Limits.max_inputs, help="questions per request")
    parser.add_argument("--stop-grace-ms", type=float, default=1000 * STOP_GRACE_S,
                        help="after SIGINT/SIGTERM, how long requests in flight may still take before they get 503")
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    parser.add_argument("--access-log", action="store_true", help="log every request")
    add_setting_flags(parser)
    args = parser.parse_args(argv)
    positive = ["max_batch_questions", "max_pending", "windows_per_forward", "max_context_chars",
                "max_question_chars", "max_inputs"]
    for name in positive:
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_wait_ms < 0 or args.stop_grace_ms < 0 or not 0 <= args.port < 65536:
        parser.error("--max-wait-ms and --stop-grace-ms must be >= 0 and --port between 0 and 65535")
    return args


def main(argv=None) -> int:
    """The exit status of a bad start; once serving, the process ends (status 0) when the service stops."""
    args = parse_args(sys.argv[1:] if argv is None else argv)  # --help needs none of the serving packages
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        extras.require("the service", SERVE_PACKAGES, extras.install_command("serve"))
        from qaexp.serving.server import build_service, listening_socket, uvicorn_server

        sock = listening_socket(args.host, args.port)
        limits = Limits(args.max_context_chars, args.max_question_chars, args.max_inputs)
        service = build_service(args.model_dir, setting_overrides(args), limits=limits,
                                batching=not args.no_batching, max_batch_questions=args.max_batch_questions,
                                max_wait_ms=args.max_wait_ms, max_pending=args.max_pending,
                                windows_per_forward=args.windows_per_forward)
    except QAExpError as err:
        print(f"qaexp serve: error: {err}", file=sys.stderr)
        return 2
    gc.freeze()  # the model and libraries stay for the process's life: keep the collector from rescanning them
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    batching = "no batching" if args.no_batching else \
        f"batching up to {args.max_batch_questions} questions, {args.max_wait_ms:g} ms wait"
    print(f"qaexp serve: {args.model_dir} ({describe(service.saved.settings)}; {batching})\n"
          f"qaexp serve: listening on http://{address}/ (page at /, POST / or /predict, GET /health); "
          "Ctrl-C stops", flush=True)
    # uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again for the previous handler:
    # with these, the command ends with status 0 once the service has stopped.
    for stop_signal in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop_signal, lambda signum, frame: None)
    uvicorn_server(service, args.log_level, args.access_log, args.stop_grace_ms / 1000).run(sockets=[sock])
    print("qaexp serve: stopped", file=sys.stderr)
    # Every request is answered or refused, the model thread is idle and nothing is left to write: end the process
    # here. The interpreter's teardown (TensorFlow's above all) adds 0.1-0.2 s after "stopped" on an idle 2-core
    # machine and up to 2 s with other jobs on its cores, doing nothing a stopped service needs.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

