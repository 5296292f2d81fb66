"""Long work (UMAP maps, SHAP) as jobs: progress any worker can read, and cancel.

A job runs in its own process, so it never holds a worker's callback lock and a cancel is a
real stop (even inside numba). Its state is a small JSON file in a folder every worker of
one server shares, so the page polling it may land on any worker::

    jobs = ctx.jobs()
    job = jobs.start("projection", model="python", name="rnn.0.fwd.hidden", method="umap")
    jobs.status(job)   # {"state": "running", "fraction": 0.3, "message": "UMAP: fitting ..."}
    jobs.cancel(job)   # state "cancelled"; the process is stopped
    jobs.result(job)   # the target's JSON result once state is "done"

A client (the page passes the request's address) runs at most :data:`MAX_PER_CLIENT` jobs at
once and the server at most :data:`MAX_RUNNING`; a start beyond that raises
:class:`JobLimitError` with the fix. Cancel stops the job's process (SIGTERM) after
marking it cancelled; the target's own ``progress`` calls also end it cooperatively.

Targets are registered by name (:data:`TARGETS`, :func:`register`): a function
``target(ctx, progress, **kwargs)`` in an importable module, where ``progress(message,
fraction=None)`` reports and kwargs and the result are JSON. A job's id is a hash of its
target and kwargs, so the same request from two users (or two workers) is one job.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

#: Job name -> ``"module:function"``.
TARGETS: dict[str, str] = {
    "projection": "workbench.app._jobs:fit_projection",
    "explain": "workbench.app._jobs:explain_input",
}
STATES = ("starting", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
#: Seconds a job may take from its start to its first progress report.
START_TIMEOUT = 300
#: Jobs one client may run at once.
MAX_PER_CLIENT = 2
#: Jobs the server runs at once (each is a process holding its own models).
MAX_RUNNING = 4


class JobLimitError(RuntimeError):
    """Too many jobs running (for this client or the server); the message says the fix."""


def register(name: str, target: str) -> None:
    """Make ``target`` (``"module:function"``) startable as job ``name``."""
    TARGETS[name] = target


def _write(path: Path, data) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _alive(pid: int | None, job_id: str) -> bool:
    """Whether ``pid`` is still this job's process (not a reused pid, not a zombie)."""
    if not pid:
        return False
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return job_id.encode() in cmd and stat.rsplit(")", 1)[-1].split()[0] != "Z"


class Jobs:
    """The jobs of one server (see the module docstring).

    Parameters
    ----------
    folder : Path
        Shared by every worker of the server.
    spec : dict
        :meth:`AppContext.spec` of the context the job processes rebuild.
    """

    def __init__(self, folder, spec: dict) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.spec = spec

    def _path(self, job_id: str, suffix: str = "json") -> Path:
        if not (len(job_id) == 16 and all(c in "0123456789abcdef" for c in job_id)):
            raise ValueError(f"{job_id!r} is not a job id")
        return self.folder / f"{job_id}.{suffix}"

    def job_id(self, name: str, kwargs: dict) -> str:
        """The id of job ``name`` with ``kwargs`` (the same for every worker)."""
        text = json.dumps([name, kwargs, self.spec], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def running(self) -> list[dict]:
        """The status files of the jobs starting or running now (``client`` and ``name`` too)."""
        out = []
        for path in self.folder.glob("*.json"):
            if path.name.endswith(".result.json") or len(path.stem) != 16:
                continue
            if self.status(path.stem)["state"] in ("starting", "running"):
                out.append({**(_read(path) or {}), "job": path.stem})
        return out

    def start(self, job: str, /, *, restart: bool = False, client: str | None = None,
              **kwargs) -> str:  # fmt: skip
        """Start job ``job`` with ``kwargs`` unless the same job is running or done.

        Returns its id. A job that failed or was cancelled starts again; ``restart=True``
        reruns a done one too.

        Raises
        ------
        JobLimitError
            ``client`` already runs :data:`MAX_PER_CLIENT` jobs, or the server
            :data:`MAX_RUNNING` (joining a job that runs already is always allowed).
        """
        if job not in TARGETS:
            raise ValueError(f"unknown job {job!r}; known: {sorted(TARGETS)}")
        name = job
        job_id = self.job_id(name, kwargs)
        path = self._path(job_id)
        state = self.status(job_id)["state"]
        if state in ("starting", "running") or (state == "done" and not restart):
            return job_id
        self._check_limits(client)
        if not self._claim(job_id):  # another worker is starting the same job right now
            return job_id
        # each run has a token of its own: a cancelled run's process (still ending) and its
        # reaper must never write over the state of the run started after it
        run = f"{os.getpid()}-{time.time_ns()}"
        _write(path, {"state": "starting", "fraction": 0.0, "message": "starting", "pid": None,
                      "name": name, "client": client, "started": time.time(),
                      "run": run})  # fmt: skip
        self._path(job_id, "cancel").unlink(missing_ok=True)
        cmd = [sys.executable, "-m", "workbench.app._jobs", str(self.folder), job_id,
               json.dumps(self.spec), TARGETS[name], json.dumps(kwargs), run]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)  # fmt: skip
        threading.Thread(target=self._reap, args=(proc, job_id, run), daemon=True).start()
        return job_id

    def _check_limits(self, client: str | None) -> None:
        running = self.running()
        mine = [r for r in running if client is not None and r.get("client") == client]
        if len(mine) >= MAX_PER_CLIENT:
            what = ", ".join(sorted(str(r.get("name")) for r in mine))
            raise JobLimitError(
                f"{len(mine)} of your jobs are running ({what}); the limit is {MAX_PER_CLIENT}: "
                "wait for one to finish or press its Cancel, then ask again"
            )
        if len(running) >= MAX_RUNNING:
            raise JobLimitError(
                f"the server runs {len(running)} jobs, its limit; try again when one has finished"
            )

    def _claim(self, job_id: str) -> bool:
        """Take the job's start lock (one starter across workers); stale locks are taken over."""
        lock = self._path(job_id, "lock")
        for _ in range(2):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            except FileExistsError:
                try:
                    owner = int(lock.read_text() or 0)
                except (OSError, ValueError):
                    owner = 0
                if owner and _pid_exists(owner) and owner != os.getpid():
                    return False
                lock.unlink(missing_ok=True)  # its starter is gone, or it is this process
                continue
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            return True
        return False

    def _reap(self, proc: subprocess.Popen, job_id: str, run: str) -> None:
        _, err = proc.communicate()
        state = _read(self._path(job_id)) or {}
        if state.get("run") != run:  # a later run owns the state now
            return
        if state.get("state") not in FINISHED:  # it died before saying how it ended
            lines = (err or b"").decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"its process exited with status {proc.returncode}"
            _write(self._path(job_id), {**state, "state": "failed", "message": why})
        self._path(job_id, "lock").unlink(missing_ok=True)

    def status(self, job_id: str) -> dict:
        """``{"state", "fraction", "message"}`` (state ``"none"`` for a job never started)."""
        state = _read(self._path(job_id))
        if state is None:
            return {"state": "none", "fraction": None, "message": ""}
        if state["state"] == "running" and not _alive(state.get("pid"), job_id):
            if self._path(job_id, "cancel").exists():
                state = {**state, "state": "cancelled", "message": "cancelled"}
            else:
                state = {**state, "state": "failed", "message": "the job's process ended"}
        stuck = time.time() - float(state.get("started") or 0) > START_TIMEOUT
        if state["state"] == "starting" and stuck:  # its starter died before it ran
            state = {**state, "state": "failed", "message": "the job did not start"}
        return {k: state.get(k) for k in ("state", "fraction", "message")}

    def cancel(self, job_id: str) -> bool:
        """Stop the job; returns whether it was still running."""
        state = _read(self._path(job_id)) or {}
        self._path(job_id, "cancel").touch()
        running = state.get("state") in ("starting", "running")
        pid = state.get("pid")
        if _alive(pid, job_id):
            os.kill(pid, signal.SIGTERM)
        if running:
            _write(self._path(job_id), {**state, "state": "cancelled", "message": "cancelled"})
        return running

    def result(self, job_id: str):
        """The target's result (JSON) of a done job, or None."""
        if self.status(job_id)["state"] != "done":
            return None
        return _read(self._path(job_id, "result.json"))


