"""The explicit Kubernetes provider every Kubernetes resource of a stack uses.

One provider per stack, configured from settings (never the ambient default provider by
accident): a kubeconfig or context when settings name one, else the ambient kubeconfig
(``$KUBECONFIG`` or ``~/.kube/config`` and its current context).
"""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from components.config.settings import KubernetesSettings


def kubernetes_provider(
    name: str, settings: KubernetesSettings, opts: pulumi.ResourceOptions | None = None
) -> k8s.Provider:
    """A ``kubernetes.Provider`` named ``name`` for the cluster ``settings`` describe.

    Server-side apply: the API server computes diffs and owns conflict detection, so other
    controllers (the autoscaler owning ``spec.replicas``) share objects safely.
    ConfigMaps are updated in place instead of replaced: their objects have fixed names, and a
    replacement would delete the ConfigMap before pods referring to it are rolled (the
    Workload rolls its pods on a config change through a checksum annotation instead).
    """
    return k8s.Provider(
        name,
        kubeconfig=settings.kubeconfig,
        context=settings.context,
        enable_server_side_apply=True,
        enable_config_map_mutable=True,
        opts=opts,
    )
