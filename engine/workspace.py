"""The program run by the real Pulumi CLI: a copy of the project, a DIY state backend, the local
overlay of endpoint settings, and ``pulumi`` commands with the engine's environment.

The committed stack files stay as they are: the CLI runs on a copy of the project (the files git
knows, committed or not), where ``pulumi stack init`` and ``pulumi config set`` may write. The copy is
a git repository of its own with a local ``origin``, so commands that require the stage to be
committed and pushed (the sunset) run as they do in CI.

State: the DIY backend on the local file system (``file://``), with the passphrase secrets
provider. The reason it is not ``s3://`` on moto: the DIY backend is one implementation over gocloud's
blob interface, and a file:// URL exercises all of it (locking, history, checkpoints) with nothing
more to start, where moto adds a server and an S3 emulation of its own to the run.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
ENGINE_ENV = REPO / "out" / "engine" / "env.json"


class EngineMissing(RuntimeError):
    """``make engine`` has not run: the tools and their environment are not there."""


def engine_env() -> dict[str, str]:
    """The environment ``out/engine/env.sh`` exports, as a mapping over this process's own."""
    if not ENGINE_ENV.is_file():
        raise EngineMissing(f"{ENGINE_ENV.relative_to(REPO)} is missing: run `make engine` first")
    extra = json.loads(ENGINE_ENV.read_text())
    env = dict(os.environ)
    env.update({k: v for k, v in extra.items() if k != "PATH_PREPEND"})
    env["PATH"] = os.pathsep.join([*extra["PATH_PREPEND"], str(REPO / "venv" / "bin"), env.get("PATH", "")])
    return env


@dataclass
class Result:
    argv: list[str]
    code: int
    stdout: str
    stderr: str
    seconds: float

    def tail(self, lines: int = 30) -> str:
        return "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-lines:])


class CommandFailed(RuntimeError):
    def __init__(self, result: Result) -> None:
        self.result = result
        super().__init__(
            f"`{' '.join(result.argv)}` exited {result.code} after {result.seconds:.1f} s; last lines:\n{result.tail()}"
        )


@dataclass
class Workspace:
    """A project copy with its backend: ``run`` runs a command there with the engine's environment."""

    root: Path
    project: Path
    backend: str
    env: dict[str, str]
    history: list[Result] = field(default_factory=list)

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        timeout: float = 1800,
        input_text: str | None = None,
        cwd: Path | None = None,
    ) -> Result:
        started = time.monotonic()
        done = subprocess.run(
            list(argv),
            cwd=cwd or self.project,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            input=input_text,
            check=False,
        )
        result = Result(list(argv), done.returncode, done.stdout, done.stderr, time.monotonic() - started)
        self.history.append(result)
        if check and result.code != 0:
            raise CommandFailed(result)
        return result

    def pulumi(self, *args: str, check: bool = True, env: Mapping[str, str] | None = None, **kwargs: Any) -> Result:
        # As the workflows do: the program reads the commit it deploys from SOURCE_REVISION.
        revision = {"SOURCE_REVISION": self.head()} if (self.project / ".git").exists() else {}
        return self.run(["pulumi", "--non-interactive", *args], check=check, env={**revision, **(env or {})}, **kwargs)

    def head(self) -> str:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=self.project, capture_output=True, text=True, check=False
        )
        return done.stdout.strip()

    def config_set(self, stack: str, key: str, value: str, *, secret: bool = False, path: bool = False) -> None:
        # The value goes on stdin for secrets: never on a command line another process can read.
        flags = ["--secret"] if secret else ["--plaintext"]
        if path:
            flags.append("--path")
        if secret:
            self.pulumi("config", "set", "--stack", stack, *flags, key, input_text=value)
        else:
            self.pulumi("config", "set", "--stack", stack, *flags, key, "--", value)

    def git(self, *args: str, check: bool = True) -> Result:
        return self.run(["git", *args], check=check)


def project_files(repo: Path = REPO) -> list[str]:
    """The files git knows (committed or new, not ignored): what a clone of the branch would hold."""
    out = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=repo, capture_output=True, check=True
    ).stdout.decode()
    return sorted(name for name in out.split("\0") if name and (repo / name).is_file())


def create(root: Path, *, repo: Path = REPO, env: Mapping[str, str] | None = None) -> Workspace:
    """A fresh copy of the project under ``root/project``, its git origin, and a fresh backend."""
    root.mkdir(parents=True, exist_ok=True)
    project = root / "project"
    if project.exists():
        shutil.rmtree(project)
    for name in project_files(repo):
        target = project / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, target)
    # The program's venv (Pulumi.yaml: virtualenv: venv) is the repository's own.
    (project / "venv").symlink_to(repo / "venv")
    state = root / "state"
    if state.exists():
        shutil.rmtree(state)
    state.mkdir()
    base = dict(env) if env is not None else engine_env()
    home = root / "pulumi-home"
    (home / "plugins").mkdir(parents=True, exist_ok=True)
    base.update(
        {
            "PULUMI_HOME": str(home),
            "PULUMI_BACKEND_URL": f"file://{state}",
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(24),
            "PULUMI_SKIP_UPDATE_CHECK": "true",
            "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
            "PULUMI_AUTOMATION_API_SKIP_VERSION_CHECK": "true",
            "GIT_AUTHOR_NAME": "service-lifecycle e2e",
            "GIT_AUTHOR_EMAIL": "e2e@service-lifecycle.invalid",
            "GIT_COMMITTER_NAME": "service-lifecycle e2e",
            "GIT_COMMITTER_EMAIL": "e2e@service-lifecycle.invalid",
            "NO_COLOR": "1",
        }
    )
    workspace = Workspace(root=root, project=project, backend=f"file://{state}", env=base)
    origin = root / "origin.git"
    if origin.exists():
        shutil.rmtree(origin)
    workspace.run(["git", "init", "--quiet", "--bare", "--initial-branch", "main", str(origin)])
    workspace.git("init", "--quiet", "--initial-branch", "main")
    workspace.git("add", "-A")
    workspace.git("commit", "--quiet", "-m", "the project as the e2e run starts")
    workspace.git("remote", "add", "origin", str(origin))
    workspace.git("push", "--quiet", "origin", "main")
    workspace.git("branch", "--quiet", "--set-upstream-to", "origin/main")
    return workspace


def preview_steps(result: Result) -> list[dict[str, Any]]:
    """The steps of ``pulumi preview --json``."""
    document = json.loads(result.stdout)
    return list(document.get("steps", []))
