"""The Pulumi program: read settings, build the service's stack of components, export outputs."""

import pulumi

from components.config.settings import load_settings
from components.kube import kubernetes_provider
from components.lifecycle import Stage
from components.monitoring.cluster import ClusterMonitoring, ClusterMonitoringArgs, LogCollector, LogCollectorArgs
from components.service import ServiceStack, ServiceStackArgs

settings = load_settings()
watch = settings.monitoring
# The cluster's monitoring stack, when this stack is the one that owns it (monitoringInstallClusterStack):
# registered here once, beside the service, never inside it.
cluster = cluster_k8s = None
if watch.install_cluster_stack and settings.parts.monitoring:
    cluster_k8s = kubernetes_provider("cluster-monitoring-k8s", settings.kubernetes)
    assert watch.alert_webhook_url is not None and watch.grafana_admin_password is not None  # load_settings checked
    cluster = ClusterMonitoring(
        "cluster-monitoring",
        ClusterMonitoringArgs(
            team=settings.team,
            alert_webhook_url=watch.alert_webhook_url,
            grafana_admin_password=watch.grafana_admin_password,
            monitoring_namespace=watch.namespace,
            kubernetes_provider=cluster_k8s,
        ),
    )
# At sunset nothing of the service is registered, not even its ServiceStack: after the sunset's `up`
# the stack's state holds the stack alone, which is what the sunset confirms.
service = (
    ServiceStack(settings.service_name, ServiceStackArgs(settings=settings, cluster_monitoring=cluster))
    if settings.stage is not Stage.SUNSET
    else None
)
if cluster is not None and service is not None and service.environment is not None:
    LogCollector(
        "cluster-logs",
        LogCollectorArgs(
            cluster=cluster,
            namespaces=[service.environment.namespace],
            kubernetes_provider=cluster_k8s,
        ),
    )

pulumi.export("stage", settings.stage.value)
pulumi.export("parts", service.parts if service else [])
pulumi.export("namespace", service.namespace if service else None)
pulumi.export("image_ref", service.image_ref if service else None)
pulumi.export("image_tag", service.image_tag if service else None)
pulumi.export("urls", service.urls if service else [])
pulumi.export("exposure_urn", service.exposure_urn if service else None)
pulumi.export("access_client_id", service.access_client_id if service else None)
pulumi.export("access_client_secret", service.access_client_secret if service else None)
