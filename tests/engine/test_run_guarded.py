"""engine.e2e.run_guarded: how each real-engine run (e2e, rollback, platform) ends, whatever happens."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from engine import e2e, workspace


def run(tmp_path: Path, body_error: BaseException | None, *, keep: bool = False) -> tuple[str, list[str], Path]:
    root = tmp_path / "root"
    root.mkdir()
    finished: list[str] = []
    stopped: list[str] = []

    def body(stack: contextlib.ExitStack) -> None:
        stack.callback(stopped.append, "stopped")  # a process the run started
        if body_error is not None:
            raise body_error

    status = e2e.run_guarded("e2e", body, finish=finished.append, root=root, keep=keep)
    assert stopped == ["stopped"]  # every process started is stopped, whatever happened
    return status, finished, root


def test_a_run_that_goes_through_passes_and_cleans_up(tmp_path: Path) -> None:
    status, finished, root = run(tmp_path, None)
    assert status == "passed" and finished == ["passed"] and not root.exists()


@pytest.mark.parametrize(
    "error",
    [e2e.StepFailed("03-up-staging: the real systems do not show the step's effect"),
     workspace.CommandFailed(workspace.Result(["pulumi", "up"], 255, "", "error: update failed", 1.0)),
     KeyboardInterrupt()],
)  # fmt: skip
def test_a_failed_step_or_an_interrupt_fails_in_one_line_and_still_writes_the_report(
    tmp_path: Path, error: BaseException, capsys: pytest.CaptureFixture[str]
) -> None:
    status, finished, root = run(tmp_path, error)
    assert status == "failed" and finished == ["failed"] and not root.exists()
    err = capsys.readouterr().err
    assert err.startswith("e2e: ") and "Traceback" not in err


def test_anything_else_fails_with_its_traceback_and_keep_keeps_the_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, finished, root = run(tmp_path, ZeroDivisionError("boom"), keep=True)
    assert status == "failed" and finished == ["failed"] and root.is_dir()
    assert "Traceback" in capsys.readouterr().err
