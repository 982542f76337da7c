"""The sunset's preconditions (components/commands/sunset/checks.py) one by one, without a sunset run.

test_sunset.py drives them through the command; these pin each check's answer and its whole message, the
order in which stack files are looked at, and what a stack of several services deploys from.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from components.commands.stage_file import read_stage, write_stage
from components.commands.sunset import checks
from components.config.stack_config import StackConfig

REPO = "ghcr.io/example-org/hello"
OTHER = "ghcr.io/example-org/other"

# -- what a stack deploys from -------------------------------------------------------------------------


def _config(values: dict[str, str], project: str = "shop") -> StackConfig:
    return StackConfig(stack="staging", values=values, project=project)


def test_a_stack_file_that_cannot_be_read_deploys_from_nothing_known() -> None:
    assert checks._deploys_from(None, REPO) is None


def test_the_projects_own_repository_counts_whatever_the_stage() -> None:
    """The project's own namespace is never skipped: whether its stage is sunset is sharing_stacks' question."""
    for stage in ("staging", "sunset"):
        assert checks._deploys_from(_config({"shop:imageRepository": REPO, "shop:stage": stage}), REPO) is True
    assert checks._deploys_from(_config({"shop:imageRepository": OTHER, "shop:stage": "staging"}), REPO) is False
    assert checks._deploys_from(_config({"shop:stage": "staging"}), REPO) is False


def test_a_listed_service_deploys_from_its_own_repository_else_the_projects() -> None:
    own = {"shop:services": '["web", "api"]', "shop:imageRepository": OTHER, "shop:stage": "staging"}
    assert checks._deploys_from(_config({**own, "api:imageRepository": REPO}), REPO) is True
    assert checks._deploys_from(_config({**own, "api:imageRepository": "ghcr.io/example-org/third"}), REPO) is False
    # No repository of its own: the project's, which is what it deploys.
    assert checks._deploys_from(_config({**own, "shop:imageRepository": REPO}), REPO) is True


def test_a_sunset_service_deploys_nothing_and_the_next_one_is_still_looked_at() -> None:
    values = {
        "shop:services": '["web", "api"]',
        "shop:imageRepository": OTHER,
        "shop:stage": "staging",
        "web:imageRepository": REPO,
        "web:stage": "sunset",
    }
    assert checks._deploys_from(_config(values), REPO) is False
    assert checks._deploys_from(_config({**values, "api:imageRepository": REPO}), REPO) is True
    # A service without a stage of its own has the project's: sunset, so it deploys nothing either.
    shared = {**values, "shop:stage": "sunset", "web:stage": "", "api:imageRepository": REPO}
    assert checks._deploys_from(_config(shared), REPO) is False
    assert checks._deploys_from(_config({**shared, "api:stage": "production"}), REPO) is True


@pytest.mark.parametrize("services", ["5", '"web"', '{"web": 1}', '[5, "api"]'], ids=str)
def test_services_that_are_not_a_list_of_names_add_no_namespace(services: str) -> None:
    values = {"shop:services": services, "shop:imageRepository": OTHER, "shop:stage": "staging"}
    expected = services == '[5, "api"]'  # the one name listed, api, deploys from REPO
    assert checks._deploys_from(_config({**values, "api:imageRepository": REPO, "web:imageRepository": REPO}),
                                REPO) is expected  # fmt: skip


def test_unreadable_services_or_repository_is_not_known() -> None:
    assert checks._deploys_from(_config({"shop:services": "[web", "shop:imageRepository": REPO}), REPO) is None
    assert checks._deploys_from(_config({"shop:imageRepository": f"{REPO}:1.0"}), REPO) is None


# -- the other stack files ------------------------------------------------------------------------------


@pytest.fixture
def project(tmp_path: Path, project_dir: Path) -> Path:
    """The repository's project with both committed stacks; production at stage sunset, on the branch too."""
    for name in ("Pulumi.yaml", "Pulumi.production.yaml", "Pulumi.staging.yaml", "__main__.py"):
        shutil.copy(project_dir / name, tmp_path / name)
    write_stage(tmp_path / "Pulumi.production.yaml", "sunset")
    return tmp_path


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_an_unreadable_stack_file_first_in_order_does_not_hide_the_next(project: Path) -> None:
    """``Pulumi.aaa.yaml`` comes before ``Pulumi.staging.yaml``: both are reported, in that order."""
    (project / "Pulumi.aaa.yaml").write_text("config: [not, a, mapping\n")
    assert checks.sharing_stacks(project, "production", REPO) == [
        "aaa (unreadable stack file)",
        "staging (stage staging)",
    ]
    write_stage(project / "Pulumi.production.yaml", "production")
    assert checks.promoters(project, "example-org/service-lifecycle/staging") == ["production"]


