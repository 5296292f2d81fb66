"""Print the bad-input table for the README: every case of tests/test_bad_input.py, run.

Usage: ``python demos/bad_input_table.py [--width 160]`` (about 15 s). Each case runs in a
temporary folder and is checked exactly as in the tests; the table shows the message the user
sees (CLI cases: what is printed on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=int, default=160, help="Cut messages to this length.")
    width = parser.parse_args().width
    sys.path.insert(0, str(TESTS))
    from test_bad_input import CASES, run_case

    print("| case | where | error message |")
    print("|---|---|---|")
    for case in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            message = run_case(case, Path(tmp)) or "(accepted: valid output)"
        message = message.replace("|", "\\|").replace("\n", " ")
        if len(message) > width:
            message = message[: width - 3] + "..."
        print(f"| {case.name} | {case.where} | {message} |")


if __name__ == "__main__":
    main()
