"""ServiceStack: one service in one stage, wiring the parts the stage table asks for.

Data flows one way: settings → image → environment → workload → (monitoring, exposure).
Exposure and Monitoring take the Workload's outputs; nothing depends on them, so removing them
(sunset) touches nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import pulumi
import pulumi_kubernetes as k8s

from components.config.settings import Resources, Settings
from components.environment import Environment, EnvironmentArgs, namespace_quota
from components.exposure import Exposure, ExposureArgs
from components.image import ContainerImage, ContainerImageArgs
from components.kube import kubernetes_provider
from components.monitoring import Monitoring, MonitoringArgs
from components.monitoring.cluster import ClusterMonitoring
from components.promotion import promoted_image_ref
from components.workload import PullCredentials, Workload, WorkloadArgs

TYPE: Final = "service-lifecycle:index:ServiceStack"

ROLE_IMAGE: Final = "image"
ROLE_ENVIRONMENT: Final = "env"
ROLE_WORKLOAD: Final = "workload"
ROLE_MONITORING: Final = "monitoring"
ROLE_EXPOSURE: Final = "exposure"

CLOUDFLARED_RESOURCES: Final = Resources(
    cpu_request="50m", cpu_limit="500m", memory_request="64Mi", memory_limit="256Mi"
)
"""cloudflared's requests and limits: the Exposure runs with them and the namespace quota counts them."""


def child_name(service: str, role: str) -> str:
    """Name of a ServiceStack child: ``<ServiceStack name>-<role>``.

    Every child (and through them every grandchild, ``f"{name}-…"``) is named from the ServiceStack's
    resource name, never from ``settings.service_name``: one ServiceStack named differently from its
    service gets one family of names, not two.
    """
    return f"{service}-{role}"


def _pull_credentials(settings: Settings) -> PullCredentials | None:
    """The pods' registry login when the stack asks for a pull Secret (validated by the settings)."""
    registry = settings.registry
    if not registry.pull_secret:
        return None
    assert registry.username is not None and registry.pull_password is not None  # load_settings checked
    return PullCredentials(server=registry.server, username=registry.username, password=registry.pull_password)


def _max_replicas(settings: Settings) -> int:
    """The autoscaler's ceiling: twice the stage's replicas (the namespace quota is sized for it)."""
    return 2 * settings.replicas


@dataclass(frozen=True, kw_only=True)
class ServiceStackArgs:
    """Arguments of :class:`ServiceStack`."""

    settings: Settings
    """Validated settings (components.config.settings.load_settings). Required."""
    cluster_monitoring: ClusterMonitoring | None = None
    """The cluster's monitoring stack when the same program registers it: the service's monitors wait
    for its CRDs. Default None: the stack is already on the cluster (another program installed it)."""


# ---------------------------------------------------------------------------------------------
# One function per part the ServiceStack wires, in creation order.


def image_part(name: str, settings: Settings, *, opts: pulumi.ResourceOptions) -> ContainerImage:
    """The image this stage builds and pushes (``<name>-image``)."""
    assert settings.build is not None  # the stage builds: ServiceStack checked
    return ContainerImage(
        child_name(name, ROLE_IMAGE),
        ContainerImageArgs(
            repository=settings.registry.repository,
            context=settings.build.context,
            platform=settings.build.platform,
            version=settings.app_version,
            base_image=settings.build.base_image,
            source=settings.build.source_url,
            registry_username=settings.registry.username,
            registry_password=settings.registry.password,
        ),
        opts,
    )


def environment_part(name: str, settings: Settings, *, opts: pulumi.ResourceOptions) -> Environment:
    """The namespace with its guard rails (``<name>-env``), its quota sized for the stage's pods."""
    # Room for a rolling update (one surge pod each) of the app at its ceiling and of
    # cloudflared, each at its own size (cloudflared's limits can exceed a small app's).
    tunnel = [(settings.cloudflare.cloudflared_replicas + 1, CLOUDFLARED_RESOURCES)] if settings.parts.exposure else []
    return Environment(
        child_name(name, ROLE_ENVIRONMENT),
        EnvironmentArgs(
            namespace=settings.namespace,
            service_name=settings.service_name,
            team=settings.team,
            stage=settings.stage.value,
            quota=namespace_quota(pods=_max_replicas(settings) + 1, per_pod=settings.resources, more=tunnel),
            container_defaults=settings.resources,
            protect=settings.parts.protect_environment,
            pod_security_version=f"v{settings.kubernetes.version}",
            label_scheme=settings.labels,
        ),
        opts,
    )


