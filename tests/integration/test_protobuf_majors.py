"""Issue 22, item 5: the offline plan writes the same bytes under protobuf 5 and protobuf 6.

The lock pins protobuf 5; a plain ``pip install`` of the package resolves protobuf 6. Before the
canonical key order every manifest, ``plan.json`` and the rule file differed between the two (22 of
22 files of the staging plan). A venv of its own gets the other major (``pip install --no-deps``)
and sees this interpreter's packages behind it (a ``.pth`` line), so only protobuf differs; the
sample's staging plan and the two-services example are planned under both and compared byte for byte.
Skipped when pip cannot reach an index; under CI (env CI set) that fails instead.
"""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from google.protobuf import __version__ as protobuf_version

REPOSITORY = Path(__file__).resolve().parents[2]
PLANS = [(REPOSITORY, "staging"), (REPOSITORY / "examples" / "two-services", "staging")]


def _differences(a: Path, b: Path) -> list[str]:
    comparison = filecmp.dircmp(a, b)
    found = [f"{a.name}/{n}" for n in comparison.left_only + comparison.right_only + comparison.diff_files]
    for name in comparison.common_files:  # dircmp compares stat signatures only: compare the bytes
        if not filecmp.cmp(a / name, b / name, shallow=False):
            found.append(f"{a.name}/{name}")
    for sub in comparison.common_dirs:
        found += _differences(a / sub, b / sub)
    return sorted(set(found))


@pytest.mark.own_venv
def test_the_plan_writes_the_same_bytes_under_protobuf_5_and_6(tmp_path: Path) -> None:
    ours = int(protobuf_version.split(".")[0])
    other = {5: "protobuf>=6,<7", 6: "protobuf>=5.29,<6"}.get(ours)
    if other is None:
        pytest.skip(f"protobuf {protobuf_version} here: the test compares 5 and 6")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTEST_ADDOPTS")}
    env["SOURCE_REVISION"] = "0" * 40
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    installed = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check", other],
        capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    if installed.returncode != 0:
        message = f"pip cannot install {other} here:\n{installed.stderr[-2000:]}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True, env=env,
    ).stdout.strip()  # fmt: skip
    # Behind the venv's own site-packages: everything else (and this checkout, for `-m components`).
    (Path(site) / "zz_service_lifecycle.pth").write_text(f"{sysconfig.get_paths()['purelib']}\n{REPOSITORY}\n")
    versions = subprocess.run(
        [python, "-c", "import google.protobuf, components; print(google.protobuf.__version__, components.__file__)"],
        capture_output=True, text=True, check=True, env=env, cwd=tmp_path,
    ).stdout.split()  # fmt: skip
    assert int(versions[0].split(".")[0]) != ours and versions[1].startswith(str(REPOSITORY)), versions

    for project, stack in PLANS:
        outs = []
        for label, interpreter in ((f"protobuf{ours}", sys.executable), (f"protobuf{versions[0]}", python)):
            out = tmp_path / label / project.name / stack
            planned = subprocess.run(
                [interpreter, "-m", "components", "plan", "--project-dir", str(project), "--stack", stack,
                 "--out", str(out)],
                capture_output=True, text=True, timeout=900, env=env, cwd=REPOSITORY,
            )  # fmt: skip
            assert planned.returncode == 0, planned.stdout[-2000:] + planned.stderr[-2000:]
            outs.append(out)
        files = [p for p in outs[0].rglob("*") if p.is_file()]
        assert len(files) > 10
        differing = _differences(outs[0], outs[1])
        assert differing == [], f"{project.name}: differs between protobuf {ours} and {versions[0]}"
