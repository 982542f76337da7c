"""Entry point the Pulumi CLI runs for ``--policy-pack policy``: serves the pack to the engine."""

from pulumi_policy import EnforcementLevel, PolicyPack
from service_lifecycle_policy.pack import PACK_NAME, policies

PolicyPack(
    name=PACK_NAME,
    enforcement_level=EnforcementLevel.MANDATORY,
    policies=policies(),
    description="Guard rails of service-lifecycle; see policy/service_lifecycle_policy/rules.py.",
)