def test_a_sunset_stack_or_another_repository_does_not_share(project: Path) -> None:
    staging = project / "Pulumi.staging.yaml"
    assert checks.sharing_stacks(project, "production", "GHCR.io/Example-Org/hello/") == ["staging (stage staging)"]
    assert checks.sharing_stacks(project, "production", OTHER) == []
    write_stage(staging, "sunset")
    assert checks.sharing_stacks(project, "production", REPO) == []
    # The stack being sunset is never its own sharer, also when named in full.
    assert checks.sharing_stacks(project, "example-org/service-lifecycle/staging", REPO) == []


def test_a_stack_whose_repository_cannot_be_read_counts_as_sharing(project: Path) -> None:
    """The stack file itself reads (a tag is refused only by the typed settings): the images stay all the same."""
    _edit(project / "Pulumi.staging.yaml", f"imageRepository: {REPO}\n", f"imageRepository: {REPO}:1.0\n")
    assert checks.sharing_stacks(project, "production", REPO) == ["staging (unreadable stack file)"]


def test_only_a_live_stack_promoting_from_this_one_without_a_pinned_digest_waits(project: Path) -> None:
    production = project / "Pulumi.production.yaml"
    write_stage(production, "production")
    assert checks.promoters(project, "staging") == ["production"]
    assert checks.promoters(project, "production") == []  # staging promotes from nothing
    _edit(production, "promoteFromStack: example-org/service-lifecycle/staging", "promoteFromStack: preview")
    assert checks.promoters(project, "staging") == []
    assert checks.promoters(project, "example-org/service-lifecycle/preview") == ["production"]


# -- the stage, here and on the default branch ------------------------------------------------------------


def _single(tmp_path: Path, text: str = "config:\n  shop:stage: sunset\n") -> Path:
    (tmp_path / "Pulumi.yaml").write_text("name: shop\nruntime: python\n")
    path = tmp_path / "Pulumi.production.yaml"
    path.write_text(text)
    return path


class Branch:
    """The default branch's answer, and what it was asked."""

    def __init__(self, stage: str | None) -> None:
        self.stage, self.asked = stage, list[tuple[object, ...]]()

    def __call__(self, *args: object) -> tuple[str | None, str]:
        self.asked.append(args)
        return self.stage, "origin/main"


HOW = (
    "set it with `python -m components sunset --stack {stack}{which} --set-stage` (or the sunset workflow, "
    "which commits it first), commit Pulumi.production.yaml and merge it to the default branch, then run sunset "
    "again"
)


def test_a_stage_not_sunset_in_the_file_is_refused_with_how_to_set_it(tmp_path: Path) -> None:
    path = _single(tmp_path, "config:\n  shop:stage: production\n")
    branch = Branch("sunset")
    problem = checks.stage_problem(tmp_path, "production", branch, dry_run=False)
    how = HOW.format(stack="production", which="")
    assert problem == f"Pulumi.production.yaml says stage production, not sunset: {how}. Nothing was changed."
    assert branch.asked == [] and read_stage(path) == "production"
    assert checks.stage_problem(tmp_path, "production", branch, dry_run=True) is None


@pytest.mark.parametrize(("on_branch", "said"), [("production", "says stage production"), (None, "could not be read")])
def test_a_stage_not_sunset_on_the_default_branch_is_refused(tmp_path: Path, on_branch: str | None, said: str) -> None:
    path = _single(tmp_path)
    branch = Branch(on_branch)
    problem = checks.stage_problem(tmp_path, "example-org/shop/production", branch, dry_run=False)
    assert problem == (
        f"Pulumi.production.yaml on origin/main {said}: until it says sunset, a deploy brings the stack back; "
        f"{HOW.format(stack='example-org/shop/production', which='')}."
    )
    assert branch.asked == [(tmp_path, path)]
    assert checks.stage_problem(tmp_path, "production", Branch("sunset"), dry_run=False) is None


def test_a_service_s_stage_is_its_own_else_the_projects(tmp_path: Path) -> None:
    path = _single(tmp_path, "config:\n  shop:services: [web, api]\n  shop:stage: production\n  web:stage: sunset\n")
    branch = Branch("sunset")
    assert checks.stage_problem(tmp_path, "production", branch, dry_run=False, service="web") is None
    assert branch.asked == [(tmp_path, path, "web")]
    problem = checks.stage_problem(tmp_path, "production", branch, dry_run=False, service="api")
    assert problem == (
        f"Pulumi.production.yaml says service api's stage production, not sunset: "
        f"{HOW.format(stack='production', which=' --service api')}. Nothing was changed."
    )
    problem = checks.stage_problem(tmp_path, "production", Branch("staging"), dry_run=False, service="web")
    assert problem == (
        "Pulumi.production.yaml on origin/main says stage staging: until it says sunset, a deploy brings the stack "
        f"back; {HOW.format(stack='production', which=' --service web')}."
    )


