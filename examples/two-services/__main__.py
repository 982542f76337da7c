"""Two services in one program: one ServiceStack per service that the stack lists."""

import pulumi

from components.service import ServiceStack, ServiceStackArgs
from components.settings import load_services

for name, settings in load_services().items():
    service = ServiceStack(name, ServiceStackArgs(settings=settings))
    pulumi.export(f"{name}_namespace", service.namespace)
    pulumi.export(f"{name}_image_ref", service.image_ref)
    pulumi.export(f"{name}_urls", service.urls)
    pulumi.export(f"{name}_exposure_urn", service.exposure_urn)
