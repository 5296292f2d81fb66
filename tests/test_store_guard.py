"""Store builds guarded against the disk, the file system and each other (real stores on disk).

Token limits on folder corpora, the size estimate and the free-space check, one-line OS
errors (EFBIG, ENOSPC) with a rerun that resumes, the build lock, a store that never
committed a segment, and text folders read safely.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from test_store import SETTINGS, assert_same_store, make_corpus, make_model

import workbench
from workbench.data import DataError, corpus, from_text_folder
from workbench.store import StateStore, StoreBusyError, StoreError
from workbench.store._build import _size_on_disk, build
from workbench.store._limits import estimate_bytes
from workbench.store._lock import LOCK_NAME, build_lock

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, limit_bytes: int | None = None, timeout: float = 300):
    """Run ``workbench ARGS`` in a fresh process (optionally under RLIMIT_FSIZE)."""

    def limit():
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    code = "import sys; sys.argv[0] = 'workbench'; from workbench.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORKBENCH_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        preexec_fn=limit,
        timeout=timeout,
    )


def one_line(res) -> str:
    assert res.returncode == 1, res.stderr
    lines = [x for x in res.stderr.splitlines() if x.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


@contextlib.contextmanager
def small_disk(tmp_path: Path, size: str):
    """A tmpfs of ``size`` (mount options after it) mounted under ``tmp_path``.

    Skips where mounting is not allowed (it needs root).
    """
    mnt = tmp_path / "disk"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)],
                      capture_output=True).returncode:  # fmt: skip
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def test_record_honours_max_tokens_for_a_folder_corpus(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "one_line.txt").write_text("(a(b)c)" * 300_000)  # 2.1 MB on one line
    (folder / "two.txt").write_text("()" * 1000)
    res = cli("record", "--model", "parens", "--corpus", folder, "--max-tokens", 500,
              "--out", tmp_path / "st")  # fmt: skip
    assert res.returncode == 0, res.stderr
    store = StateStore.open(tmp_path / "st")
    assert store.n_tokens == 500 and store.n_docs == 1
    assert "".join(store.tokens()) == ("(a(b)c)" * 100)[:500]


def test_text_folder_reads_only_as_far_as_the_limit(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    text = "héllo world, " * 50_000
    (folder / "a.txt").write_text(text)
    os.mkfifo(folder / "b.txt")  # refused if it were reached: files past the limit stay shut
    chars = from_text_folder(folder, max_tokens=70_001)
    assert [len(d) for d in chars] == [70_001]
    assert "".join(chars[0].tokens) == text[:70_001]
    words = from_text_folder(folder, max_tokens=7, level="word")
    assert words[0].tokens == ["h", "llo", "world", ",", "h", "llo", "world"]
    with pytest.raises(DataError, match="b.txt is not a regular file"):
        from_text_folder(folder)
    (folder / "b.txt").unlink()
    (folder / "b.txt").write_text("the end")
    assert [len(d) for d in from_text_folder(folder)] == [len(text), 7]
    # a file is read only as far as the limit needs: a NUL byte 1 MB in is never seen
    (folder / "a.txt").write_bytes(b"x" * (1 << 20) + b"\x00")
    assert len(from_text_folder(folder, max_tokens=1000)[0]) == 1000
    with pytest.raises(DataError, match="looks binary"):
        from_text_folder(folder)


def test_text_folder_links_inside_are_read_outside_refused(tmp_path):
    folder = tmp_path / "texts"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "a.txt").write_text("inside")
    (folder / "link.txt").symlink_to(folder / "sub" / "a.txt")
    assert [d.doc_id for d in from_text_folder(folder)] == ["link.txt", "sub/a.txt"]
    (tmp_path / "out.txt").write_text("outside")
    (folder / "sub" / "z.txt").symlink_to(tmp_path / "out.txt")
    with pytest.raises(DataError, match="outside the corpus folder"):
        from_text_folder(folder)
    (folder / "sub" / "z.txt").unlink()
    (folder / "sub" / "loop.txt").symlink_to(folder / "sub" / "loop.txt")
    with pytest.raises(DataError, match="leads nowhere"):
        from_text_folder(folder)


def test_estimate_is_an_upper_bound_of_the_store(tmp_path):
    store = StateStore.build(make_model(), make_corpus(), tmp_path / "s", **SETTINGS)
    actual = _size_on_disk(store.path)
    estimate = estimate_bytes(store.manifest)
    assert actual <= estimate <= 4 * actual + (1 << 20), (actual, estimate)


def test_a_build_the_disk_cannot_hold_is_refused_up_front(tmp_path):
    with small_disk(tmp_path, "1m") as disk:
        line = one_line(
            cli(
                "record",
                "--model",
                "parens",
                "--corpus",
                "parens",
                "--max-tokens",
                2000,
                "--out",
                disk / "st",
            )  # fmt: skip
        )
        assert "the store needs about" in line and "MB" in line and "free" in line, line
        assert not (disk / "st").exists()


def test_disk_full_is_one_line_naming_the_path(tmp_path):
    """ENOSPC while the build writes (here: the file system runs out of inodes)."""
    args = ("record", "--model", "parens", "--corpus", "parens", "--max-tokens", 3000,
            "--chunk-tokens", 64)  # fmt: skip
    with small_disk(tmp_path, "64m,nr_inodes=40") as disk:
        line = one_line(cli(*args, "--out", disk / "st"))
        assert "ENOSPC" in line and str(disk / "st") in line, line
        assert "free some space" in line


def test_an_export_the_disk_cannot_hold_is_refused_up_front(tmp_path):
    store = StateStore.build(make_model(), make_corpus(), tmp_path / "s", **SETTINGS)
    with small_disk(tmp_path, "16k") as disk:
        line = one_line(cli("export", store.path, "--out", disk / "proj"))
        assert "the export needs about" in line and "free" in line, line
        assert not (disk / "proj").exists()


def test_file_size_limit_is_one_line_and_the_rerun_resumes(tmp_path):
    out = tmp_path / "st"
    args = ("record", "--model", "parens", "--corpus", "parens", "--max-tokens", 3000,
            "--out", out)  # fmt: skip
    line = one_line(cli(*args, limit_bytes=20_000))  # a state chunk file is 512 kB
    assert "EFBIG" in line and str(out) in line, line
    assert not list(out.rglob("*.partial")), "a partial chunk file was left behind"
    assert cli(*args).returncode == 0  # the same command, with room: resumes
    fresh = tmp_path / "fresh"
    assert cli(*args[:-1], fresh).returncode == 0
    assert_same_store(out, fresh)
    assert not (out / LOCK_NAME).exists()


def test_a_second_build_into_the_same_folder_is_refused_with_the_pid(tmp_path):
    path = tmp_path / "s"
    code = textwrap.dedent(f"""
        import sys
        from workbench.store._lock import build_lock
        with build_lock({str(path)!r}):
            print("locked", flush=True)
            sys.stdin.read()
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(
            StoreBusyError, match=f"another build is writing here .*pid {holder.pid}"
        ):
            StateStore.build(make_model(), make_corpus(), path, **SETTINGS)
    finally:
        holder.stdin.close()
        holder.wait(30)
    store = StateStore.build(make_model(), make_corpus(), path, **SETTINGS)  # free again
    assert store.n_docs == 12 and not (path / LOCK_NAME).exists()
    with build_lock(path), pytest.raises(StoreBusyError):  # in one process too
        with build_lock(path):
            pass