def test_a_service_s_own_stage_that_is_no_stage_name_is_refused_also_in_a_dry_run(tmp_path: Path) -> None:
    _single(tmp_path, "config:\n  shop:services: [web, api]\n  shop:stage: sunset\n  web:stage: [sunset]\n")
    problem = checks.stage_problem(tmp_path, "production", Branch("sunset"), dry_run=True, service="web")
    assert problem == "Pulumi.production.yaml: web:stage is ['sunset'], not a stage name"
    assert checks.stage_problem(tmp_path, "production", Branch("sunset"), dry_run=True, service="api") is None


def test_an_ambiguous_stage_key_is_refused_also_in_a_dry_run(tmp_path: Path) -> None:
    _single(tmp_path, "config:\n  shop:stage: sunset\n  stage: sunset\n")
    problem = checks.stage_problem(tmp_path, "production", Branch("sunset"), dry_run=True)
    assert problem is not None and problem.startswith(
        "Pulumi.production.yaml: expected exactly one 'shop:stage' key directly under config, found 2"
    )


# -- all of them, in order ---------------------------------------------------------------------------------


def test_the_promoters_message_names_every_key_and_stack(project: Path, tmp_path: Path) -> None:
    write_stage(project / "Pulumi.production.yaml", "production")
    write_stage(project / "Pulumi.staging.yaml", "sunset")
    problem = checks.precondition_problem(project, "staging", REPO, tmp_path / "r.json", Branch("sunset"),
                                          dry_run=False)  # fmt: skip
    assert problem == (
        "live stack(s) production promote from staging (service-lifecycle:promoteFromStack) without "
        "service-lifecycle:pinnedDigest: their StackReference would lose image_ref and their next deploy would "
        "break. Pin the digest they run (service-lifecycle:pinnedDigest) or sunset production first. "
        "Nothing was changed."
    )


def test_every_waiting_stack_is_named(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(checks, "promoters", lambda _dir, stack: ["canary", "production"] if stack == "staging" else [])
    problem = checks.precondition_problem(project, "staging", REPO, tmp_path / "r.json", Branch("sunset"),
                                          dry_run=True)  # fmt: skip
    assert problem is not None and problem.startswith("live stack(s) canary, production promote from staging (")
    assert problem.endswith("or sunset canary, production first. Nothing was changed.")


def test_the_report_s_missing_folders_are_created(tmp_path: Path) -> None:
    assert checks.report_path_problem(tmp_path / "a" / "b" / "r.json") is None
    assert (tmp_path / "a" / "b").is_dir() and not (tmp_path / "a" / "b" / "r.json").exists()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # The operating system's reason alone, not Python's "[Errno 20] …: '<path>'" repeating the path.
    below = blocker / "sub" / "r.json"
    assert checks.report_path_problem(below) == f"--report {below}: cannot create its folder: Not a directory"
    assert checks.report_path_problem(blocker / "r.json") == (
        f"--report {blocker / 'r.json'}: cannot create its folder: File exists"
    )


def test_an_existing_report_or_its_folder_that_cannot_be_written_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As the operating system answers os.access (root, as in CI, may write anywhere: the answer is simulated)."""
    report = tmp_path / "r.json"
    report.write_text("{}")
    assert checks.report_path_problem(report) is None
    unwritable = {report, tmp_path / "new"}
    monkeypatch.setattr(os, "access", lambda path, mode: mode == os.W_OK and Path(path) not in unwritable)
    assert checks.report_path_problem(report) == f"--report {report} is not writable"
    (tmp_path / "new").mkdir()
    fresh = tmp_path / "new" / "r.json"
    assert checks.report_path_problem(fresh) == f"--report {fresh}: folder {tmp_path / 'new'} is not writable"
    assert checks.report_path_problem(tmp_path / "other.json") is None


def test_the_stage_is_checked_for_the_service_and_only_in_a_real_run(tmp_path: Path) -> None:
    _single(tmp_path, "config:\n  shop:services: [web, api]\n  shop:stage: production\n  web:stage: sunset\n")
    report = tmp_path / "out" / "r.json"
    branch = Branch("sunset")
    assert checks.precondition_problem(tmp_path, "production", REPO, report, branch, dry_run=False,
                                       service="web") is None  # fmt: skip
    assert branch.asked == [(tmp_path, tmp_path / "Pulumi.production.yaml", "web")]
    problem = checks.precondition_problem(tmp_path, "production", REPO, report, branch, dry_run=False)
    assert problem is not None and problem.startswith("Pulumi.production.yaml says stage production, not sunset")
    assert checks.precondition_problem(tmp_path, "production", REPO, report, branch, dry_run=True) is None
    bad = checks.precondition_problem(tmp_path, "production", "", report, branch, dry_run=True)
    assert bad == "shop:imageRepository: repository '' is empty"
