"""A platform of several services in one program: a ServiceStack per service listed, one cluster monitoring stack."""

import pulumi

from components.config.settings import image_ref_output, load_services
from components.kube import kubernetes_provider
from components.lifecycle import Stage
from components.monitoring.cluster import ClusterMonitoring, ClusterMonitoringArgs, LogCollector, LogCollectorArgs
from components.service import ServiceStack, ServiceStackArgs

# A service whose stage is sunset registers nothing, not even its ServiceStack: its sunset's `up` then
# leaves no trace of it in the state (docs/operations.md).
services = {name: s for name, s in load_services().items() if s.stage is not Stage.SUNSET}
# The cluster's monitoring belongs to the cluster, not to a service: registered once, from the service
# whose settings ask for it (monitoringInstallClusterStack), and shared by every service.
owners = [s for s in services.values() if s.monitoring.install_cluster_stack and s.parts.monitoring]
cluster = cluster_k8s = None
if owners:
    owner = owners[0]
    cluster_k8s = kubernetes_provider("cluster-monitoring-k8s", owner.kubernetes)
    assert owner.monitoring.alert_webhook_url is not None and owner.monitoring.grafana_admin_password is not None
    cluster = ClusterMonitoring(
        "cluster-monitoring",
        ClusterMonitoringArgs(
            team=owner.team,
            alert_webhook_url=owner.monitoring.alert_webhook_url,
            grafana_admin_password=owner.monitoring.grafana_admin_password,
            monitoring_namespace=owner.monitoring.namespace,
            kubernetes_provider=cluster_k8s,
        ),
    )

stacks = {
    name: ServiceStack(name, ServiceStackArgs(settings=s, cluster_monitoring=cluster)) for name, s in services.items()
}
if cluster is not None:
    LogCollector(
        "cluster-logs",
        LogCollectorArgs(
            cluster=cluster,
            namespaces=[stack.environment.namespace for stack in stacks.values() if stack.environment is not None],
            kubernetes_provider=cluster_k8s,
        ),
    )

for name, service in stacks.items():
    pulumi.export(f"{name}_parts", service.parts)
    pulumi.export(f"{name}_namespace", service.namespace)
    pulumi.export(image_ref_output(name), service.image_ref)  # what each service's promotion reads
    pulumi.export(f"{name}_urls", service.urls)
    pulumi.export(f"{name}_exposure_urn", service.exposure_urn)
