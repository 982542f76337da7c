"""Mutation testing (mutmut 3) of chosen modules against their unit tests; prints the score per module.

``python scripts/mutation.py [--only GROUP] [--module PATH] [--max-children N] [--sample N] [--seed N]
[--mutant NAME] [--survivors] [--timeout-constant S]``
(``make mutation``: every group)

Each group in :data:`GROUPS` is mutated in a scratch copy of the project (mutmut writes its
``mutants/`` tree and cache there, never in the work tree) with only the tests listed for it, so
the score says how well *those* tests pin its modules. Not part of ``make test``: it takes minutes
to hours (``--sample N`` tests a seeded random sample of N mutants per module and prints the
estimate with its 95% interval).
mutmut's configuration keys (``source_paths``, ``only_mutate``, ``also_copy``, ``pytest_add_cli_args``,
``pytest_add_cli_args_test_selection``) are those of mutmut 3's ``[tool.mutmut]`` table
(https://mutmut.readthedocs.io/, mutmut/configuration.py).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True, kw_only=True)
class Group:
    """Modules of one package mutated together against the same unit tests."""

    package: str
    """The package directory in the repository, e.g. ``components``."""
    modules: tuple[str, ...]
    """The mutated module files, relative to the package."""
    tests: tuple[str, ...]
    """The unit test files that should pin them (paths in the repository)."""
    deselect: str = ""
    """A pytest ``-k`` expression for tests of these files to leave out ("" for none)."""

    @property
    def scratch_package(self) -> str:
        """Where the package sits in the scratch copy: at its root.

        mutmut names a mutant after the module path of its file relative to the scratch root, so a
        package not at the repository's root (``policy/service_lifecycle_policy``, imported as
        ``service_lifecycle_policy``) is copied up to the root (policy/MUTATION.md).
        """
        return Path(self.package).name

    def dotted(self, module: str) -> str:
        """The module's import path, the prefix of its mutants' names."""
        return f"{self.scratch_package}.{module.removesuffix('.py').replace('/', '.')}"


GROUPS: dict[str, Group] = {
    "settings": Group(
        package="components",
        modules=(
            "config/settings/model.py",
            "config/settings/reading.py",
            "config/settings/steps.py",
            "config/settings/loading.py",
            "config/settings/sources.py",
            "config/problems.py",
        ),
        tests=(
            "tests/unit/test_settings.py",
            "tests/unit/test_config_problems.py",
            "tests/unit/test_settings_services.py",
            "tests/unit/test_library.py",
            # The build context, the ECR repository without boto3, nameSuffix, labelPrefix and managedBy.
            "tests/unit/test_installed_package.py",
            "tests/unit/test_sample_free_defaults.py",
        ),
        # test_library.py: its whole plans, subprocesses and import walks (6 to 40 s each) are left out, and
        # its checks of the repository's files (documents, changelog, requirements), which the scratch copy lacks;
        # test_installed_package.py: its two subprocesses (a plan, a fresh interpreter's imports).
        deselect="not plan_command_takes_a_project_dir and not never_imports_a_command and not sunset_help"
        " and not readme_s_library_test and not named_apart_from_its_service and not version_agrees"
        " and not every_dependency and not every_name_imported and not documents_refer and not readme_is_short"
        " and not bad_build_context_with_exit_2 and not no_library_module_and_no_plan_without_ecr",
    ),
    "stack_rules": Group(
        package="components",
        modules=("config/stack_rules.py",),
        tests=("tests/unit/test_stack_rules.py",),
        # Whole plans of minimal stacks (15 to 30 s each, run for every mutant they reach): left out, so the
        # score says how well the rules' own tests pin them.
        deselect="not only_the_required_keys_plans",
    ),
    "stackfile": Group(
        package="components",
        modules=("config/stackfile.py", "config/names.py", "config/stack_config.py"),
        tests=("tests/unit/test_stackfile.py",),
        # The command line in a subprocess (--out, a folder without stack files): the mutated modules' trampolines
        # cannot find mutmut's configuration from another directory, and the command's own tests pin it.
        deselect="not out_to_a_file and not out_below_a_file and not out_to_a_read_only and not folder_without_stack",
    ),
    "sunset_checks": Group(
        package="components",
        modules=("commands/sunset/checks.py",),
        tests=("tests/unit/test_sunset.py", "tests/unit/test_sunset_checks.py"),
    ),
    "registry": Group(
        package="components",
        modules=(
            "registry/decommissioning.py",
            "registry/oci.py",
            "registry/http.py",
            "registry/model.py",
            "registry/ghcr.py",
            "registry/ecr.py",
        ),
        tests=("tests/unit/test_registry.py", "tests/unit/test_registry_ghcr.py", "tests/unit/test_registry_http.py"),
    ),
    "policy": Group(
        package="policy/service_lifecycle_policy",
        modules=("rules.py", "pod_security.py", "values.py"),
        tests=("tests/unit/test_policy.py",),
        # Plans run as subprocesses (they would import the unmutated rules from policy/), the
        # CrossGuard gRPC server (pack.py, not mutated) and project files: slow, and blind to mutants.
        deselect="not offline_plan and not plan_command and not real_production and not cluster_monitoring"
        " and not grpc and not project_file",
    ),
}
"""Group name → what is mutated and against which tests. The one place to add a module."""

COPIED = ("components", "tests", "policy", "app", "docs", "examples", "__main__.py", "Pulumi.yaml",
          "Pulumi.staging.yaml", "Pulumi.production.yaml", "pyproject.toml")  # fmt: skip
TIMEOUT_CONSTANT = 8
"""Seconds added to a mutant's expected test time before mutmut's timeout (see :func:`scratch_project`)."""
KILLED = ("killed", "timeout", "segfault", "suspicious")
"""mutmut statuses that count as a kill (a timeout or crash is a test noticing the mutant)."""


def toml_list(items: list[str] | tuple[str, ...]) -> str:
    return "[" + ", ".join(json.dumps(item) for item in items) + "]"


def scratch_project(group: Group, timeout_constant: int = TIMEOUT_CONSTANT) -> Path:
    scratch = Path(tempfile.mkdtemp(prefix="mutation-"))
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, scratch / name, ignore=shutil.ignore_patterns("__pycache__", "mutants"))
        elif source.exists():
            shutil.copy(source, scratch / name)
    also_copy = [n for n in COPIED if n != "pyproject.toml"]
    if group.scratch_package != group.package:
        shutil.copytree(ROOT / group.package, scratch / group.scratch_package,
                        ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        import_mutated_package_first(scratch / "tests" / "conftest.py", group)
    pytest_args = ["-p", "no:cacheprovider", *(["-k", group.deselect] if group.deselect else [])]
    with (scratch / "pyproject.toml").open("a") as pyproject:
        pyproject.write(
            f"\n[tool.mutmut]\nsource_paths = {toml_list([group.scratch_package + '/'])}\n"
            f"only_mutate = {toml_list([f'{group.scratch_package}/{m}' for m in group.modules])}\n"
            f"pytest_add_cli_args_test_selection = {toml_list(group.tests)}\n"
            f"pytest_add_cli_args = {toml_list(pytest_args)}\n"
            # The tests read the stack files and the program from the project directory (mutants/ in a run).
            f"also_copy = {toml_list(also_copy)}\n"
            # mutmut stops a mutant's run after (its tests' time + timeout_constant) x timeout_multiplier x 2 s of
            # CPU, and after half that of wall time: with its default constant (1 s) a run starved by other
            # builds (nice 19 on 2 shared cores) passed that wall time and counted as a "timeout", i.e. killed.
            # --timeout-constant raises it further when the machine is shared with heavier work than that.
            f"timeout_constant = {timeout_constant}\n"
            # Fork each mutant's run from a server that has only collected the tests, not from mutmut's process that
            # ran them for its stats: a child forked after Pulumi's runtime ran (a test resolving an Output, a plan
            # with mocks) hangs in that test, and each such hang counted as a "timeout", i.e. as a kill.
            'process_isolation = "forkserver"\n'
        )
    return scratch


def import_mutated_package_first(conftest: Path, group: Group) -> None:
    """Import the package's first module from the scratch root before anything else can.

    ``components.commands.policy_offline.load_rules`` puts ``policy/`` on ``sys.path``; once the mutated
    copy (mutants/<package>) is imported, later imports of the same name get it from ``sys.modules``.
    """
    text = conftest.read_text()
    anchor = "from __future__ import annotations\n"
    if anchor not in text:
        raise SystemExit(f"{conftest}: expected {anchor.strip()!r} to insert the import after")
    first = group.dotted(group.modules[0])
    conftest.write_text(text.replace(anchor, f"{anchor}\nimport {first}  # noqa: F401\n", 1))


def statuses(scratch: Path, mutmut: str) -> dict[str, str]:
    listed = subprocess.run([mutmut, "results", "--all", "true"], cwd=scratch, capture_output=True, text=True,
                            check=False)  # fmt: skip
    found: dict[str, str] = {}
    for line in listed.stdout.splitlines():
        match = re.match(r"\s*(\S+__mutmut_\d+): (\w[\w ]*)", line)
        if match:
            found[match.group(1)] = match.group(2).strip()
    return found


def all_mutants(scratch: Path, group: Group, module: str) -> list[str]:
    """Every mutant name of ``module``, from the meta file mutmut writes when it generates them."""
    meta = scratch / "mutants" / group.scratch_package / f"{module}.meta"
    return sorted(json.loads(meta.read_text())["exit_code_by_key"])


def run_mutmut(scratch: Path, mutmut: str, max_children: int, names: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([mutmut, "run", "--max-children", str(max_children), *names], cwd=scratch,
                          capture_output=True, text=True, check=False)  # fmt: skip


def run_group(group: Group, scratch: Path, args: argparse.Namespace, mutmut: str) -> tuple[str, set[str] | None]:
    """Run mutmut on the group's scratch copy: every mutant, or a seeded sample per module.

    Returns mutmut's output (shown when no mutant was tested) and the sample's names (None: all).
    """
    if args.mutant:  # these mutants only (a sample's survivors, again after new tests)
        run = run_mutmut(scratch, mutmut, args.max_children, args.mutant)
        return run.stdout[-3000:] + run.stderr[-3000:], set(args.mutant)
    if not args.sample:
        run = run_mutmut(scratch, mutmut, args.max_children, [])
        return run.stdout[-3000:] + run.stderr[-3000:], None
    # First the first mutant of each function of one module: mutmut generates them all and
    # collects its stats (those mutants are not scored: only the sample is); then the sample.
    run = run_mutmut(scratch, mutmut, args.max_children, [f"{group.dotted(group.modules[0])}.*__mutmut_1"])
    chosen: list[str] = []
    for module in group.modules:
        # One draw per module, so that a module's sample is the same with or without --module.
        draw = random.Random(args.seed)  # noqa: S311 - a reproducible sample, not a secret
        names = all_mutants(scratch, group, module)
        chosen += sorted(draw.sample(names, min(args.sample, len(names))))
        print(f"{group.package}/{module}: a sample of {min(args.sample, len(names))} of {len(names)} mutants"
              f" (seed {args.seed})")  # fmt: skip
    if chosen:
        run = run_mutmut(scratch, mutmut, args.max_children, chosen)
    return run.stdout[-3000:] + run.stderr[-3000:], set(chosen)


def wilson_interval(killed: int, tested: int) -> tuple[float, float]:
    """95% Wilson score interval of a proportion in percent (stays in 0-100 for small or extreme samples)."""
    z, p = 1.96, killed / tested
    centre = (p + z * z / (2 * tested)) / (1 + z * z / tested)
    margin = z * math.sqrt(p * (1 - p) / tested + z * z / (4 * tested * tested)) / (1 + z * z / tested)
    return 100 * (centre - margin), 100 * (centre + margin)


def report(
    group: Group, module: str, found: dict[str, str], *, scratch: Path, args: argparse.Namespace, mutmut: str
) -> None:
    """Print one module's score (with its interval for a sample) and its survivors."""
    prefix = group.dotted(module) + "."
    mine = {name: status for name, status in found.items() if name.startswith(prefix)}
    counts = Counter(mine.values())
    killed = sum(counts[s] for s in KILLED)
    score = 100 * killed / len(mine) if mine else 0.0
    print(f"{group.package}/{module}: {score:.1f}% ({killed} of {len(mine)} mutants killed; {dict(counts)})")
    if args.sample and mine:
        low, high = wilson_interval(killed, len(mine))
        print(f"  95% interval of the whole module's score: {low:.1f}% to {high:.1f}%")
    for name, status in sorted(mine.items()):
        if status not in KILLED:
            print(f"  {status}: {name}")
            if args.survivors:
                diff = subprocess.run([mutmut, "show", name], cwd=scratch, capture_output=True, text=True,
                                      check=False)  # fmt: skip
                print("    " + diff.stdout.strip().replace("\n", "\n    "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", choices=list(GROUPS), help="run this group (repeatable);"
                        f" default: {', '.join(GROUPS)}")  # fmt: skip
    parser.add_argument("--module", action="append", default=[], help="mutate only this module of the group"
                        " (repeatable; as listed in GROUPS, e.g. registry/http.py)")  # fmt: skip
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--survivors", action="store_true", help="print each survivor's diff")
    parser.add_argument("--sample", type=int, default=0, help="test only N mutants per module, drawn at random")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--mutant", action="append", default=[], help="test only this mutant (repeatable; a name"
                        " as printed, e.g. a survivor of a sample, to see whether new tests kill it)")  # fmt: skip
    parser.add_argument("--timeout-constant", type=int, default=TIMEOUT_CONSTANT, help="seconds added to a mutant's"
                        f" expected test time before mutmut's timeout (default {TIMEOUT_CONSTANT}; more on a machine"
                        " whose other work starves the run: a timeout counts as a kill)")  # fmt: skip
    args = parser.parse_args()
    mutmut = str(Path(sys.executable).parent / "mutmut")
    for name in args.only or list(GROUPS):
        group = GROUPS[name]
        if args.module:
            chosen = tuple(m for m in group.modules if m in args.module)
            if not chosen:
                parser.error(f"--module: none of {args.module} is in group {name} ({', '.join(group.modules)})")
            group = replace(group, modules=chosen)
        scratch = scratch_project(group, args.timeout_constant)
        started = time.monotonic()
        output, sample = run_group(group, scratch, args, mutmut)
        found = {k: v for k, v in statuses(scratch, mutmut).items()
                 if v != "not checked" and (sample is None or k in sample)}  # fmt: skip
        print(f"{name}: {len(found)} mutants tested in {time.monotonic() - started:.0f} s")
        for module in group.modules:
            report(group, module, found, scratch=scratch, args=args, mutmut=mutmut)
        if not found:
            print(output)
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
