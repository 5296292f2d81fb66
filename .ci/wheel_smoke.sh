#!/usr/bin/env bash
# The wheel outside the checkout: build it, install it with the constraints into a fresh venv
# in a temporary folder, then run `workbench demo`, `python -m workbench --help`, a short
# `workbench serve` (start, GET /, stop) and a demo notebook there, with a fresh cache.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${PY:-$ROOT/.venv/bin/python}"
TMP="$(mktemp -d)"
SERVER=""
cleanup() {
    if [ -n "$SERVER" ]; then kill "$SERVER" 2>/dev/null || true; wait "$SERVER" 2>/dev/null || true; fi
    rm -rf "$TMP"
}
trap cleanup EXIT

echo "wheel smoke: building the wheel"
if ! "$PY" -m build --wheel --outdir "$TMP/dist" "$ROOT" >"$TMP/build.log" 2>&1; then
    tail -40 "$TMP/build.log"; exit 1
fi
if grep -n "Deprecat" "$TMP/build.log"; then
    echo "wheel smoke: the build prints deprecation warnings (above)"; exit 1
fi
WHEEL="$(ls "$TMP"/dist/*.whl)"
echo "wheel smoke: installing $(basename "$WHEEL")[app,widgets] into a fresh venv"
"$PY" -m venv "$TMP/venv"
VPY="$TMP/venv/bin/python"
if ! "$VPY" -m pip install --quiet -c "$ROOT/constraints.txt" "$WHEEL[app,widgets]" \
        nbclient nbformat ipykernel >"$TMP/pip.log" 2>&1; then
    grep -v "^WARNING: Location" "$TMP/pip.log" | tail -40; exit 1
fi

cd "$TMP"  # nothing of the checkout is importable from here
export WORKBENCH_CACHE="$TMP/cache"
unset PYTHONPATH
"$VPY" - <<'PY'
import workbench, sys
from workbench.models.checkpoint import shipped
assert "site-packages" in workbench.__file__, workbench.__file__
assert "site-packages" in str(shipped("python")), shipped("python")
print("wheel smoke: imports", workbench.__file__)
PY
"$VPY" -m workbench --help >/dev/null
"$TMP/venv/bin/workbench" demo

PORT="${WB_SMOKE_PORT:-$("$VPY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
echo "wheel smoke: workbench serve --model parens on 127.0.0.1:$PORT"
"$TMP/venv/bin/workbench" serve --model parens --port "$PORT" >"$TMP/serve.log" 2>&1 &
SERVER=$!
"$VPY" - "$PORT" "$SERVER" <<'PY' || { echo "--- serve log"; tail -40 "$TMP/serve.log"; exit 1; }
import json, os, sys, time, urllib.request

port, pid = sys.argv[1], int(sys.argv[2])
base = f"http://127.0.0.1:{port}"
deadline = time.monotonic() + 600
while True:
    try:
        with urllib.request.urlopen(base + "/", timeout=10) as r:
            page = r.read().decode()
            assert r.status == 200 and "_dash-config" in page, page[:300]
        break
    except OSError:
        os.kill(pid, 0)  # still running?
        if time.monotonic() > deadline:
            raise SystemExit("wheel smoke: the server never answered")
        time.sleep(1)
with urllib.request.urlopen(base + "/_dash-layout", timeout=60) as r:
    layout = json.loads(r.read())
assert r.status == 200 and layout, "empty layout"
with urllib.request.urlopen(base + "/assets/workbench.css", timeout=60) as r:
    assert r.status == 200 and r.read(), "no CSS (package data missing?)"
print("wheel smoke: GET / , /_dash-layout and the CSS answered 200")
PY
kill "$SERVER"; wait "$SERVER" 2>/dev/null || true; SERVER=""

cp "$ROOT/demos/03_sunspots_over_time.ipynb" "$TMP/"
"$VPY" - "$TMP/03_sunspots_over_time.ipynb" <<'PY'
import sys

import nbclient
import nbformat

book = nbformat.read(sys.argv[1], as_version=4)
nbclient.NotebookClient(book, timeout=600, kernel_name="python3").execute()
print("wheel smoke: the sunspots notebook ran top to bottom")
PY
echo "wheel smoke: passed"
