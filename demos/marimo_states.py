"""The States view in marimo: brush steps in the trajectory, read the selected cells back.

    marimo edit demos/marimo_states.py      # or: marimo run demos/marimo_states.py

`mo.ui.anywidget` wraps the workbench widget; its `.value` holds the synced traits, so the cell
reading `selected_cells` reruns whenever the brush changes. Needs `pip install marimo` beside
`rnn-workbench[widgets]`.
"""

import marimo

app = marimo.App()


@app.cell
def _():
    import marimo as mo

    import workbench

    return mo, workbench


@app.cell
def _(workbench):
    bundle = workbench.load("parens")
    text = "((a)(b(c)))(d)"
    ids, _ = bundle.encode([text])
    trace = workbench.record(bundle.model, ids)
    trace.tokens = [bundle.tokenize(text)]
    return (trace,)


@app.cell
def _(mo, trace, workbench):
    states = mo.ui.anywidget(workbench.show(trace, name="rnn.0.fwd.hidden", threshold=0.3))
    states  # noqa: B018  (a cell shows its last expression)
    return (states,)


@app.cell
def _(mo, states):
    selected = list(states.value["selected_cells"])
    mo.md(f"selected cells: {selected}")
    return (selected,)


if __name__ == "__main__":
    app.run()