def test_two_real_builds_into_one_folder_one_is_refused_the_other_finishes(tmp_path):
    """A CLI build runs; a second build started meanwhile is refused with its pid.

    The first build is frozen (SIGSTOP) once it holds the lock, so a fast CPU cannot finish
    it before the second build asks; it resumes (SIGCONT) after the refusal.
    """
    path = tmp_path / "st"
    bundle, docs = workbench.load("parens"), corpus("parens", "train", 30_000)
    first = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'workbench'; "
         "from workbench.cli import main; main()", "record", "--model", "parens", "--corpus",
         "parens", "--split", "train", "--max-tokens", "30000", "--out", str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None and not _holder(path):
            time.sleep(0.005)
        os.kill(first.pid, signal.SIGSTOP)
        assert first.poll() is None, "the first build ended before the second could start"
        assert _holder(path) == str(first.pid), "the first build let go of its lock already"
        with pytest.raises(StoreBusyError, match=f"pid {first.pid}"):
            StateStore.build(bundle, docs, path, progress=False)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(first.pid, signal.SIGCONT)
        _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    assert StateStore.open(path).n_tokens == 30_000
    assert not (path / LOCK_NAME).exists()


def _holder(path: Path) -> str:
    """The pid in ``path``'s build lock ('' while there is none)."""
    try:
        return (path / LOCK_NAME).read_text().strip()
    except FileNotFoundError:
        return ""


def test_a_store_that_never_committed_is_rebuilt_with_other_settings(tmp_path):
    """Killed (or failed) before its first commit: a rerun with other settings is accepted."""
    path = tmp_path / "s"
    build(make_model(), make_corpus(), path, stop_after=0, **{**SETTINGS, "chunk_tokens": 32})
    with pytest.raises(StoreError, match="interrupted"):
        StateStore.open(path)
    got = StateStore.build(make_model(), make_corpus(), path, **SETTINGS)
    assert_same_store(got.path, StateStore.build(make_model(), make_corpus(),
                                                 tmp_path / "fresh", **SETTINGS).path)  # fmt: skip
    half = tmp_path / "half"  # one segment committed: other settings are still refused
    build(make_model(), make_corpus(), half, stop_after=1, **SETTINGS)
    with pytest.raises(StoreError, match="other settings"):
        build(make_model(), make_corpus(), half, **{**SETTINGS, "chunk_tokens": 32})


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("n_tokens", lambda v: v * 10),
        ("n_docs", lambda v: v + 1),
        ("units", lambda v: {k: u + 1 for k, u in v.items()}),
        ("chunk_tokens", lambda v: v * 2),
        ("dtype", lambda v: "float32"),
        ("names", lambda v: v[:-1]),
    ],
)
def test_a_tampered_manifest_is_refused_naming_the_field(tmp_path, field, change):
    path = StateStore.build(make_model(), make_corpus(), tmp_path / "s", **SETTINGS).path
    meta = json.loads((path / "zarr.json").read_text())
    manifest = meta["attributes"]["workbench_store"]
    manifest[field] = change(manifest[field])
    (path / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match=f"manifest field '{field}'"):
        StateStore.open(path)


@pytest.mark.parametrize(
    ("name", "value"),
    [("chunk_tokens", 99_999_999_999), ("chunk_tokens", 0), ("window", 10**9),
     ("batch_size", -1), ("segment_tokens", 10**12), ("threads", 10**6), ("chunk_tokens", 2.5)],
)  # fmt: skip
def test_size_parameters_are_bounded_before_anything_is_created(tmp_path, name, value):
    with pytest.raises(StoreError, match=name):
        StateStore.build(make_model(), make_corpus(), tmp_path / "s", **{**SETTINGS, name: value})
    assert not (tmp_path / "s").exists()
