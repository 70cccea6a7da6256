"""docker-compose.yml cannot run here (no Docker engine): check that it is
consistent with the repository instead. Every file it mounts or builds
from exists, every service it depends on is defined, and its ports agree
with the Prometheus and Grafana configuration it mounts."""
import re
from urllib.parse import urlparse

import pytest
import yaml

from pipeline.cli import COMMANDS
from tests.promql import ROOT

COMPOSE = ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def _bind_mounts(service):
    """``{container path: host path}`` of a service's ``./`` bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("."):
            mounts[target] = ROOT / source
    return mounts


def _flag(command, name):
    return command[command.index(name) + 1]


def _in_container(mounts, path):
    """The host file behind container ``path``, through the bind mounts."""
    for target, source in mounts.items():
        if path == target or path.startswith(target.rstrip("/") + "/"):
            return source / path[len(target):].lstrip("/")
    raise AssertionError(f"{path} is not under any bind mount: {sorted(mounts)}")


def test_the_services_the_issue_asks_for(compose):
    services = compose["services"]
    assert {"kafka", "prometheus", "grafana", "pipeline", "replay"} <= set(services)
    kafka_env = services["kafka"]["environment"]
    assert "controller" in kafka_env["KAFKA_PROCESS_ROLES"]  # KRaft, no ZooKeeper
    assert not any("zookeeper" in name for name in services)


def test_every_dependency_and_named_volume_is_defined(compose):
    services = compose["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", []):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), f"{name}: volume {source}"


def test_every_mounted_and_built_file_exists(compose):
    for name, service in compose["services"].items():
        for target, source in _bind_mounts(service).items():
            assert source.exists(), f"{name} mounts {source} (missing) at {target}"
    build = compose["services"]["replay"]["build"]
    dockerfile = ROOT / build["context"] / build["dockerfile"]
    assert dockerfile.is_file()
    for line in dockerfile.read_text().splitlines():
        m = re.match(r"COPY (?!--from)(.+)", line)
        if m:
            for source in m.group(1).split()[:-1]:
                assert (ROOT / build["context"] / source).exists(), f"Dockerfile copies {source}"


def test_pipeline_image_is_shared_and_pins_the_project_versions(compose):
    services = compose["services"]
    assert services["pipeline"]["image"] == services["replay"]["image"]
    dockerfile = (ROOT / "deploy" / "docker" / "Dockerfile").read_text()
    lock = (ROOT / "requirements.lock").read_text()
    beam = re.search(r"^apache-beam==(\S+)$", lock, re.M).group(1)
    assert f"cmd/prism@v{beam}" in dockerfile
    assert "python:3.11" in dockerfile and "Python 3.11" in lock


def test_commands_are_entitystream_subcommands_on_the_compose_broker(compose):
    services = compose["services"]
    advertised = services["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    inside = re.search(r"PLAINTEXT://([^,]+)", advertised).group(1)
    assert inside.split(":")[0] == "kafka"
    for name in ("replay", "pipeline"):
        command = services[name]["command"]
        assert command[0] in COMMANDS
        assert _flag(command, "--bootstrap-servers") == inside
        assert _flag(command, "--topic") == "articles"
    assert (ROOT / services["replay"]["command"][1]).is_dir()  # the seeds, copied into the image


def test_prometheus_scrapes_the_pipeline_port_and_loads_the_mounted_rules(compose):
    services = compose["services"]
    pipeline = services["pipeline"]["command"]
    port = _flag(pipeline, "--metrics-port")
    assert _flag(pipeline, "--metrics-host") == "0.0.0.0"
    assert f"{port}:{port}" in services["pipeline"]["ports"]
    prometheus = services["prometheus"]
    config_path = next(a.split("=", 1)[1] for a in prometheus["command"]
                       if a.startswith("--config.file="))
    config_file = _in_container(_bind_mounts(prometheus), config_path)
    config = yaml.safe_load(config_file.read_text())
    (job,) = config["scrape_configs"]
    assert job["static_configs"][0]["targets"] == [f"pipeline:{port}"]
    for rule_file in config["rule_files"]:
        assert (config_file.parent / rule_file).is_file()
    assert "9090:9090" in prometheus["ports"]


def test_grafana_reaches_prometheus_and_finds_the_dashboard(compose):
    grafana = compose["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = _in_container(mounts, "/etc/grafana/provisioning")
    source = yaml.safe_load((provisioning / "datasources" / "entitystream.yml").read_text())
    url = urlparse(source["datasources"][0]["url"])
    assert (url.hostname, url.port) == ("prometheus", 9090)
    provider = yaml.safe_load((provisioning / "dashboards" / "entitystream.yml").read_text())
    dashboards = _in_container(mounts, provider["providers"][0]["options"]["path"])
    assert (dashboards / "entitystream.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _in_container(mounts, home).is_file()
    assert "3000:3000" in grafana["ports"]
