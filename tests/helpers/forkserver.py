"""A fork server for the tests' qaexp commands: TensorFlow, Keras and transformers are imported once, and each
command is a fork of that process instead of a new interpreter that imports them again.

Why: `import tensorflow, keras` alone is 4.5-6 CPU s on the project's 2-core VM, about half of a tiny CLI run, and
the suite starts a hundred such runs. Everything after the libraries' import is the real command, in a process of
its own: qaexp itself is imported anew (its start-up code runs), `python -m qaexp ...`'s argv, working directory,
environment, stdin/stdout/stderr, exit status and signals are the command's.

Two kinds: `full` imports the Hugging Face libraries too, `lean` only TensorFlow and Keras, for commands that set
Hugging Face variables of their own (read as those libraries import).

How a test's process sees it (helpers.cli decides which commands go where): it starts `python forkserver.py
--client SOCKET ARGS...`, a small process that hands its stdio, argv, cwd and environment to the server, which
forks. The client stays the process the test holds: it passes on the signals it gets (SIGINT, SIGTERM, ...),
and ends as the command ended (its exit status, or the same signal). Killed itself (SIGKILL, a timeout), its
connection closes and the server kills the command.

Commands whose start-up is what a test checks (quiet start-up, `-X importtime`, the backend chosen at import, an
environment that changes what the libraries read when imported) are not sent here: helpers.cli.server_for says
which are.

QAEXP_TEST_FORK_LOG=FILE: each forked command's CPU seconds (user + system, from wait4), its test and argv, one
tab-separated line each. Per-test CPU from rusage misses these commands (the server, not the test, waits for
them), so this is where to look when measuring the suite.
"""
from __future__ import annotations

import atexit
import gc
import json
import os
import select
import signal
import socket
import struct
import sys
import threading

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)
_HEADER = struct.Struct("!I")


# ---- the client: the process the test started ----------------------------------------------------------------

def client(path: str, argv: list[str]) -> None:
    """Run `python ARGV` as a fork of the server at `path`, passing on signals; end as it ended."""
    pending: list[int] = []
    child = [0]

    def forward(signum, _frame):
        if child[0]:
            try:
                os.kill(child[0], signum)
            except ProcessLookupError:
                pass
        else:
            pending.append(signum)

    # The command starts with this process's dispositions (a signal ignored here starts ignored there, as in a
    # new interpreter); every signal is passed on all the same: the command may handle one it started ignoring.
    ignored = [signum for signum in FORWARDED if signal.getsignal(signum) is signal.SIG_IGN]
    for signum in FORWARDED:
        signal.signal(signum, forward)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(path)
    request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ), "ignored": ignored}).encode()
    socket.send_fds(conn, [_HEADER.pack(len(request)) + request], [0, 1, 2])
    lines = conn.makefile("r")
    status = None
    for line in lines:
        kind, value = line.split()
        if kind == "pid":
            child[0] = int(value)
            for signum in pending:
                os.kill(child[0], signum)
        elif kind == "status":
            status = int(value)
            break
    if status is None:
        sys.stderr.write("forkserver: the server went away before the command ended\n")
        os._exit(70)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
    os._exit(os.waitstatus_to_exitcode(status))


# ---- the server ----------------------------------------------------------------------------------------------

# Read at import by the libraries only the full server imports: the lean server's commands set their own.
HUB_MODULES = ("huggingface_hub.constants", "datasets", "transformers")
# Read at import by what no server imports (helpers.cli's RUN_TIME_ONLY_PREFIXES counts on it).
NEVER_IMPORTED = ("wandb",)


def _preload(kind: str) -> None:
    """What every qaexp command that trains or loads a model imports, as qaexp imports it: qaexp's start-up first
    (the quiet environment and default backend are set before the libraries read them), TensorFlow with its load
    notices filtered, Keras, then (`full`) the Hugging Face libraries and Hydra. qaexp's own modules are dropped
    again in each command (see _become). Ends the server if a library that reads a command's own variables as it
    imports was imported after all (a new release of one of these may import another): the tests then run their
    commands in new interpreters, with a warning."""
    import importlib

    importlib.import_module("qaexp")
    from qaexp.quiet import import_tensorflow

    import_tensorflow()
    importlib.import_module("keras")
    if kind == "full":
        for module in ("datasets", "hydra", "transformers"):
            importlib.import_module(module)
        transformers = sys.modules["transformers"]
        for name in ("AutoConfig", "AutoTokenizer", "PreTrainedTokenizerFast"):  # transformers loads these lazily
            getattr(transformers, name)
    unread = NEVER_IMPORTED + (HUB_MODULES if kind == "lean" else ())
    imported = [module for module in unread if module in sys.modules]
    if imported:
        raise SystemExit(f"forkserver: the {kind} server imported {', '.join(imported)}, which reads variables "
                         "the commands may set for themselves")
    # What the server holds is never garbage: moved out of the collector's sight, a command's collections (the
    # one at its end included) look at the command's own objects only, as in a new interpreter.
    gc.collect()
    gc.freeze()


def _receive(conn: socket.socket) -> dict:
    data, fds, _flags, _addr = socket.recv_fds(conn, 1 << 20, 3)
    while len(data) < _HEADER.size or len(data) < _HEADER.size + _HEADER.unpack_from(data)[0]:
        more = conn.recv(1 << 20)
        if not more:
            raise EOFError("client closed its connection mid-request")
        data += more
    request = json.loads(data[_HEADER.size:])  # the client sends one request and then only waits
    request["fds"] = fds
    return request