def workload_part(
    name: str,
    settings: Settings,
    *,
    image_ref: pulumi.Output[str] | None,
    environment: Environment,
    opts: pulumi.ResourceOptions,
) -> Workload:
    """The service's pods, Service and friends (``<name>-workload``), running the built or promoted image."""
    if image_ref is None:
        raise pulumi.RunError(f"stage {settings.stage} runs a workload but neither builds nor promotes an image")
    return Workload(
        child_name(name, ROLE_WORKLOAD),
        WorkloadArgs(
            namespace=environment.namespace,
            service_name=settings.service_name,
            team=settings.team,
            stage=settings.stage.value,
            app_version=settings.app_version,
            image=image_ref,
            replicas=settings.replicas,
            max_replicas=_max_replicas(settings),
            container_port=settings.container_port,
            resources=settings.resources,
            serves_http=settings.serves_http,
            monitoring_namespace=settings.monitoring.namespace,
            kubernetes_version=settings.kubernetes.version,
            pull_credentials=_pull_credentials(settings),
            label_scheme=settings.labels,
        ),
        opts,
    )


def monitoring_part(
    name: str,
    settings: Settings,
    *,
    workload: Workload,
    cluster_monitoring: ClusterMonitoring | None,
    provider: k8s.Provider | None,
    opts: pulumi.ResourceOptions,
) -> Monitoring:
    """Scrape targets, alert rules and dashboard (``<name>-monitoring``), read from the Workload's outputs."""
    watch = settings.monitoring
    return Monitoring(
        child_name(name, ROLE_MONITORING),
        MonitoringArgs(
            service_name=settings.service_name,
            team=settings.team,
            stage=settings.stage.value,
            namespace=workload.namespace,
            app_selector=workload.selector,
            app_port_name=workload.port_name,
            monitor_tunnel=settings.parts.exposure,
            serves_requests=settings.serves_http,
            monitoring_namespace=watch.namespace,
            slo_availability=watch.slo_availability,
            latency_p95_seconds=watch.latency_p95_seconds,
            release_window_seconds=watch.verify.window_seconds,
            runbook_url=watch.runbook_url,
            after=[cluster_monitoring.ready] if cluster_monitoring is not None else [],
            kubernetes_provider=provider,
            instance_name=settings.namespace,
            label_scheme=settings.labels,
        ),
        opts,
    )


def exposure_part(
    name: str, settings: Settings, *, workload: Workload, provider: k8s.Provider | None, opts: pulumi.ResourceOptions
) -> Exposure:
    """Tunnel, DNS, Access and cloudflared (``<name>-exposure``) in front of the Workload's Service."""
    cloudflare = settings.cloudflare
    if workload.url is None:
        raise pulumi.RunError(f"service {settings.service_name} has hostnames but serves no HTTP (servesHttp false)")
    return Exposure(
        child_name(name, ROLE_EXPOSURE),
        ExposureArgs(
            service_name=settings.service_name,
            team=settings.team,
            stage=settings.stage.value,
            namespace=workload.namespace,
            origin_url=workload.url,
            app_port=workload.container_port,
            account_id=cloudflare.account_id,
            zone_id=cloudflare.zone_id,
            hostnames=cloudflare.hostnames,
            cloudflared_image=cloudflare.cloudflared_image,
            cloudflared_replicas=cloudflare.cloudflared_replicas,
            access_enabled=cloudflare.access_enabled,
            access_allow_emails=cloudflare.access_allow_emails,
            access_allow_email_domains=cloudflare.access_allow_email_domains,
            monitoring_namespace=settings.monitoring.namespace,
            cpu_request=CLOUDFLARED_RESOURCES.cpu_request,
            cpu_limit=CLOUDFLARED_RESOURCES.cpu_limit,
            memory_request=CLOUDFLARED_RESOURCES.memory_request,
            memory_limit=CLOUDFLARED_RESOURCES.memory_limit,
            api_token=cloudflare.api_token,
            kubernetes_provider=provider,
            instance_name=settings.namespace,
            label_scheme=settings.labels,
        ),
        opts,
    )


