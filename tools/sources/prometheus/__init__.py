"""The Prometheus source: dcgm-exporter, node_exporter and alerting facts read through PromQL."""

from gpudoc.tools.sources.prometheus.client import PrometheusClient, QueryStats
from gpudoc.tools.sources.prometheus.source import PrometheusSource

__all__ = ["PrometheusClient", "PrometheusSource", "QueryStats"]
