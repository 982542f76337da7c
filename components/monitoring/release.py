"""Patch/upgrade monitoring: which release (digest) the service's alerts name.

Every alert carries ``release``, the digest the service runs (the ``digest`` label of the app's
``app_build_info``, from the pod's ``IMAGE_REF``). While a release is younger than the verification
window (``verifyWindowSeconds``) the label names that release alone, even while the previous release's
pods still drain, so an alert in the minutes after a rollout names the deploy as the suspect. Two
recorded series carry it: :data:`RELEASE_IN_VERIFICATION` (digests that appeared within the window)
and :data:`RELEASE` (those, else every digest running). The label holds still when the window
closes, since the release is then the one running: Prometheus keys an alert by its labels, so a label
that came and went with the window would restart the alert's ``for`` and resolve it mid-incident.
"""

from __future__ import annotations

from typing import Any, Final

RELEASE_IN_VERIFICATION: Final = "service:release_in_verification:info"
RELEASE: Final = "service:release:info"
RELEASE_LABEL: Final = "release"


def release_label(selector: str) -> str:
    """The ``release`` label's template: the digests of :data:`RELEASE` for the service's ``selector``,
    comma-separated (empty, so absent, when the app exports no digest)."""
    series = f"{RELEASE}{{{selector}}}"
    each = f'{{{{ range $i, $r := query `{series}` | sortByLabel "digest" }}}}'
    return each + "{{ if $i }},{{ end }}{{ $r.Labels.digest }}{{ end }}"


def release_rules(service: str, selector: str, window_seconds: int) -> list[dict[str, Any]]:
    """The release in its verification window, and the release the alerts name."""
    build = f'app_build_info{{{selector},digest!=""}}'
    by = "max by (namespace, job, digest)"
    in_window = f"{RELEASE_IN_VERIFICATION}{{{selector}}}"
    extra = {"service": service}
    return [
        {
            "record": RELEASE_IN_VERIFICATION,
            "expr": f"{by} ({build})\nunless on (namespace, job, digest)\n{by} ({build} offset {window_seconds}s)",
            "labels": extra,
        },
        {
            "record": RELEASE,
            "expr": f"{in_window}\nor\n({by} ({build}) unless on (namespace, job) {in_window})",
            "labels": extra,
        },
    ]
