"""The deployment files agree with the code: compose, Dockerfile, Prometheus, Grafana.

No Docker engine runs here, so nothing is started; instead every name the files use is
checked against what the code registers: each ``consume NAME`` is a registered service
(``tests/integration/test_consume_cli.py`` starts every registered service against a real
broker), each ``AGENT_EVENTS_*`` variable is a valid setting, each metric the dashboard
queries is one a service exports, and the compose file validates with the compose CLI
where one is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent_events.observability.metrics import ServiceMetrics
from agent_events.services import SERVICES, build_service
from agent_events.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "agent-events.json"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
HANDLERS = ROOT / "deploy" / "handlers"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _consumer_services() -> dict[str, dict[str, Any]]:
    """Compose services that run ``agent-events consume NAME``, by compose name."""
    return {
        name: spec
        for name, spec in _compose()["services"].items()
        if list(spec.get("command", []))[:1] == ["consume"]
    }


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


def test_compose_file_validates_with_the_compose_cli() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither 'docker compose' nor 'docker-compose' is installed")
    for profiles in ([], ["--profile", "router", "--profile", "traffic"]):
        result = subprocess.run(
            [*cli, "-f", str(COMPOSE), *profiles, "config", "--quiet"],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_every_registered_service_is_deployed_and_every_deployed_one_is_registered() -> None:
    deployed = {spec["command"][1]: name for name, spec in _consumer_services().items()}
    assert set(deployed) == set(SERVICES)
    assert all(deployed[service] == service for service in deployed)  # compose name = service


def test_scalable_services_publish_no_host_port_and_have_no_container_name() -> None:
    for name, spec in _consumer_services().items():
        assert "ports" not in spec, f"{name} would clash on --scale"
        assert "container_name" not in spec, f"{name} could not be scaled"
        assert spec["healthcheck"]["test"][-1].count("/healthz") == 1


def test_service_environments_are_valid_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    sys.path.insert(0, str(HANDLERS))  # the router's example module, as PYTHONPATH in compose
    try:
        for name, spec in _consumer_services().items():
            env = {k: str(v) for k, v in spec["environment"].items() if k.startswith("AGENT_")}
            with monkeypatch.context() as patch:
                for key, value in env.items():
                    patch.setenv(key, value)
                settings = load_settings(dotenv=None)
                service = build_service(spec["command"][1], settings)
            assert settings.metrics_port == 9400, name
            assert settings.metrics_host == "0.0.0.0", name
            assert service.name == spec["command"][1]
    finally:
        sys.path.remove(str(HANDLERS))


def test_kafka_runs_kraft_and_services_wait_for_it_and_the_topics() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert all(port.startswith("127.0.0.1:") for port in kafka["ports"])
    topics = " ".join(services["topics"]["command"])
    for topic in ("agent.events ", "agent.events.dlq "):
        assert f"topics create {topic}" in topics
    for name, spec in _consumer_services().items():
        assert spec["depends_on"]["kafka"]["condition"] == "service_healthy", name
        assert spec["depends_on"]["topics"]["condition"] == "service_completed_successfully"


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    (job,) = config["scrape_configs"]
    (discovery,) = job["dns_sd_configs"]
    assert set(discovery["names"]) == set(_consumer_services())
    assert discovery["port"] == 9400
    assert job["relabel_configs"][0]["target_label"] == "service"
    mounted = _compose()["services"]["prometheus"]["volumes"]
    assert "./deploy/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounted


def test_dockerfile_installs_every_package_and_runs_the_cli() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    for pattern in packages["packages"]["find"]["include"]:
        assert f"COPY {pattern.rstrip('*')} " in dockerfile
    assert 'ENTRYPOINT ["agent-events"]' in dockerfile
    assert "EXPOSE 9400" in dockerfile
    assert "127.0.0.1:9400/healthz" in dockerfile


def _exported_metric_names() -> set[str]:
    """Every sample name a service process can export: host metrics plus each service's own."""
    registries = [ServiceMetrics().registry]
    sys.path.insert(0, str(HANDLERS))
    try:
        settings = load_settings({"router": {"handlers": ["my_handlers:handle"]}}, dotenv=None)
        for name in SERVICES:
            registry = CollectorRegistry()
            build_service(name, settings, registry)
            registries.append(registry)
    finally:
        sys.path.remove(str(HANDLERS))
    suffixes = {
        "counter": ["_total", "_created"],
        "histogram": ["_bucket", "_count", "_sum", "_created"],
        "summary": ["_count", "_sum", "_created", ""],
        "gauge": [""],
    }
    names: set[str] = set()
    for registry in registries:
        for family in registry.collect():
            names.update(family.name + s for s in suffixes.get(family.type, [""]))
    return names


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]
    for variable in dashboard["templating"]["list"]:
        queries.append((f"variable {variable['name']}", variable["definition"]))
    return queries


_IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def _metrics_in(expr: str) -> set[str]:
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    without_matchers = re.sub(r"\{[^}]*\}", "{}", without_strings)
    return {name for name in _IDENTIFIER.findall(without_matchers) if name.startswith("agent_")}


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = _exported_metric_names()
    queries = _dashboard_queries()
    assert queries
    for title, expr in queries:
        used = _metrics_in(expr)
        assert used, f"{title}: no agent-events metric in {expr!r}"
        assert used <= exported, f"{title}: {sorted(used - exported)} are not exported"


def test_the_dashboard_shows_throughput_lag_per_partition_dlq_rate_and_latency() -> None:
    exprs = " ".join(expr for _, expr in _dashboard_queries())
    assert "rate(agent_events_events_consumed_total" in exprs
    assert "by (consumergroup, topic, partition) (agent_events_consumer_lag" in exprs
    assert "rate(agent_events_dlq_events_total" in exprs
    assert "histogram_quantile(0.95, sum by (le, handler) (rate(agent_events_handler_" in exprs


def test_lag_uses_kafka_exporter_labels() -> None:
    metrics = ServiceMetrics()
    metrics.consumer_lag.labels(consumergroup="g", topic="t", partition="0").set(3)
    (sample,) = [s for f in metrics.registry.collect() for s in f.samples if "lag" in s.name]
    assert set(sample.labels) == {"consumergroup", "topic", "partition"}


def test_grafana_provisions_the_datasource_the_dashboard_uses() -> None:
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    (source,) = datasources["datasources"]
    dashboard = json.loads(DASHBOARD.read_text())
    uids = {p["datasource"]["uid"] for p in dashboard["panels"]}
    assert uids == {source["uid"]}
    assert source["url"] == "http://prometheus:9090"
    providers = yaml.safe_load((provisioning / "dashboards" / "agent-events.yml").read_text())
    path = providers["providers"][0]["options"]["path"]
    volumes = _compose()["services"]["grafana"]["volumes"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in volumes


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(s|m)", duration)
    assert match, duration
    return int(match[1]) * (60 if match[2] == "m" else 1)


def test_every_service_gets_more_time_to_stop_than_its_drain_takes() -> None:
    drain = load_settings().consumer.drain_timeout_s
    for name, spec in _consumer_services().items():
        grace = spec.get("stop_grace_period")
        assert grace is not None, f"{name}: Docker's default 10 s kills the drain midway"
        assert _seconds(grace) >= drain + 10, name
