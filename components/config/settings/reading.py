"""Reading values: the :class:`_Reader`, the patterns a value must match, and Kubernetes quantities.

A :class:`_Reader` reads every key, collecting each problem instead of stopping at the first; the
steps that use it, one per part of the settings: :mod:`components.config.settings.steps`. Kubernetes
quantities are parsed here too (:func:`cpu_millicores`, :func:`memory_bytes`, :func:`in_quantity_range`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from decimal import Context, Decimal
from typing import Any, Final

import pulumi

from components.config import schema
from components.config.problems import SettingProblem, shown_value
from components.config.settings.model import QUANTITY_MAX, ConfigSource, Resources, key

_HOSTNAME = re.compile(r"^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_INTEGER = re.compile(r"-?[0-9]{1,18}")  # int() refuses more than 4300 digits with a traceback
_DECIMAL = re.compile(r"[0-9]{1,30}(\.[0-9]{1,30})?")  # written out: no exponent, NaN or Infinity
_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$")
_REVISION = re.compile(r"^[0-9a-f]{7,40}$")
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)+[a-z]{2,63}$")
_REPO_PATH = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
_REGISTRY_HOST = r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*)(?::\d+)?"
_REPOSITORY = re.compile(rf"^{_REGISTRY_HOST}/{_REPO_PATH}$")
_PINNED_IMAGE = re.compile(rf"^(?:{_REGISTRY_HOST}/)?{_REPO_PATH}(?::[\w][\w.-]{{0,127}})?@sha256:[0-9a-f]{{64}}$")
_STACK_REF = re.compile(r"^(?:[A-Za-z0-9_.-]+/){0,2}[A-Za-z0-9_.-]+$")
# At most 30 digits each side: with _EXACT's precision every product and comparison below is exact.
_CPU = re.compile(r"^(?P<n>[0-9]{1,30}(?:\.[0-9]{1,30})?)(?P<unit>m?)$")
_MEMORY = re.compile(r"^(?P<n>[0-9]{1,30}(?:\.[0-9]{1,30})?)(?P<unit>Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_EXACT: Final = Context(prec=100)
_MEMORY_UNITS: Final = {
    "": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
    "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
}  # fmt: skip


def _whole_number(value: str, *, low: int, high: int) -> int | None:
    """``value`` as an integer from ``low`` to ``high``; None when it is anything else."""
    # Only ASCII digits: int() would also take "1_0", " 3" and other scripts' digits.
    if not _INTEGER.fullmatch(value):
        return None
    number = int(value)
    return number if low <= number <= high else None


def _number_between(value: str, *, low: float, high: float) -> float | None:
    """``value`` as a number strictly between ``low`` and ``high``; None when it is anything else."""
    # Checked as written, before any float: "1e-400" or 22 nines after the point would round onto a bound.
    if not _DECIMAL.fullmatch(value):
        return None
    number = Decimal(value)
    as_float = float(number)
    if not (Decimal(str(low)) < number < Decimal(str(high))) or not (low < as_float < high):
        return None
    return as_float


def _string_items(value: str) -> list[str] | None:
    """``value`` as a JSON list of strings (how the CLI hands a list setting to a program); None otherwise."""
    try:
        items: Any = json.loads(value)
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        return None
    return items


class _Reader:
    """Reads keys, collecting every problem instead of stopping at the first.

    A key the source does not set takes its default from :mod:`components.config.schema`; ``label``
    names a key in a problem line as the user wrote it (``<namespace>:<key>``).
    """

    def __init__(self, config: ConfigSource, label: Callable[[str], str] = key) -> None:
        self._config = config
        self._label = label
        self.problems: list[SettingProblem] = []

    def problem(self, name: str, value: object, expected: str) -> None:
        shown = "<not set>" if value is None else shown_value(name, value)
        self.problems.append(SettingProblem(self._label(name), shown, expected))

    def raw(self, name: str) -> str | None:
        # Pulumi.yaml gives optional settings an empty default: "" is exactly "not set" ([] is an empty list).
        value = self._config.get(name)
        if value is None:
            value = schema.default_text(name)
        return None if value == "" else value

    def string(
        self, name: str, *, required: bool, expected: str, check: Callable[[str], bool] | None = None
    ) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            if required:
                self.problem(name, None, expected)
            return None
        if check is not None and not check(value):
            self.problem(name, value, expected)
            return None
        return value

    def integer(self, name: str, *, low: int, high: int, expected: str) -> int | None:
        value = self.raw(name)
        number = None if value is None else _whole_number(value, low=low, high=high)
        if number is None:
            self.problem(name, value, expected)
        return number

    def decimal(self, name: str, *, low: float, high: float, expected: str) -> float | None:
        value = self.raw(name)
        number = None if value is None else _number_between(value, low=low, high=high)
        if number is None:
            self.problem(name, value, expected)
        return number

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            self.problem(name, None, "true or false")
            return None
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.problem(name, value, "true or false")
        return None

    def string_list(
        self, name: str, *, check: Callable[[str], bool], expected: str, allow_empty: bool = True
    ) -> tuple[str, ...] | None:
        value = self.raw(name)
        what = f"a list of {expected}"
        if value is None:
            if allow_empty:
                return ()
            self.problem(name, None, f"a non-empty list of {expected}")
            return None
        items = _string_items(value)
        if items is None:
            self.problem(name, value, what)
            return None
        bad = [item for item in items if not check(item)]
        if bad:
            self.problem(name, ", ".join(bad), what)
            return None
        if len(set(items)) != len(items):
            self.problem(name, value, f"{what} without duplicates")
            return None
        if not items and not allow_empty:
            self.problem(name, value, f"a non-empty list of {expected}")
            return None
        return tuple(items)

    def secret(self, name: str) -> pulumi.Output[str] | None:
        return self._config.get_secret(name)


def _matches(pattern: re.Pattern[str]) -> Callable[[str], bool]:
    # fullmatch: "$" alone also matches before a trailing newline (a YAML block scalar keeps one).
    return lambda value: pattern.fullmatch(value) is not None


def cpu_millicores(quantity: str) -> Decimal:
    """``500m`` → 500, ``1.5`` → 1500. Raises ValueError on anything else."""
    match = _CPU.fullmatch(quantity)
    if not match:
        raise ValueError(quantity)
    number = Decimal(match.group("n"))
    return number if match.group("unit") == "m" else _EXACT.multiply(number, 1000)


def memory_bytes(quantity: str) -> Decimal:
    """``256Mi`` → 268435456. Raises ValueError on anything else."""
    match = _MEMORY.fullmatch(quantity)
    if not match:
        raise ValueError(quantity)
    return _EXACT.multiply(Decimal(match.group("n")), _MEMORY_UNITS[match.group("unit") or ""])


def in_quantity_range(amount: Decimal, thousandths: Decimal) -> bool:
    """Whether the API server keeps a quantity as written: at most 2^63-1 and at most 3 decimal places.

    k8s.io/apimachinery ``pkg/api/resource/quantity.go`` (type Quantity): "no quantity may represent a
    number greater than 2^63-1 in magnitude, nor may it have more than 3 decimal places. Numbers larger
    or more precise will be capped or rounded up." ``amount`` is in the base unit (cores, bytes),
    ``thousandths`` the same amount in thousandths of it.
    """
    return amount <= QUANTITY_MAX and thousandths == thousandths.to_integral_value()


def _resources(r: _Reader) -> Resources | None:
    def quantity(name: str, parse: Callable[[str], Decimal], per_unit: int, what: str) -> tuple[str, Decimal] | None:
        value = r.raw(name)
        try:
            if value is None:
                raise ValueError
            amount = parse(value)
            if amount <= 0:
                raise ValueError
        except ValueError:
            r.problem(name, value, what)
            return None
        base = _EXACT.divide(amount, per_unit)
        if not in_quantity_range(base, _EXACT.multiply(base, 1000)):
            r.problem(name, value, f"{what}, at most 2^63-1 and in whole thousandths (the API caps or rounds others)")
            return None
        return value, amount

    cpu_what = "a positive Kubernetes CPU quantity such as 250m or 1"
    mem_what = "a positive Kubernetes memory quantity such as 128Mi or 1Gi"
    cpu_req = quantity("cpuRequest", cpu_millicores, 1000, cpu_what)
    cpu_lim = quantity("cpuLimit", cpu_millicores, 1000, cpu_what)
    mem_req = quantity("memoryRequest", memory_bytes, 1, mem_what)
    mem_lim = quantity("memoryLimit", memory_bytes, 1, mem_what)
    ordered = True
    if cpu_req and cpu_lim and cpu_req[1] > cpu_lim[1]:
        r.problem("cpuRequest", cpu_req[0], f"at most cpuLimit ({cpu_lim[0]})")
        ordered = False
    if mem_req and mem_lim and mem_req[1] > mem_lim[1]:
        r.problem("memoryRequest", mem_req[0], f"at most memoryLimit ({mem_lim[0]})")
        ordered = False
    if not (cpu_req and cpu_lim and mem_req and mem_lim and ordered):
        return None
    return Resources(cpu_request=cpu_req[0], cpu_limit=cpu_lim[0], memory_request=mem_req[0], memory_limit=mem_lim[0])


def _is_repository(value: str) -> bool:
    # A first part without "." or ":" (Docker Hub's "acme/hello") names no registry host to log in to.
    host = value.split("/", 1)[0]
    return _REPOSITORY.fullmatch(value) is not None and ("." in host or ":" in host or host == "localhost")


def _in_zone(zone: str) -> Callable[[str], bool]:
    return lambda host: _HOSTNAME.fullmatch(host) is not None and (host == zone or host.endswith("." + zone))


def _certificate_coverage(r: _Reader, zone: str | None, hostnames: tuple[str, ...] | None) -> tuple[str, ...]:
    """Hostnames deeper than one label below the zone need a certificate Universal SSL does not give.

    Universal SSL covers the zone apex and ``*.zone`` only (Cloudflare docs, SSL/TLS > Edge certificates >
    Universal SSL > Limitations); deeper names need an Advanced Certificate, declared here by listing them.
    """
    listed = hostnames or ()
    advanced = r.string_list(
        "advancedCertificateHostnames", check=lambda h: h in listed,
        expected="hostnames from the hostnames setting that an Advanced Certificate covers",
    )  # fmt: skip
    if zone and advanced is not None:
        deep = [h for h in listed if h.count(".") - zone.count(".") > 1 and h not in advanced]
        if deep:
            r.problem(
                "hostnames", ", ".join(deep),
                f"hostnames at most one label below {zone}: Universal SSL covers only {zone} and *.{zone}; "
                "list deeper ones in advancedCertificateHostnames once an Advanced Certificate covers them",
            )  # fmt: skip
    return advanced or ()
