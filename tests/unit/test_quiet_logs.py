"""What is kept out of the error log as normal behaviour, and what still shows
(pipeline/quiet_logs.py, and the broker probe's own filter in deploy/broker.py)."""
import logging
import threading

import grpc
import pytest

from deploy import broker
from pipeline import quiet_logs


def record(name, msg, level=logging.ERROR, exc=None):
    exc_info = (type(exc), exc, None) if exc else None
    return logging.LogRecord(name, level, __file__, 1, msg, None, exc_info)


class LostStream(grpc.RpcError):
    """What a worker thread sees when Prism goes away (an RpcError, UNAVAILABLE)."""


# Prism's own line, as the job server logger gets it, and as Beam rewrites it.
RAW = '{"time":"2026-12-01T09:00:00Z","level":"ERROR","msg":"Bundle Failed.","error":"pipeline canceled"}'


@pytest.mark.parametrize("rec", [
    record("PrismJobServer", RAW, level=logging.INFO),
    record("PrismRunner", "Bundle Failed. (error='pipeline canceled')"),
])
def test_a_cancelled_pipelines_bundle_failures_are_expected(rec):
    assert quiet_logs.is_expected(rec, stopping_now=False)


def test_a_bundle_failing_for_another_reason_still_shows():
    rec = record("PrismRunner", "Bundle Failed. (error='panic: nil map')")
    assert not quiet_logs.is_expected(rec, stopping_now=True)


def test_lost_worker_streams_are_expected_only_while_stopping():
    rec = record("apache_beam.runners.worker.data_plane", "Failed to read inputs in the data plane.",
                 exc=LostStream("UNAVAILABLE"))
    assert not quiet_logs.is_expected(rec, stopping_now=False)
    assert quiet_logs.is_expected(rec, stopping_now=True)


def test_other_exceptions_while_stopping_still_show():
    rec = record("apache_beam.runners.worker.sdk_worker", "Error processing instruction",
                 exc=ValueError("a real bug"))
    assert not quiet_logs.is_expected(rec, stopping_now=True)


def test_installed_filter_drops_the_cancel_and_keeps_real_errors(caplog):
    quiet_logs.install()
    caplog.set_level(logging.WARNING)
    prism = logging.getLogger("PrismJobServer")
    prism.info(RAW)  # Prism's JSON line; Beam's own filter is not installed here
    prism.error("Bundle Failed. (error='disk full')")
    logging.getLogger("apache_beam.utils.subprocess_server").warning(
        "Really starting service at %s with cmd: %s", "localhost:1", ["prism"])
    assert [r.getMessage() for r in caplog.records] == ["Bundle Failed. (error='disk full')"]


def test_thread_hook_drops_lost_streams_only_while_stopping():
    # pytest swaps threading.excepthook around each test: the hook is called directly.
    passed_on = []
    hook = quiet_logs._excepthook(lambda args: passed_on.append(args.exc_value))
    args = lambda exc: threading.ExceptHookArgs((type(exc), exc, None, threading.current_thread()))
    before, after, bug = LostStream("before"), LostStream("after"), KeyError("a real bug")
    try:
        hook(args(before))
        quiet_logs.stopping()
        hook(args(after))
        hook(args(bug))
    finally:
        quiet_logs.install()  # not stopping any more
    assert passed_on == [before, bug]


def test_broker_probe_drops_only_its_own_threads_records(caplog):
    caplog.set_level(logging.WARNING)
    kafka_log = logging.getLogger("kafka.net.manager")
    with broker._quiet_probe("probe-x"):
        kafka_log.error("Bootstrap attempt failed: refused (this thread)")
        for name in ("kafka-io-probe-x", "kafka-io-someone-else"):
            t = threading.Thread(name=name, target=kafka_log.error, args=(f"from {name}",))
            t.start()
            t.join()
    kafka_log.error("after the probe")
    # Only this test's threads: a Kafka client another test left open may log
    # its own connection errors from its own threads meanwhile.
    ours = {threading.current_thread().name, "kafka-io-probe-x", "kafka-io-someone-else"}
    assert [r.getMessage() for r in caplog.records if r.threadName in ours] == [
        "from kafka-io-someone-else", "after the probe"]
