"""The Pulumi program: read settings, build the service's stack of components, export outputs."""

import pulumi

from components.service import ServiceStack, ServiceStackArgs
from components.settings import load_settings

settings = load_settings()
service = ServiceStack(settings.service_name, ServiceStackArgs(settings=settings))

pulumi.export("stage", settings.stage.value)
pulumi.export("parts", service.parts)
pulumi.export("namespace", service.namespace)
pulumi.export("image_ref", service.image_ref)
pulumi.export("urls", service.urls)
pulumi.export("exposure_urn", service.exposure_urn)
pulumi.export("access_client_id", service.access_client_id)
pulumi.export("access_client_secret", service.access_client_secret)