# ------------------------------------------------------------------------ job process
def _run(folder: str, job_id: str, spec: str, target: str, kwargs: str, run: str) -> None:
    from workbench.app._context import AppContext
    from workbench.app._serving import exit_with_parent

    exit_with_parent()
    jobs = Jobs(folder, json.loads(spec))
    path, cancel = jobs._path(job_id), jobs._path(job_id, "cancel")
    base = {**(_read(path) or {}), "run": run}

    def current() -> bool:
        """Whether this run is still the job's (not cancelled, not replaced by a new run)."""
        return not cancel.exists() and (_read(path) or {}).get("run") == run

    def progress(message: str, fraction: float | None = None) -> None:
        if not current():
            raise SystemExit(0)
        _write(path, {**base, "state": "running", "pid": os.getpid(), "message": str(message),
                      "fraction": fraction})  # fmt: skip

    import torch

    torch.set_num_threads(1)  # a job takes one core; the workers keep answering
    progress("loading the models and stores", 0.0)
    module, _, func = target.partition(":")
    fn = getattr(importlib.import_module(module), func)
    try:
        result = fn(AppContext.from_spec(json.loads(spec)), progress, **json.loads(kwargs))
    except Exception as exc:  # noqa: BLE001 - reported to the page as the job's failure
        text = " ".join(str(exc).split())[:300]
        if current():
            _write(path, {**base, "state": "failed", "message": f"{type(exc).__name__}: {text}"})
        return
    if current():
        _write(jobs._path(job_id, "result.json"), result)
        _write(path, {**base, "state": "done", "fraction": 1.0, "message": "done"})


#: Fraction of a projection done when its progress message starts with these words.
_PROJECTION_STAGES = (("PCA", 0.1), ("UMAP", 0.3), ("projection done", 1.0))


def fit_projection(ctx, progress, model: str, name: str, **projection_kwargs) -> dict:
    """Job target: fit (and cache in the store) ``store.projection(name, **kwargs)``.

    The page then reads the map from the store's cache with the same arguments.
    """

    def say(text: str) -> None:
        fraction = next((f for w, f in _PROJECTION_STAGES if text.startswith(w)), None)
        progress(text, fraction)

    store = ctx.store(model)
    if store is None:
        raise ValueError(f"no state store for {model!r}")
    proj = store.projection(name, progress=say, **projection_kwargs)
    return {"points": int(len(proj.sample))}


def explain_input(ctx, progress, model: str, **request) -> dict:
    """Job target: the Explain page's output for one request (its Dash children as JSON).

    ``request`` holds :func:`workbench.app.pages.explain.run`'s arguments after ``model``;
    ``progress`` is reported (and a cancel noticed) before each method.
    """
    import plotly

    from workbench.app.pages import explain

    ctx.bundle(model)
    children = explain.run(ctx, model, progress=progress, **request)
    return {"children": json.loads(json.dumps(children, cls=plotly.utils.PlotlyJSONEncoder))}


if __name__ == "__main__":
    _run(*sys.argv[1:7])
