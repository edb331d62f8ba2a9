"""The Kubernetes manifests (``deploy/k8s``) build, validate and agree with the code.

Offline, as ``test_deployment_files.py`` checks compose: each kustomization is built with
``kubectl kustomize`` (or ``kustomize build``), every core object is validated with
kubernetes-validate's bundled Kubernetes schemas, the KEDA ``ScaledObject`` and the
``ServiceMonitor`` against their CRDs' OpenAPI schemas vendored in ``tests/data/crds`` (with
unknown fields refused, as ``kubectl apply``'s strict field validation does), and every
name the manifests use is checked against what the code registers and serves: each
``consume NAME`` is a registered service whose settings load from the pod's environment,
the probes and the scrape hit paths the metrics server answers on the port the settings
make it listen on, the lag query names the exported lag metric and the service's group, and
the grace period outlasts the configured drain.
"""

from __future__ import annotations

import base64
import functools
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from agent_events import App
from agent_events.cli.run import import_app
from agent_events.observability.http import MetricsServer
from agent_events.observability.metrics import ServiceMetrics
from agent_events.services import SERVICES, Service, build_service
from agent_events.settings import AgentEventsSettings, load_settings
from tests.unit.test_deployment_files import (
    DASHBOARD,
    HANDLERS,
    ROOT,
    _exported_metric_names,
    _metrics_in,
)

K8S = ROOT / "deploy" / "k8s"
APPS = ROOT / "deploy" / "apps"
APP_TARGETS = ("my_app:app",)
"""The Apps the example overlay runs (components/app), as their ``agent-events run`` target."""
KUSTOMIZATIONS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}
CRDS = ROOT / "tests" / "data" / "crds"
CRD_FILES = {
    ("keda.sh/v1alpha1", "ScaledObject"): CRDS / "keda.sh_scaledobjects.yaml",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): CRDS
    / "monitoring.coreos.com_servicemonitors.yaml",
}
KUBERNETES_VERSION = "1.31"
"""The oldest Kubernetes the manifests must apply to (KEDA 2.20 supports no older one)."""

KEDA_PROMETHEUS_METADATA = {
    "serverAddress",
    "query",
    "queryParameters",
    "threshold",
    "activationThreshold",
    "namespace",
    "customHeaders",
    "ignoreNullValues",
    "unsafeSsl",
    "awsRegion",
    "timeout",
    "identityOwner",
}
"""The Prometheus trigger's metadata names (KEDA v2.20.2, pkg/scalers/prometheus_scaler.go);
the CRD types metadata as a plain map of strings, so a misspelt key would pass it."""
KEDA_PROMETHEUS_REQUIRED = {"serverAddress", "query", "threshold"}


# -- building -----------------------------------------------------------------------------


def _kustomize_command() -> list[str]:
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        return [kubectl, "kustomize"]
    kustomize = shutil.which("kustomize")
    if kustomize is not None:
        return [kustomize, "build"]
    if os.environ.get("CI"):  # .ci/run installs one: missing there is a broken CI, not a skip
        pytest.fail("neither kubectl nor kustomize is installed; .ci/run should install one")
    pytest.skip("neither kubectl nor kustomize is installed")


