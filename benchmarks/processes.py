"""Resident memory of a process tree, sampled from /proc in a background thread.

``TreeSampler(pid, probe=None, interval_s=0.5)`` reads ``VmRSS`` from
``/proc/<pid>/status`` of ``pid`` and every descendant (found through the
``PPid`` of every process in /proc) every ``interval_s``; each sample is
``Sample(t, rss_by_pid, roles, extra)`` where ``extra`` is what ``probe()``
returned then (e.g. the pipeline's progress from its /metrics), so memory can
be read against progress. psutil is not needed.

Roles name what a process is in the pipeline: ``pipeline`` (the root, or
``root_role``),
``prism`` (the Prism runner binary), ``ner worker`` (a spawned
multiprocessing worker), ``mp helper`` (multiprocessing's resource tracker),
else ``other``.

    with TreeSampler(proc.pid) as sampler:
        ...
    sampler.peak_mb()           # max over samples of the tree's total RSS
    sampler.peak_by_role_mb()   # {'pipeline': ..., 'prism': ..., 'ner worker': ...}
"""
import os
import threading
import time
from typing import Dict, NamedTuple

__all__ = ["TreeSampler", "Sample", "rss_kb", "descendants"]


class Sample(NamedTuple):
    t: float                   # time.time()
    rss_kb: Dict[int, int]     # pid -> VmRSS in kB
    roles: Dict[int, str]      # pid -> role
    extra: object              # what the probe returned


def rss_kb(pid):
    """VmRSS of ``pid`` in kB, or None when it is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return None


def _parent(pid):
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # "pid (comm) state ppid ...": comm may hold spaces or parentheses.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        return None


def descendants(root):
    """``root`` and every live process below it."""
    children = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            parent = _parent(int(name))
            if parent is not None:
                children.setdefault(parent, []).append(int(name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def _role(pid, root, root_role):
    if pid == root:
        return root_role
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return "other"
    if "resource_tracker" in cmdline:
        return "mp helper"
    if "multiprocessing" in cmdline or "spawn_main" in cmdline:
        return "ner worker"
    if os.path.basename(cmdline.split(" ", 1)[0]) == "prism":
        return "prism"
    return "other"


class TreeSampler:
    def __init__(self, pid, probe=None, interval_s=0.5, root_role="pipeline"):
        self.pid = pid
        self._root_role = root_role
        self.samples = []
        self._probe = probe
        self._interval = interval_s
        self._roles = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="rss-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def sample(self):
        rss = {}
        for pid in descendants(self.pid):
            kb = rss_kb(pid)
            if kb:
                rss[pid] = kb
                if pid not in self._roles:
                    self._roles[pid] = _role(pid, self.pid, self._root_role)
        extra = None
        if self._probe is not None:
            try:
                extra = self._probe()
            except Exception:  # noqa: BLE001 - a failed probe must not stop the sampling
                extra = None
        sample = Sample(time.time(), rss, {p: self._roles[p] for p in rss}, extra)
        self.samples.append(sample)
        return sample

    def _loop(self):
        while not self._stop.is_set():
            started = time.monotonic()
            self.sample()
            self._stop.wait(max(0.0, self._interval - (time.monotonic() - started)))

    # --- summaries ---------------------------------------------------------

    @staticmethod
    def total_mb(sample, role=None):
        return sum(kb for pid, kb in sample.rss_kb.items()
                   if role is None or sample.roles[pid] == role) / 1024

    def peak_mb(self, role=None):
        return max((self.total_mb(s, role) for s in self.samples), default=0.0)

    def peak_by_role_mb(self):
        roles = sorted({r for s in self.samples for r in s.roles.values()})
        return {r: self.peak_mb(r) for r in roles}

    def processes_by_role(self):
        """{role: number of distinct processes seen}."""
        seen = {}
        for s in self.samples:
            for pid, role in s.roles.items():
                seen.setdefault(role, set()).add(pid)
        return {role: len(pids) for role, pids in seen.items()}
