"""Small demo stores for the app tests, built once per pytest session and shared."""

from workbench.app import AppContext

#: Corpus tokens per demo store in the tests (sunspots and co2 are small whole series).
SMALL = {
    "python": 3000, "sentiment": 1500, "parens": 1500, "python-gru": 3000, "python-rnn": 3000
}  # fmt: skip


def small_context(tmp_path_factory) -> AppContext:
    """An AppContext over the shipped models with small stores in the session's temp dir."""
    cache = tmp_path_factory.getbasetemp() / "wb-app-cache"
    ctx = AppContext(corpus_tokens=SMALL, cache=cache)
    ctx.prepare(progress=False)
    return ctx
