"""Native code shared by the recorder and the store (internal).

:mod:`.ckernel`
    the C kernels compiled once per machine into ``$WORKBENCH_CACHE/kernels``: the CPU
    unroll's LSTM step and whole-sequence kernels, and the transposing float32 / float16
    copies the store writes chunks with (``put_rows``, ``put_many_h16``).
:mod:`.pages`
    large CPU buffers backed by transparent huge pages.

Both are switched off through :mod:`workbench.config` (``ckernel``, ``hugepages``); callers
then use PyTorch's and numpy's own operations, with the same results.
"""
