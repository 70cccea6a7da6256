"""The metrics path for SDK workers outside the launcher (pipeline/metrics.py):
a worker's registry reported as Beam metrics, and served again by the
launcher under the pipeline's own names. The job service is replaced by its
answer (a dict shaped like ``PortableMetrics.query()``); values by hand."""
from types import SimpleNamespace as NS

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from pipeline.metrics import BeamJobMetrics, _key, job_registry


def counter(name, labels, thousandths, step="s1"):
    key = NS(metric=NS(namespace="entitystream", name=_key(name, labels)), step=step)
    return NS(key=key, committed=thousandths, attempted=None)


def gauge(name, labels, thousandths, stamp):
    key = NS(metric=NS(namespace="entitystream", name=_key(name, labels)), step="s1")
    return NS(key=key, committed=NS(value=thousandths, timestamp=stamp), attempted=None)


class Answered(BeamJobMetrics):
    def __init__(self, answer):
        super().__init__()
        self.attach(object())
        self._answer = answer

    def _query(self):
        return self._answer


def test_counters_summed_over_steps_gauges_latest_served_under_the_same_names():
    settled = "entitystream_messages_settled_total"
    answer = {"counters": [counter(settled, {"outcome": "aggregated"}, 3000, "s1"),
                           counter(settled, {"outcome": "aggregated"}, 2000, "s2"),
                           counter("entitystream_ner_batch_duration_seconds_sum", {}, 1500),
                           counter("entitystream_ner_batch_duration_seconds_count", {}, 2000)],
              "gauges": [gauge("entitystream_consumer_lag_records",
                               {"topic": "t", "partition": "0"}, 7000, 1),
                         gauge("entitystream_consumer_lag_records",
                               {"topic": "t", "partition": "0"}, 4000, 2)]}
    text = generate_latest(job_registry(Answered(answer))).decode()
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    # 3 + 2 messages from two steps; 1.5 s over 2 batches; the later lag (4).
    assert samples[(settled, (("outcome", "aggregated"),))] == 5
    assert samples[("entitystream_ner_batch_duration_seconds_sum", ())] == 1.5
    assert samples[("entitystream_ner_batch_duration_seconds_count", ())] == 2
    assert samples[("entitystream_consumer_lag_records",
                    (("partition", "0"), ("topic", "t")))] == 4
    # Typed as the launcher's own registry types the same counter.
    import pipeline.aggregate  # noqa: F401 - registers the counter in this process
    from prometheus_client import REGISTRY
    own = [line for line in generate_latest(REGISTRY).decode().splitlines()
           if line.startswith("# TYPE entitystream_messages_settled")]
    assert own and own[0] in text.splitlines()


def test_nothing_before_the_job_runs():
    assert BeamJobMetrics().values() == {}
