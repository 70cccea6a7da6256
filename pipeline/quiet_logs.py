"""Keep normal behaviour out of the error log, so that a first run reads clean.

What a run on Prism logs that is not a failure:

- ``ERROR PrismRunner: Bundle Failed. (error='pipeline canceled')``: Prism says so
  for the bundles in flight when the pipeline is cancelled (the demo's end, Ctrl-C).
- ``WARNING apache_beam.utils.subprocess_server: Really starting service ...``
  (and ``destroying``): Beam's note that it launches Prism; shown as INFO here, so
  only when the root logger is set to INFO or lower.
- once the pipeline is being stopped (``stopping()``: Ctrl-C, a cancel), the SDK
  worker threads in this process lose their gRPC streams to Prism: their
  tracebacks (``Failed to read inputs in the data plane``, ``Exception in thread
  read_state``: ``StatusCode.UNAVAILABLE``, ``CANCELLED``) are dropped.

Everything else passes: a bundle that fails for any other reason, a gRPC error
while the pipeline runs, any other logger. ``install()`` is idempotent and is
called by ``pipeline.run.start``. (The broker's readiness probe keeps its own
connection errors, retried while the broker starts, out of the log:
``deploy/broker.py``.)
"""
import logging
import threading

__all__ = ["install", "stopping", "stop_on_sigint", "is_expected"]

_STOPPING = threading.Event()
_INSTALLED = threading.Lock()
_LAUNCH_NOTES = ("Really starting service", "Really destroying service")
#: Loggers whose records are checked (a logger's filters see only its own records).
_LOGGERS = ("PrismJobServer", "apache_beam.utils.subprocess_server",
            "apache_beam.runners.worker.data_plane", "apache_beam.runners.worker.sdk_worker",
            "apache_beam.runners.worker.bundle_processor")


def stopping():
    """The pipeline is being stopped on purpose: its workers' lost streams are expected."""
    _STOPPING.set()


def stop_on_sigint():
    """Call ``stopping()`` first on Ctrl-C, then the handler installed now. Beam's Prism
    runner installs one when the job starts that stops Prism before it calls the one it
    found; without this the workers' streams are lost before anyone says why.
    Only from the main thread (the only one that may set signal handlers)."""
    import signal
    if threading.current_thread() is not threading.main_thread():
        return
    current = signal.getsignal(signal.SIGINT)
    if getattr(current, "entitystream_quiet", False) or not callable(current):
        return

    def handler(signum, frame):
        stopping()
        current(signum, frame)
    handler.entitystream_quiet = True
    signal.signal(signal.SIGINT, handler)


def _lost_stream(exc) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc comes with Beam
        return False
    return isinstance(exc, grpc.RpcError)


def is_expected(record: logging.LogRecord, stopping_now: bool = None) -> bool:
    """True for a record of normal behaviour (see the module docstring)."""
    stopping_now = _STOPPING.is_set() if stopping_now is None else stopping_now
    text = record.getMessage()
    if record.name in ("PrismJobServer", "PrismRunner") and "pipeline canceled" in text:
        return True  # Prism's raw JSON line, or Beam's rewrite of it: the same words
    exc = record.exc_info[1] if record.exc_info else None
    return stopping_now and _lost_stream(exc)


class _ExpectedFilter(logging.Filter):
    def filter(self, record):
        if is_expected(record):
            return False
        if record.name == "apache_beam.utils.subprocess_server" and \
                record.getMessage().startswith(_LAUNCH_NOTES):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def _excepthook(previous):
    def hook(args):
        if _STOPPING.is_set() and _lost_stream(args.exc_value):
            return
        previous(args)
    hook.entitystream_quiet = True
    return hook


def install():
    """Add the filters and the thread exception hook (once per process); a pipeline
    starts, so it is not stopping."""
    _STOPPING.clear()
    with _INSTALLED:
        if getattr(threading.excepthook, "entitystream_quiet", False):
            return
        expected = _ExpectedFilter()
        for name in _LOGGERS:
            logging.getLogger(name).addFilter(expected)
        threading.excepthook = _excepthook(threading.excepthook)
