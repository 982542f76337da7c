"""service-lifecycle: Pulumi components that take one containerised service from build to sunset.

Import the components from their modules (``components.service.ServiceStack`` and the parts it
wires); settings come from :func:`components.config.settings.load_settings`. The package is imported by
tests and the offline plan too, so it imports no provider SDK at package level.
"""

from importlib import metadata as _metadata

try:
    __version__: str = _metadata.version("service-lifecycle-components")
except _metadata.PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0.3.0"
