"""Does a corpus hold the tokens its model reads? (characters for a char model, words else)."""

from __future__ import annotations

from workbench.store._layout import StoreError

SAMPLE = 100_000  # tokens looked at (from the first documents)


def check_corpus_tokens(tokenizer, docs) -> None:
    """Refuse a corpus tokenized otherwise than ``tokenizer`` reads text.

    A character model (``tokenizer.level == "char"``) reads one character per token; a word
    model (``"word"``, split by :func:`workbench.data.sentiment.tokenize`) never sees a
    whitespace token. A tokenizer without a ``level`` is not checked.

    Raises
    ------
    StoreError
        Naming the first document and token that do not fit, which tokens the model wants
        and how to load the corpus that way.
    """
    level = getattr(tokenizer, "level", None)
    if level not in ("char", "word"):
        return
    seen = 0
    for d in docs:
        for t in d.tokens[: SAMPLE - seen]:
            if level == "char" and len(t) != 1:
                raise StoreError(
                    f"this model reads characters, but document {d.doc_id!r} holds the token "
                    f"{t!r} (a word corpus); pass characters: from_text_folder(path), or "
                    "--corpus python / parens / a folder of .txt files"
                )
            if level == "word" and (not t or t.isspace() or any(c.isspace() for c in t)):
                raise StoreError(
                    f"this model reads words, but document {d.doc_id!r} holds the token {t!r} "
                    "(a character corpus); pass words: from_text_folder(path, level='word'), "
                    "from_csv, or --corpus sentiment / a folder of .txt files"
                )
        seen += min(len(d.tokens), SAMPLE - seen)
        if seen >= SAMPLE:
            return