@functools.cache
def _render(directory: Path) -> tuple[dict[str, Any], ...]:
    result = subprocess.run(
        [*_kustomize_command(), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return tuple(doc for doc in yaml.safe_load_all(result.stdout) if doc)


@pytest.fixture(params=sorted(KUSTOMIZATIONS))
def objects(request: pytest.FixtureRequest) -> tuple[dict[str, Any], ...]:
    """Every object one kustomization renders."""
    return _render(KUSTOMIZATIONS[request.param])


@pytest.fixture
def example() -> tuple[dict[str, Any], ...]:
    """The example overlay: the base plus the router component, so every service."""
    return _render(KUSTOMIZATIONS["example"])


def _of_kind(objects: tuple[dict[str, Any], ...], kind: str) -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def _consumer_deployments(objects: tuple[dict[str, Any], ...]) -> dict[str, dict[str, Any]]:
    """Deployments that run ``agent-events consume NAME`` or ``agent-events run MODULE:APP``,
    by service name (an App's name)."""
    found: dict[str, dict[str, Any]] = {}
    for deployment in _of_kind(objects, "Deployment").values():
        args = _container(deployment).get("args", [])
        if args[:1] == ["consume"]:
            found[args[1]] = deployment
        elif args[:1] == ["run"]:
            found[_app(args[1]).name] = deployment
    return found


def _app(target: str) -> App:
    """The App ``module:app`` names, imported as the pod does (PYTHONPATH=/app)."""
    sys.path.insert(0, str(APPS))
    try:
        return import_app(target)
    finally:
        sys.path.remove(str(APPS))


def _service(name: str, settings: AgentEventsSettings) -> Service:
    """The service a deployment runs: a built-in one, or the example's App."""
    if name in SERVICES:
        return build_service(name, settings)
    (target,) = [t for t in APP_TARGETS if _app(t).name == name]
    return _app(target).build_service(settings)


# -- schemas ------------------------------------------------------------------------------


def _refuse_unknown_fields(schema: Any) -> Any:
    """``schema`` with ``additionalProperties: false`` wherever the API server prunes.

    A CRD's structural schema leaves unknown fields to pruning (``kubectl apply`` refuses
    them with its default strict field validation); jsonschema would accept them.
    """
    if isinstance(schema, list):
        return [_refuse_unknown_fields(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _refuse_unknown_fields(value) for key, value in schema.items()}
    if (
        "properties" in schema
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        strict["additionalProperties"] = False
    return strict


@functools.cache
def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    (crd,) = [d for d in yaml.safe_load_all(CRD_FILES[api_version, kind].read_text()) if d]
    version = api_version.split("/")[1]
    (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
    schema = _refuse_unknown_fields(served["schema"]["openAPIV3Schema"])
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator: jsonschema.protocols.Validator = cls(schema)
    return validator


def test_every_core_object_validates_against_the_kubernetes_schema(
    objects: tuple[dict[str, Any], ...],
) -> None:
    core = [o for o in objects if (o["apiVersion"], o["kind"]) not in CRD_FILES]
    assert core
    for obj in core:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_scaled_objects_and_service_monitors_validate_against_their_crds(
    objects: tuple[dict[str, Any], ...],
) -> None:
    custom = [o for o in objects if (o["apiVersion"], o["kind"]) in CRD_FILES]
    assert {o["kind"] for o in custom} == {"ScaledObject", "ServiceMonitor"}
    for obj in custom:
        errors = list(_crd_validator(obj["apiVersion"], obj["kind"]).iter_errors(obj))
        assert not errors, f"{obj['kind']}/{obj['metadata']['name']}: {errors[0].message}"


def test_the_crd_check_refuses_a_misspelt_field() -> None:
    (scaled, *_) = _of_kind(_render(KUSTOMIZATIONS["base"]), "ScaledObject").values()
    broken = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    assert not _crd_validator("keda.sh/v1alpha1", "ScaledObject").is_valid(broken)


# -- the services -------------------------------------------------------------------------


def test_every_registered_service_is_deployed_with_a_service_and_a_scaled_object(
    example: tuple[dict[str, Any], ...],
) -> None:
    deployments = _consumer_deployments(example)
    assert set(deployments) == set(SERVICES) | {_app(t).name for t in APP_TARGETS}
    services = _of_kind(example, "Service")
    scaled = _of_kind(example, "ScaledObject")
    for name, deployment in deployments.items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert pod_labels["app.kubernetes.io/component"] == name
        selecting = [
            s for s in services.values() if s["spec"]["selector"].items() <= pod_labels.items()
        ]
        assert len(selecting) == 1, f"{name}: {len(selecting)} Services select its pods"
        targeting = [
            s
            for s in scaled.values()
            if s["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
        ]
        assert len(targeting) == 1, f"{name}: {len(targeting)} ScaledObjects scale it"
        assert "replicas" not in deployment["spec"], f"{name}: apply would undo KEDA's count"


def test_the_base_holds_every_service_but_the_router_which_is_a_component() -> None:
    assert set(_consumer_deployments(_render(KUSTOMIZATIONS["base"]))) == set(SERVICES) - {"router"}
    component = yaml.safe_load((K8S / "components" / "router" / "kustomization.yaml").read_text())
    assert component["kind"] == "Component"


def _pod_environment(
    deployment: dict[str, Any], objects: tuple[dict[str, Any], ...]
) -> dict[str, str]:
    """The variables the container gets: its ConfigMaps, then its own ``env`` entries."""
    configmaps = _of_kind(objects, "ConfigMap")
    secrets = _of_kind(objects, "Secret")
    container = _container(deployment)
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        env.update(configmaps[source["configMapRef"]["name"]]["data"])
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            secret = secrets[ref["name"]]
            plain = secret.get("stringData", {})
            env[var["name"]] = (
                plain.get(ref["key"]) or base64.b64decode(secret["data"][ref["key"]]).decode()
            )
    return env


def _settings_of(
    name: str, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AgentEventsSettings:
    """Load the settings as the pod would, and build its service (imports the router's module)."""
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("AGENT_EVENTS_")]:
            patch.delenv(key)
        for key, value in env.items():
            if key.startswith("AGENT_EVENTS_"):
                patch.setenv(key, value)
        settings = _service(name, load_settings(dotenv=None)).settings
        assert _service(name, settings).name == name
    return settings


@pytest.fixture
def pod_settings(
    example: tuple[dict[str, Any], ...], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, AgentEventsSettings]]:
    """The settings each deployed service loads from its pod's environment, by service."""
    sys.path.insert(0, str(HANDLERS))  # the router's module, mounted at PYTHONPATH in the pod
    try:
        yield {
            name: _settings_of(name, _pod_environment(deployment, example), monkeypatch)
            for name, deployment in _consumer_deployments(example).items()
        }
    finally:
        sys.path.remove(str(HANDLERS))


def _metrics_port(container: dict[str, Any]) -> int:
    (port,) = [p["containerPort"] for p in container["ports"] if p["name"] == "metrics"]
    return int(port)


def _probe_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p["name"] == port]
    return int(number)


def _served(path: str) -> bool:
    """Whether the metrics server has a route at ``path`` (200 for a healthy service)."""
    status, _, _ = MetricsServer(CollectorRegistry())._respond(f"GET {path} HTTP/1.1".encode())
    return status == "200 OK"


def test_every_service_listens_where_its_probes_and_port_point(
    example: tuple[dict[str, Any], ...], pod_settings: dict[str, AgentEventsSettings]
) -> None:
    for name, deployment in _consumer_deployments(example).items():
        settings = pod_settings[name]
        container = _container(deployment)
        assert settings.metrics_host == "0.0.0.0", f"{name}: the kubelet cannot reach 127.0.0.1"
        assert settings.metrics_port == _metrics_port(container), name
        probes = {
            kind: container[kind]["httpGet"]
            for kind in ("startupProbe", "livenessProbe", "readinessProbe")
        }
        assert probes["livenessProbe"]["path"] == "/livez", name
        assert probes["readinessProbe"]["path"] == "/readyz", name
        for kind, probe in probes.items():
            assert _served(probe["path"]), f"{name} {kind}: nothing serves {probe['path']}"
            assert _probe_port(container, probe["port"]) == settings.metrics_port, (name, kind)


def test_every_service_gets_more_time_to_stop_than_its_drain_takes(
    example: tuple[dict[str, Any], ...], pod_settings: dict[str, AgentEventsSettings]
) -> None:
    for name, deployment in _consumer_deployments(example).items():
        grace = deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds")
        assert grace is not None, f"{name}: Kubernetes' default 30 s kills the drain midway"
        assert grace >= pod_settings[name].consumer.drain_timeout_s + 10, name


# -- scaling on lag -----------------------------------------------------------------------


def _topic_partitions(objects: tuple[dict[str, Any], ...], topic: str) -> int:
    (job,) = _of_kind(objects, "Job").values()
    (container,) = job["spec"]["template"]["spec"]["containers"]
    script = " ".join([*container.get("command", []), *container.get("args", [])])
    match = re.search(rf"topics create {re.escape(topic)} --partitions (\d+)", script)
    assert match, f"the topics Job does not create {topic}"
    return int(match[1])


def _matchers(query: str, metric: str) -> dict[str, str]:
    match = re.search(rf"{metric}\{{([^}}]*)\}}", query)
    assert match, f"{query!r} does not select {metric}"
    return dict(re.findall(r'(\w+)="([^"]*)"', match[1]))


def test_scaled_objects_scale_each_group_on_the_lag_metric_the_services_export(
    example: tuple[dict[str, Any], ...], pod_settings: dict[str, AgentEventsSettings]
) -> None:
    lag = ServiceMetrics().consumer_lag
    exported = _exported_metric_names()
    scaled = {
        s["spec"]["scaleTargetRef"]["name"]: s for s in _of_kind(example, "ScaledObject").values()
    }
    for name, deployment in _consumer_deployments(example).items():
        settings = pod_settings[name]
        spec = scaled[deployment["metadata"]["name"]]["spec"]
        (trigger,) = spec["triggers"]
        assert trigger["type"] == "prometheus", name
        metadata = trigger["metadata"]
        assert KEDA_PROMETHEUS_REQUIRED <= set(metadata) <= KEDA_PROMETHEUS_METADATA, name
        assert float(metadata["threshold"]) > 0, name
        query = metadata["query"]
        assert _metrics_in(query) == {lag._name}, f"{name}: {query!r}"
        assert _metrics_in(query) <= exported, f"{name}: {query!r}"
        matchers = _matchers(query, lag._name)
        assert set(matchers) <= set(lag._labelnames), f"{name}: {query!r}"
        group = settings.consumer_config(_service(name, settings).default_group).group_id
        assert matchers.get("consumergroup") == group, f"{name}: {query!r}"
        # Only members export lag: with none left, nothing would measure it.
        assert spec.get("minReplicaCount", 0) >= 1, name
        partitions = _topic_partitions(example, settings.topic)
        assert spec["maxReplicaCount"] <= partitions, f"{name}: members past {partitions} idle"


# -- scraping and the dashboard -----------------------------------------------------------


def test_the_service_monitor_scrapes_every_service_on_its_metrics_port(
    example: tuple[dict[str, Any], ...], pod_settings: dict[str, AgentEventsSettings]
) -> None:
    (monitor,) = _of_kind(example, "ServiceMonitor").values()
    (endpoint,) = monitor["spec"]["endpoints"]
    assert _served(endpoint["path"])
    (relabel,) = endpoint["relabelings"]
    assert relabel["targetLabel"] == "service"  # the label the dashboard filters on
    (source,) = relabel["sourceLabels"]
    services = _of_kind(example, "Service")
    for name, deployment in _consumer_deployments(example).items():
        pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
        (service,) = [
            s for s in services.values() if s["spec"]["selector"].items() <= pod_labels.items()
        ]
        labels = service["metadata"]["labels"]
        assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        # Prometheus's discovery names a label __meta_kubernetes_service_label_<sanitized key>.
        discovered = {
            "__meta_kubernetes_service_label_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
            for key, value in labels.items()
        }
        assert discovered.get(source) == name, f"{name}: its series would not say service={name}"
        assert service["spec"].get("publishNotReadyAddresses") is True, name
        (port,) = [p for p in service["spec"]["ports"] if p["name"] == endpoint["port"]]
        target = _probe_port(_container(deployment), port["targetPort"])
        assert target == pod_settings[name].metrics_port, name


def test_the_dashboard_config_map_is_generated_from_the_compose_dashboard(
    objects: tuple[dict[str, Any], ...],
) -> None:
    (dashboard,) = [
        c
        for c in _of_kind(objects, "ConfigMap").values()
        if "grafana_dashboard" in c["metadata"]["labels"]
    ]
    assert dashboard["data"] == {DASHBOARD.name: DASHBOARD.read_text()}
    assert not list(K8S.rglob("*.json")), "a copy of the dashboard would drift"
