"""One worker process of :func:`workbench.app._serving.run_workers` (not for direct use).

``python -m workbench.app._worker SPEC_JSON LISTEN_FD READY_FD TORCH_THREADS``: rebuilds the
:class:`~workbench.app.AppContext` from its spec, makes the app, opens the stores, says
``ready`` on ``READY_FD``, serves the inherited listening socket (or, when the supervisor
only holds the port, a ``SO_REUSEPORT`` socket of its own) and warms up meanwhile
(:func:`workbench.app._warm.warm_after_ready`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys


def main(argv: list[str]) -> None:
    spec, listen_fd, ready_fd, threads = json.loads(argv[0]), *map(int, argv[1:4])
    from workbench.app._serving import exit_with_parent

    exit_with_parent()
    import torch

    torch.set_num_threads(threads)
    from workbench.app import AppContext, create_app
    from workbench.app._serving import serve_socket
    from workbench.app._warm import warm_after_ready

    ctx = AppContext.from_spec(spec)
    app = create_app(ctx)
    for name in ctx.model_names():
        ctx.store(name)  # open the stores now, so the first page is quick
    # first-call costs after ready, between the users' callbacks (see _warm); the
    # supervisor compiles the kernels; the Gates tables are not filled ahead here (each
    # worker would redo them, taking CPU from the users' requests): the first Gates page of
    # a worker computes its own, waiting for nothing else
    warm_after_ready(ctx, app.server.workbench_callback_lock)

    from workbench.app._serving import listening, own_socket

    sock = socket.socket(fileno=listen_fd)
    if not listening(sock):  # the supervisor holds the port: listen on a socket of our own
        held, sock = sock, own_socket(sock)
        held.close()  # (the supervisor keeps its own copy of the port)
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    os.write(ready_fd, b"ready\n")
    os.close(ready_fd)
    serve_socket(app, sock)


if __name__ == "__main__":
    main(sys.argv[1:])