class ServiceStack(pulumi.ComponentResource):
    """One service in one lifecycle stage."""

    parts: list[str]
    """Names of the parts that exist in this stage, in creation order."""
    namespace: str | None
    """The service's Kubernetes namespace; None when the stage runs nothing."""
    image_ref: pulumi.Output[str] | None
    """Immutable ``repo@sha256:…`` deployed in this stage; None when nothing runs."""
    image_tag: str | None
    """Content tag (``ctx-<sha256>``) of the image built in this stage, which the app reports as its
    ``revision``; None in stages that do not build."""
    urls: list[str]
    """Public URLs of the service; empty when it is not exposed."""
    kubernetes_provider: k8s.Provider | None
    """The stack's Kubernetes provider (every Kubernetes resource uses it); None when nothing runs."""
    environment: Environment | None
    """The namespace and its guard rails; None when the stage runs nothing."""
    workload: Workload | None
    """The service's pods, Service and friends; Monitoring and Exposure take its outputs."""
    exposure: Exposure | None
    """Tunnel, DNS, Access and cloudflared: the only access points; None when not exposed."""
    exposure_urn: pulumi.Output[str] | None
    """URN of the Exposure, what the sunset destroys (``--target``); None when not exposed."""
    access_client_id: pulumi.Output[str] | None
    """Client ID of the Access service token for automation (smoke test); None without Access."""
    access_client_secret: pulumi.Output[str] | None
    """Client secret of that service token (a secret); None without Access."""

    def __init__(self, name: str, args: ServiceStackArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(TYPE, name, None, opts)
        settings = args.settings
        parts = settings.parts
        self.parts = []
        self.namespace = settings.namespace if parts.environment else None
        self.image_ref = self.image_tag = None
        self.urls = [f"https://{host}" for host in settings.cloudflare.hostnames] if parts.exposure else []
        child = pulumi.ResourceOptions(parent=self)

        # Image: built and pushed where the stage builds.
        if parts.builds_image and settings.build is not None:
            image = image_part(name, settings, opts=child)
            self.image_ref = image.image_ref
            self.image_tag = image.content_tag
            self.parts.append(ROLE_IMAGE)

        # Kubernetes: provider, promoted image, namespace with guard rails, the workload.
        self.kubernetes_provider = self.environment = self.workload = None
        if parts.promotes_image and settings.promotion is not None:
            self.image_ref = promoted_image_ref(
                name, repository=settings.registry.repository, promotion=settings.promotion, opts=child
            )
        if parts.environment or parts.workload:
            provider = kubernetes_provider(f"{name}-k8s", settings.kubernetes, child)
            self.kubernetes_provider = provider
            on_cluster = pulumi.ResourceOptions(parent=self, providers={"kubernetes": provider})
            self.environment = environment_part(name, settings, opts=on_cluster)
            self.parts.append(ROLE_ENVIRONMENT)
            if parts.workload:
                self.workload = workload_part(
                    name, settings, image_ref=self.image_ref, environment=self.environment, opts=on_cluster
                )
                self.parts.append(ROLE_WORKLOAD)

        # Monitoring and Exposure take the Workload's outputs; nothing depends on them.
        if parts.monitoring and self.workload is not None:
            monitoring_part(
                name,
                settings,
                workload=self.workload,
                cluster_monitoring=args.cluster_monitoring,
                provider=self.kubernetes_provider,
                opts=child,
            )
            self.parts.append(ROLE_MONITORING)

        self.exposure = None
        self.exposure_urn = self.access_client_id = self.access_client_secret = None
        if parts.exposure:
            if self.workload is None:
                raise pulumi.RunError(f"stage {settings.stage} exposes the service but runs no workload")
            self.exposure = exposure_part(
                name, settings, workload=self.workload, provider=self.kubernetes_provider, opts=child
            )
            self.exposure_urn = self.exposure.urn
            self.access_client_id = self.exposure.access_client_id
            self.access_client_secret = self.exposure.access_client_secret
            self.parts.append(ROLE_EXPOSURE)

        self.register_outputs(
            {
                "parts": self.parts,
                "namespace": self.namespace,
                "image_ref": self.image_ref,
                "image_tag": self.image_tag,
                "urls": self.urls,
                "exposure_urn": self.exposure_urn,
            }
        )
