"""The Grafana dashboard asks only for metrics a running service exports, aggregated across API nodes as each
metric needs, and the compose profile `monitoring` wires Prometheus and Grafana to the compose file's services.
No container runs here: these are the checks that can be made without a Docker engine."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.api.test_task_lifecycle import upload, wait_status
from tests.fakes import FakeEngine

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy/grafana/dashboards/whisper-service.json"
COMPOSE = ROOT / "docker-compose.yml"
# Grafana's interval variables stand where PromQL wants a duration; the parser needs a real one.
GRAFANA_INTERVAL = re.compile(r"\$\{?__(?:rate_interval|interval|range)\}?")
# A query variable's query: Grafana's label_values(selector, label) or query_result(expression).
VARIABLE_QUERY = re.compile(r"label_values\((.+),\s*\w+\)|query_result\((.+)\)")
# Measured in each API process, so summed over nodes; every other figure is the cluster's, repeated by each node.
PER_NODE = "whisper_http_request_duration_seconds"


def panel_exprs(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL of every panel target (panels inside collapsed rows included)."""
    panels = [*dashboard["panels"], *(inner for row in dashboard["panels"] for inner in row.get("panels", []))]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def variable_exprs(dashboard: dict[str, Any]) -> list[str]:
    """The PromQL inside the dashboard's query variables."""
    exprs = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = VARIABLE_QUERY.fullmatch(query)
            assert match, f"variable {variable['name']}: unsupported query {query!r}"
            exprs.append(match[1] or match[2])
    return exprs


def selectors(expr: str) -> list[tuple[str | None, str | None]]:
    """(metric name, innermost aggregation around it) of each vector selector; parsing fails on invalid PromQL."""
    found: list[tuple[str | None, str | None]] = []
    aggregations: list[str] = []

    def enter(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.AggregateExpr):
            aggregations.append(str(node.op))
        elif isinstance(node, promql_parser.VectorSelector):
            found.append((node.name, aggregations[-1] if aggregations else None))

    def leave(node: promql_parser.Expr) -> None:
        if isinstance(node, promql_parser.AggregateExpr):
            aggregations.pop()

    promql_parser.walk(promql_parser.parse(GRAFANA_INTERVAL.sub("5m", expr)), pre_visit=enter, post_visit=leave)
    return found


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the exported names do not depend on the database
async def test_the_dashboard_queries_only_metrics_the_service_exports(
    client: httpx.AsyncClient, run_worker: Callable[..., Awaitable[Any]]
) -> None:
    task = await upload(client)
    await run_worker(FakeEngine(segment_seconds=4.0))
    await wait_status(client, task["id"], "completed")
    response = await client.get("/metrics")  # the worker still runs: its gauges have samples
    families = {
        family.name: {sample.name for sample in family.samples}
        for family in text_string_to_metric_families(response.text)
    }
    exported = set().union(*families.values())
    assert {"whisper_worker_running_tasks", "whisper_task_realtime_factor_bucket"} <= exported

    dashboard = load_dashboard()
    queried = {name for expr in panel_exprs(dashboard) + variable_exprs(dashboard) for name, _ in selectors(expr)}
    assert queried - exported == set(), "the dashboard queries metrics that /metrics does not export"
    # Every figure has a panel (prometheus_client's `_created` series are series creation times, not figures).
    unshown = {name for name, samples in families.items() if not samples & queried and not name.endswith("_created")}
    assert unshown == set(), "metrics that /metrics exports and no panel shows: add a panel"


def test_each_metric_is_aggregated_across_api_nodes_as_its_source_needs() -> None:
    """Cluster figures repeat on every scraped node (max, never sum); the HTTP histogram is each node's own (sum)."""
    dashboard = load_dashboard()
    for expr in panel_exprs(dashboard):
        for name, aggregation in selectors(expr):
            wanted = "sum" if name and name.startswith(PER_NODE) else "max"
            assert aggregation == wanted, f"{name} in {expr!r} is aggregated by {aggregation}, not {wanted}"
    panels = [panel for panel in dashboard["panels"] if panel["type"] != "row"]
    assert all(panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"} for panel in panels)
    assert {"type": "datasource", "query": "prometheus"}.items() <= dashboard["templating"]["list"][0].items()


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> repository path of a compose service's bind mounts."""
    mounts = (volume.split(":")[:2] for volume in service.get("volumes", []))
    return {target: ROOT / source for source, target in mounts if source.startswith("./")}


def container_port(mapping: str) -> str:
    """The container side of a compose port mapping such as `127.0.0.1:${PORT:-9090}:9090`."""
    return mapping.rsplit(":", 1)[1]


def test_the_monitoring_profile_scrapes_the_api_nodes_and_provisions_the_dashboard() -> None:
    services: dict[str, Any] = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))["services"]
    api_nodes = {
        f"{name}:{container_port(mapping)}"
        for name, service in services.items()
        if service.get("command", [""])[0] == "serve"
        for mapping in service["ports"]
    }
    assert api_nodes == {"api:8000"}
    prometheus, grafana = services["prometheus"], services["grafana"]
    assert prometheus["profiles"] == grafana["profiles"] == ["monitoring"]

    config = yaml.safe_load(bind_mounts(prometheus)["/etc/prometheus/prometheus.yml"].read_text(encoding="utf-8"))
    [job] = config["scrape_configs"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert {target for group in job["static_configs"] for target in group["targets"]} == api_nodes

    provisioning = bind_mounts(grafana)["/etc/grafana/provisioning"]
    [datasource] = yaml.safe_load((provisioning / "datasources/prometheus.yml").read_text())["datasources"]
    assert datasource["url"] == f"http://prometheus:{container_port(prometheus['ports'][0])}"
    [provider] = yaml.safe_load((provisioning / "dashboards/whisper-service.yml").read_text())["providers"]
    dashboards = provider["options"]["path"]
    assert bind_mounts(grafana)[dashboards] == DASHBOARD.parent
    assert grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{dashboards}/{DASHBOARD.name}"
