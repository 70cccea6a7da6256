"""The pipeline as an operator runs it: ``entitystream run`` in a process of
its own (with the Prism runner it starts), to kill, restart and watch.

``PipelineProcess(args).start()`` runs ``.venv/bin/entitystream run ARGS`` in
a new session, output to a log file; ``kill()`` sends SIGKILL to the whole
session (the pipeline and its Prism runner, as a crash or the OOM killer
would); ``stop()`` sends SIGTERM (a clean cancel). ``metrics()`` scrapes its
/metrics endpoint. ``committed(bootstrap, group, topic)`` reads the group's
committed offsets; ``wait_until(predicate)`` polls; ``stop_process(p)``
ends a helper process a test started (SIGTERM, then SIGKILL).
``WorkerPool(log).start()`` runs a Beam worker pool
(``python -m apache_beam.runners.worker.worker_pool_main``) in a session of
its own for ``--environment_type=EXTERNAL``; ``kill()`` sends SIGKILL to it
and the SDK workers it started, ``stop()`` ends it cleanly.
"""
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

from kafka import KafkaConsumer, TopicPartition

from tests.scrape import free_port, scrape

ROOT = pathlib.Path(__file__).resolve().parents[2]
ENTITYSTREAM = pathlib.Path(sys.executable).with_name("entitystream")

__all__ = ["PipelineProcess", "WorkerPool", "committed", "stop_process", "wait_until"]


class _Session:
    """A process a test started in a session of its own (``proc``, ``log_path``)."""
    proc = None
    log_path = None

    def kill(self):
        """SIGKILL to the process and everything it started (its session)."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def log(self):
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class PipelineProcess(_Session):
    def __init__(self, args, log_path, metrics_port=None):
        self.metrics_port = metrics_port or free_port()
        self.args = [str(ENTITYSTREAM), "run", *map(str, args),
                     "--metrics-port", str(self.metrics_port), "--status-interval-seconds", "0"]
        self.log_path = pathlib.Path(log_path)
        self.proc = None

    def start(self):
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        return self

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout_s=60):
        """SIGTERM: the pipeline cancels its job and exits; SIGKILL if it hangs."""
        if not self.alive():
            return self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode
        finally:
            try:  # anything of its session left over (Prism)
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def metrics(self):
        """The /metrics samples, or {} while the endpoint is not up."""
        try:
            return scrape(self.metrics_port)
        except OSError:
            return {}

class WorkerPool(_Session):
    """A Beam worker pool on a free port; its workers run this virtualenv's
    ``python`` (the pool starts them with ``python`` from PATH, in its session)."""

    def __init__(self, log_path):
        self.port = free_port()
        self.log_path = pathlib.Path(log_path)
        self.proc = None

    def start(self, timeout_s=60):
        env = dict(os.environ, PATH=f"{pathlib.Path(sys.executable).parent}{os.pathsep}"
                                    f"{os.environ.get('PATH', '')}")
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                 f"--service_port={self.port}"], cwd=ROOT, env=env, stdout=log,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, (
                    f"worker pool did not start:\n{self.log()[-4000:]}")
                time.sleep(0.2)

    def beam_args(self):
        return ["--environment_type=EXTERNAL", f"--environment_config=localhost:{self.port}"]

    def stop(self, timeout_s=20):
        if self.proc is not None:
            stop_process(self.proc, timeout_s=timeout_s)
            self.kill()  # any worker it left behind



def committed(bootstrap, group, topic, partitions=(0,)):
    """``{partition: committed offset or None}`` of ``group`` on ``topic``."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close()


def wait_until(predicate, timeout_s, what, poll_s=0.5, proc=None):
    """Poll ``predicate()`` until true; fail with ``what`` (and the log) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        if proc is not None and not proc.alive():
            raise AssertionError(f"the pipeline exited ({proc.proc.returncode}) before {what}:\n"
                                 f"{proc.log()[-4000:]}")
        time.sleep(poll_s)
    log = proc.log()[-4000:] if proc is not None else ""
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}\n{log}")


def stop_process(process, timeout_s=10):
    """SIGTERM ``process`` (a ``subprocess.Popen``), SIGKILL it if it is still
    there after ``timeout_s``, and reap it."""
    process.terminate()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
