"""Serve the app from several worker processes sharing one listening socket.

Callbacks run one at a time inside a process (torch state is process-wide), so parallel
users need parallel processes. The supervisor binds the port (a busy or invalid port is one
line before anything is printed as ready), starts ``workers`` processes that each load the
models and open the stores (memory-mapped read-only, so their pages are shared), and prints
ready once a worker answers. Where the system has ``SO_REUSEPORT`` (Linux) the supervisor's
socket only holds the port (bound, not listening) and each worker listens on a socket of its
own on the same port once it is ready: the kernel spreads new connections evenly over the
workers that listen (a shared socket let one worker accept 105 of 150 requests while the
other waited in ``accept``). Elsewhere the workers accept on the supervisor's socket.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

#: Threads per worker process (requests waiting for the worker's callback lock, static files).
THREADS = 8


class PortError(ValueError):
    """The port cannot be served (out of range, in use, not permitted); one line."""


def check_port(port) -> int:
    """``port`` as an int in 1-65535, or :class:`PortError` with the fix."""
    try:
        value = int(port)
    except (TypeError, ValueError):
        raise PortError(f"--port {port!r} is not a number; pass a port in 1-65535") from None
    if not 1 <= value <= 65535:
        raise PortError(f"--port {port} is outside 1-65535; pass a port in that range")
    return value


#: Whether workers listen on sockets of their own (:func:`bind` with ``listen=False``).
REUSEPORT = hasattr(socket, "SO_REUSEPORT")


def bind(host: str, port: int, listen: bool = True) -> socket.socket:
    """A listening socket on ``host:port``, or :class:`PortError` naming the problem.

    ``listen=False`` (for :func:`run_workers`, where :data:`REUSEPORT`) holds the port
    without listening, bound with ``SO_REUSEPORT`` only: each worker listens on it with a
    socket of its own, and any other server's bind (``SO_REUSEADDR``) finds it in use.
    """
    port = check_port(port)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PortError(f"cannot bind to host {host!r} ({exc.strerror}); pass --host") from None
    family, _, _, _, address = infos[0]
    sock = _bound(family, address, socket.SO_REUSEADDR, host, port)
    if listen or not REUSEPORT:
        sock.listen(1024)
        return sock
    address = sock.getsockname()
    sock.close()  # the port is free: hold it for the workers (no SO_REUSEADDR on the holder)
    return _bound(family, address, socket.SO_REUSEPORT, host, port)


def _bound(family, address, option: int, host: str, port: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, option, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == 98:  # EADDRINUSE
            raise PortError(f"port {port} is in use; pass --port") from None
        raise PortError(f"cannot listen on {host}:{port} ({exc.strerror}); pass --port") from None
    return sock


def listening(sock: socket.socket) -> bool:
    """Whether ``sock`` listens (else it only holds the port for workers' own sockets)."""
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def own_socket(held: socket.socket) -> socket.socket:
    """A worker's listening socket on the port ``held`` (bound with ``SO_REUSEPORT``) holds."""
    sock = socket.socket(held.family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(held.getsockname()[:2])
    sock.listen(1024)
    return sock


def waitress_options() -> dict:
    """Waitress settings shared by every way the app is served (bounded bodies)."""
    from workbench.app import _limits

    return dict(
        threads=THREADS,
        max_request_body_size=_limits.MAX_BODY,
        connection_limit=1000,
        channel_timeout=300,
    )


def make_server(app, sock: socket.socket):
    """A waitress server of ``app`` (a Dash app) on a listening socket; ``.run()`` serves.

    Answers carry ``X-Workbench-Worker: <pid>`` (which process served them).
    """
    import logging

    from waitress import create_server

    logging.getLogger("waitress.queue").setLevel(logging.ERROR)  # queueing is expected
    return create_server(app.server, sockets=[sock], **waitress_options())


def serve_socket(app, sock: socket.socket) -> None:
    """Serve ``app`` with waitress on an already listening socket (blocking)."""
    make_server(app, sock).run()


def default_workers() -> int:
    """One worker per core, at most 4 (each holds its own models)."""
    return max(1, min(os.cpu_count() or 1, 4))


def run_workers(spec: dict, sock: socket.socket, workers: int, on_ready=None,
                on_all_ready=None) -> None:  # fmt: skip
    """Start ``workers`` processes serving ``sock`` and supervise them until interrupted.

    Parameters
    ----------
    spec : dict
        :meth:`AppContext.spec` of the context every worker rebuilds.
    sock : socket.socket
        From :func:`bind`: listening (the workers accept on it) or, with ``listen=False``,
        holding the port for the workers' own ``SO_REUSEPORT`` sockets.
    workers : int
    on_ready : callable, optional
        Called once the first worker accepts requests (the app answers from then on).
    on_all_ready : callable, optional
        Called once every worker accepts requests.
    """
    signal.signal(signal.SIGTERM, _exit_on_signal)  # so the workers are stopped too
    procs = [_start_worker(spec, sock, workers, i) for i in range(workers)]
    try:
        _wait_ready(procs[0])  # the app answers from here on; the others join as they load
        if on_ready is not None:
            on_ready()
        for p in procs[1:]:
            _wait_ready(p)
        if on_all_ready is not None:
            on_all_ready()
        while True:
            for i, p in enumerate(procs):
                if p.poll() is not None:  # a worker died (killed, out of memory): replace it
                    print(f"worker {i} exited with status {p.returncode}; starting another",
                          file=sys.stderr, flush=True)  # fmt: skip
                    procs[i] = _start_worker(spec, sock, workers, i)
                    _wait_ready(procs[i])
            time.sleep(0.5)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        sock.close()


def _exit_on_signal(signum, _frame):
    raise SystemExit(128 + signum)


def exit_with_parent() -> None:
    """End this process when the process that started it ends (a thread polls every 0.5 s)."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="wb-parent-watch").start()


def _start_worker(spec: dict, sock: socket.socket, workers: int, index: int):
    fd = sock.fileno()
    os.set_inheritable(fd, True)
    ready_r, ready_w = os.pipe()
    env = {**os.environ, "WORKBENCH_WORKER": str(index)}
    threads = max(1, (os.cpu_count() or 1) // workers)
    args = [json.dumps(spec), str(fd), str(ready_w), str(threads)]
    proc = subprocess.Popen([sys.executable, "-m", "workbench.app._worker", *args],
                            pass_fds=(fd, ready_w), env=env)  # fmt: skip
    os.close(ready_w)
    proc.ready_fd = ready_r
    return proc


def _wait_ready(proc) -> None:
    with os.fdopen(proc.ready_fd, "r") as pipe:
        line = pipe.readline()
    if line.strip() != "ready":
        proc.wait(timeout=30)
        raise RuntimeError(f"a worker failed to start (status {proc.returncode}); see above")
