"""Benchmarks, outside the core packages: ``workbench bench record|store|app``.

:mod:`.recorder`
    recording against the plain forward (the README's recorder figures).
:mod:`.store`
    store build, search and chunk I/O (the README's store figures).
:mod:`.memory`
    connectivity over lag of the Python char LM (the README's memory figure).

The app's latency benchmark stays beside the app (:mod:`workbench.app._bench`). Nothing here
is imported by the library itself.
"""