def serve(path: str) -> tuple[socket.socket, dict]:
    """Accept requests forever; return (in the forked child only) the connection and request it is to run."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path + ".tmp")
    listener.listen(64)
    os.rename(path + ".tmp", path)  # the socket appears only once the server is ready to fork
    parent = os.getppid()
    # child pid -> (its client's connection, its test and argv for QAEXP_TEST_FORK_LOG)
    running: dict[int, tuple[socket.socket, tuple[str, str]]] = {}
    killed: set[int] = set()
    while True:
        watched = [conn for pid, (conn, _) in running.items() if pid not in killed]
        ready, _, _ = select.select([listener, *watched], [], [], 0.5)
        for conn in ready:
            if conn is listener:
                client_conn, _ = listener.accept()
                try:
                    request = _receive(client_conn)
                except (EOFError, OSError, ValueError):
                    client_conn.close()
                    continue
                pid = os.fork()
                if pid == 0:
                    listener.close()
                    for other, _ in running.values():
                        other.close()
                    return client_conn, request
                for fd in request["fds"]:
                    os.close(fd)
                test = request["env"].get("PYTEST_CURRENT_TEST", "?")
                running[pid] = (client_conn, (test, " ".join(request["argv"])))
            else:  # a client whose connection closed (it was killed): its command goes too
                if not conn.recv(1):
                    pid = next(p for p, (c, _) in running.items() if c is conn)
                    killed.add(pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        while running:
            try:
                pid, status, usage = os.wait4(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            killed.discard(pid)
            conn, command = running.pop(pid, (None, ("?", "?")))
            _log_cpu(usage, *command)
            if conn is not None:
                try:
                    conn.sendall(f"status {status}\n".encode())
                except OSError:
                    pass
                conn.close()
        if os.getppid() != parent:  # the test process is gone: so is the server
            os._exit(0)


def _log_cpu(usage, test: str, argv: str) -> None:
    if os.environ.get("QAEXP_TEST_FORK_LOG"):
        with open(os.environ["QAEXP_TEST_FORK_LOG"], "a", encoding="utf-8") as log:
            log.write(f"{usage.ru_utime + usage.ru_stime:.2f}\t{test}\t{argv}\n")


def _become(conn: socket.socket, request: dict) -> None:
    """Turn this forked child into the command: its stdio, directory, environment, argv, import path, signals."""
    for target, fd in enumerate(request["fds"]):
        os.dup2(fd, target)
        os.close(fd)
    conn.sendall(f"pid {os.getpid()}\n".encode())
    conn.close()
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    for signum in FORWARDED:  # a new interpreter's dispositions: Python's own SIGINT handler, the rest default
        fresh = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
        signal.signal(signum, signal.SIG_IGN if signum in request["ignored"] else fresh)
    sys.stdout.reconfigure(line_buffering=os.isatty(1))  # as Python sets it up for the new stdout
    for name in [name for name in sys.modules if name == "qaexp" or name.startswith("qaexp.")]:
        del sys.modules[name]  # qaexp's start-up (signal handlers for its commands, ...) runs as in a new process


def _run(argv: list[str]) -> None:
    import runpy

    sys.orig_argv = [sys.executable, *argv]
    if argv[0] == "-m":  # while the package imports, sys.argv[0] is "-m" (qaexp/runtime/signals.py reads it)
        sys.argv = ["-m", *argv[2:]]
        sys.path[0] = os.getcwd()
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = list(argv)
        sys.path[0] = os.path.dirname(os.path.realpath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")


def _run_to_the_end(argv: list[str]) -> None:
    """Run the command, then end as a new interpreter ends, bar the teardown of every module's objects: Python
    waits for the non-daemon threads, runs the atexit handlers (logging's flush and close, wandb's, tempfile's
    clean-up, ...), collects the garbage and flushes stdio, as here; the teardown then touches each of the millions
    of objects TensorFlow and co. left in the server, 1.2 CPU s per command (more than all else a one-line error
    costs), and os._exit skips it. What a new interpreter prints when the command ends (SystemExit's message, an
    uncaught exception's traceback) and its exit status are kept, and an uncaught KeyboardInterrupt ends it by
    SIGINT as it ends Python."""
    interrupted = False
    try:
        _run(argv)
        status = 0
    except SystemExit as stop:
        status = _exit_status(stop.code)
    except BaseException as err:  # noqa: B902 (every exception: Python's own top level prints it the same way)
        sys.excepthook(type(err), err, err.__traceback__)
        interrupted, status = isinstance(err, KeyboardInterrupt), 1
    threading._shutdown()  # what Python's finalisation calls first (private, in every CPython 3 since 3.4)
    atexit._run_exitfuncs()
    gc.collect()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    if interrupted:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    os._exit(status)


def _exit_status(code) -> int:
    """The exit status of `sys.exit(code)`, as Python makes it: None is 0, a number itself, else the message on
    stderr and 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def main() -> None:
    if sys.argv[1] == "--client":
        client(sys.argv[2], sys.argv[3:])
        return
    path, kind = sys.argv[1], sys.argv[2]
    _preload(kind)
    sys.stdout.flush()
    sys.stderr.flush()
    conn, request = serve(path)
    _become(conn, request)
    _run_to_the_end(request["argv"])


if __name__ == "__main__":
    main()
