"""Resident memory of a process tree, sampled from /proc in a background thread.

``TreeSampler(pid, probe=None, interval_s=0.5)`` reads ``VmRSS`` from
``/proc/<pid>/status``, and the CPU time used so far (user + system, from
``/proc/<pid>/stat``), of ``pid`` and every descendant (found through the
parent of every process in /proc) every ``interval_s``; each sample is
``Sample(t, rss_kb, roles, extra, cpu_s)`` where ``extra`` is what ``probe()``
returned then (e.g. the pipeline's progress from its /metrics), so memory can
be read against progress. psutil is not needed.

CPU seconds between two moments (``cpu_between``) depend much less than wall
time on how many other jobs share the cores: on a loaded machine they are the
steadier measure of what a run costs.

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
    cpu_s: Dict[int, float]    # pid -> user + system CPU seconds so far


_TICKS = os.sysconf("SC_CLK_TCK")


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


def _stat(pid):
    """The fields of /proc/<pid>/stat after the command name (state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            # "pid (comm) state ppid ...": comm may hold spaces or parentheses.
            return f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def _parent(pid):
    fields = _stat(pid)
    return int(fields[1]) if fields else None


def cpu_s(pid):
    """User + system CPU seconds ``pid`` has used, or None when it is gone."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / _TICKS if fields else None


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


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def _role(pid, root, root_role, root_cmdline):
    """The process's role; None for a child forked and not yet exec'd (it still shows
    its parent's pages and command line for a moment: not a process of its own yet)."""
    if pid == root:
        return root_role
    cmdline = _cmdline(pid)
    if cmdline is None or cmdline == root_cmdline:
        return None
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
        self._root_cmdline = _cmdline(pid)
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
        rss, cpu = {}, {}
        for pid in descendants(self.pid):
            if self._roles.get(pid) in (None, "other"):  # known once exec'd
                self._roles[pid] = _role(pid, self.pid, self._root_role, self._root_cmdline)
            kb, used = rss_kb(pid), cpu_s(pid)
            if kb and self._roles[pid] is not None:
                rss[pid], cpu[pid] = kb, used or 0.0
        extra = None
        if self._probe is not None:
            try:
                extra = self._probe()
            except Exception:  # noqa: BLE001 - a failed probe must not stop the sampling
                extra = None
        sample = Sample(time.time(), rss, {p: self._roles[p] for p in rss}, extra, cpu)
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

    def cpu_between(self, start, end, by_role=False):
        """CPU seconds the tree used from ``start`` to ``end`` (time.time()), from the samples
        nearest before each (a process that started later counts from zero); by_role:
        ``{role: seconds}``."""
        before_start = [s for s in self.samples if s.t <= start]
        before_end = [s for s in self.samples if s.t <= end] or self.samples[:1]
        first = before_start[-1].cpu_s if before_start else {}
        last, roles = {}, {}
        for s in before_end:  # a process's last value before the end, even if it exited
            last.update(s.cpu_s)
            roles.update(s.roles)
        used = {pid: value - first.get(pid, 0.0) for pid, value in last.items()}
        if not by_role:
            return sum(used.values())
        out = {}
        for pid, seconds in used.items():
            out[roles[pid]] = out.get(roles[pid], 0.0) + seconds
        return out

    def processes_by_role(self):
        """{role: number of distinct processes seen}."""
        seen = {}
        for s in self.samples:
            for pid, role in s.roles.items():
                seen.setdefault(role, set()).add(pid)
        return {role: len(pids) for role, pids in seen.items()}
