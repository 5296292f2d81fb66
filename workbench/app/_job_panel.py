"""A progress bar with a Cancel button for a job (:mod:`workbench.app._jobs`) on a page.

A page puts ``job_panel(prefix)`` in its layout and calls ``register(app, ctx, prefix)``
once; a callback of the page starts a job and writes its id to ``{prefix}-job.data``::

    job, refused = _job_panel.start(ctx, current, "projection", model=m, name=n, method="umap")
    return job or no_update, refused   # Output(f"{prefix}-job", "data"), a message

:func:`start` refuses (with a one-line message) a second, different job while the page's
current one runs, and a start beyond the per-client bound of :mod:`~workbench.app._jobs`.

The panel polls the job (any worker answers), shows its message and fraction, stops it on
Cancel, and writes the final status to ``{prefix}-job-done.data`` (``{"job", "state",
"message"}``), which the page listens to to show the result (read from where the job
cached it).
"""

from __future__ import annotations

#: Milliseconds between polls while a job runs.
POLL_MS = 700


def client() -> str | None:
    """Who asks (the request's remote address), for the per-client job bound."""
    from flask import has_request_context, request

    return request.remote_addr if has_request_context() else None


def start(ctx, current, job: str, /, **kwargs) -> tuple[str | None, str]:
    """Start (or join) job ``job`` for the page whose running job is ``current``.

    Returns
    -------
    job : str or None
        ``"ID#start"`` for the page's ``{prefix}-job`` store (:func:`job_of` reads the id);
        None when refused.
    message : str
        Empty, or why the request was refused and what to do (one line).
    """
    import time

    from workbench.app._jobs import JobLimitError

    jobs = ctx.jobs()
    wanted = jobs.job_id(job, kwargs)
    current = job_of(current)
    if current and current != wanted:
        try:
            state = jobs.status(current)
        except ValueError:
            state = {"state": "none"}
        if state["state"] in ("starting", "running"):
            return None, (
                f"refused: the page's previous request is still running ({state['message']}); "
                "wait for it or press Cancel, then ask again"
            )
    try:  # a new value each start, so the panel polls again after a cancel of the same job
        return f"{jobs.start(job, client=client(), **kwargs)}#{time.time_ns()}", ""
    except JobLimitError as exc:
        return None, f"refused: {exc}"


def job_of(value) -> str | None:
    """The job id in a ``{prefix}-job`` value (``"ID#start"``), or None."""
    return value.split("#", 1)[0] if isinstance(value, str) and value else None


def job_panel(prefix: str):
    """The panel's components (hidden until a job runs)."""
    from dash import dcc, html

    return html.Div(
        [
            dcc.Store(id=f"{prefix}-job"),
            dcc.Store(id=f"{prefix}-job-done"),
            dcc.Interval(id=f"{prefix}-job-poll", interval=POLL_MS, disabled=True),
            html.Progress(id=f"{prefix}-job-bar", max="1"),
            html.Span(id=f"{prefix}-job-message", className="wb-hint"),
            html.Button("Cancel", id=f"{prefix}-job-cancel", n_clicks=0),
        ],
        id=f"{prefix}-job-panel",
        className="wb-job",
        style={"display": "none"},
    )


def view(status: dict) -> tuple:
    """``(bar value, message, panel style, polling disabled)`` for a job status."""
    state = status.get("state")
    running = state in ("starting", "running")
    fraction = status.get("fraction")
    percent = f" ({fraction:.0%})" if isinstance(fraction, int | float) and running else ""
    message = f"{status.get('message') or state}{percent}"
    if state == "cancelled":
        message = "cancelled"
    elif state == "failed":
        message = f"failed: {status.get('message')}"
    bar = fraction if isinstance(fraction, int | float) else None
    style = {"display": "flex"} if running or state in ("failed", "cancelled") else {
        "display": "none"}  # fmt: skip
    return bar, message, style, not running


def register(app, ctx, prefix: str) -> None:
    """Register the panel's poll and cancel callbacks for ``prefix``."""
    from dash import Input, Output, State, no_update
    from dash import ctx as dash_ctx

    @app.callback(
        Output(f"{prefix}-job-bar", "value"), Output(f"{prefix}-job-message", "children"),
        Output(f"{prefix}-job-panel", "style"), Output(f"{prefix}-job-poll", "disabled"),
        Output(f"{prefix}-job-done", "data"),
        Input(f"{prefix}-job", "data"), Input(f"{prefix}-job-poll", "n_intervals"),
        Input(f"{prefix}-job-cancel", "n_clicks"),
        State(f"{prefix}-job-done", "data"),
        prevent_initial_call=True,
    )  # fmt: skip
    def on_poll(job, _ticks, _cancel, done):
        job = job_of(job)
        if not job:
            return None, "", {"display": "none"}, True, no_update
        jobs = ctx.jobs()
        if dash_ctx.triggered_id == f"{prefix}-job-cancel":
            jobs.cancel(job)
        status = jobs.status(job)
        bar, message, style, stop = view(status)
        final = {"job": job, "state": status["state"], "message": status["message"]}
        finished = stop and (done or {}) != final
        return bar, message, style, stop, final if finished else no_update
