"""One service: read settings, build its ServiceStack, export what the sunset and smoke test read."""

import pulumi

from components.config.settings import load_settings
from components.service import ServiceStack, ServiceStackArgs

settings = load_settings()
service = ServiceStack(settings.service_name, ServiceStackArgs(settings=settings))

pulumi.export("stage", settings.stage.value)
pulumi.export("image_ref", service.image_ref)
pulumi.export("urls", service.urls)
pulumi.export("exposure_urn", service.exposure_urn)
