"""Benchmarks of entitystream; ``benchmarks/run.py`` is the one entry point.

- ``run.py``: the performance issue's suites (P1, P1b, P2, P3, P4, smoke), one table;
- ``bare.py``: bare ``nlp.pipe`` in a process of its own (the reference row);
- ``endtoend.py``: ``entitystream run`` in a process of its own, timed and watched;
- ``latency.py``: P3, produce -> first pane latency (also a script of its own);
- ``memory.py``: P4, RSS through a long replay;
- ``processes.py``: RSS of a process tree from /proc;
- ``workloads.py``: Reuters-21578 as the pipeline reads it, cycled for long runs;
- ``extraction.py``: the extraction stage alone (a script of its own);
- ``pyspy_profile.py``: a pipeline run under py-spy, summarised by stage and function;
- ``snapshot.py``: ``--snapshot``, run from a copy of the (shared) working tree.

Module names must not shadow the standard library's (``profile``, ...): a
script run from here has this directory first on ``sys.path``.
"""
