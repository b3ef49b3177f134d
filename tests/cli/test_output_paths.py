"""Output paths of the commands that write files (export, report, objects download): a path that cannot be written
ends as one `Error: cannot write PATH: reason` line with exit code 2; missing folders are created by every one."""

from __future__ import annotations

import pytest

from flowcept import Flowcept, flowcept_task
from flowcept.cli import app

EXPORTS = ["prov-json", "prov-n", "prov-o", "ro-crate", "openlineage"]
REPORTS = ["markdown", "pdf", "html"]


@flowcept_task
def inc(x):
    return x + 1


@pytest.fixture(name="wf")
def fixture_wf():
    """A workflow of one task and a stored object ``obj-out``, in the test's SQLite store."""
    with Flowcept(workflow_name="out") as fc:
        inc(5)
    Flowcept.db.insert_or_update_object(b"abc", object_id="obj-out")
    return fc.workflow_id


def _command(kind: str, fmt: str | None, wf: str, out) -> list[str]:
    if kind == "export":
        return ["export", "-F", fmt, "-w", wf, "-o", str(out)]
    if kind == "report":
        return ["report", "-F", fmt, "-w", wf, "-o", str(out)]
    return ["objects", "download", "obj-out", str(out)]


CASES = [("export", f) for f in EXPORTS] + [("report", f) for f in REPORTS] + [("download", None)]


@pytest.mark.parametrize("kind,fmt", CASES)
def test_a_file_in_the_way_is_error_exit_2(runner, wf, tmp_path, kind, fmt):
    """A path below a regular file exits 2 with the path and the reason, no traceback."""
    (tmp_path / "afile").write_text("")
    out = tmp_path / "afile" / "x.out"
    result = runner.invoke(app, _command(kind, fmt, wf, out))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: cannot write {out}: Not a directory\n"
    assert result.stdout == ""


@pytest.mark.parametrize("kind,fmt", [c for c in CASES if c not in (("export", "ro-crate"), ("download", None))])
def test_an_existing_folder_is_error_exit_2(runner, wf, tmp_path, kind, fmt):
    """A folder given where a file goes exits 2 (a crate goes into a folder; download refuses one as usage)."""
    out = tmp_path / "adir"
    out.mkdir()
    result = runner.invoke(app, _command(kind, fmt, wf, out))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: cannot write {out}: Is a directory\n"
    assert list(out.iterdir()) == []


def test_a_crate_over_a_file_is_error_exit_2(runner, wf, tmp_path):
    """A crate folder where a file exists exits 2 and leaves the file alone."""
    out = tmp_path / "crate"
    out.write_text("keep")
    result = runner.invoke(app, _command("export", "ro-crate", wf, out))
    assert result.exit_code == 2, result.output
    assert result.stderr == f"Error: cannot write {out}: File exists\n"
    assert out.read_text() == "keep"


@pytest.mark.parametrize("kind,fmt", CASES + [("export", "ro-crate.zip")])
def test_missing_folders_are_created(runner, wf, tmp_path, kind, fmt):
    """Every format writes into folders that do not exist yet."""
    name = "crate.zip" if fmt == "ro-crate.zip" else "x.out"
    out = tmp_path / "new" / "sub" / name
    result = runner.invoke(app, _command(kind, "ro-crate" if fmt == "ro-crate.zip" else fmt, wf, out))
    assert result.exit_code == 0, result.output
    assert out.is_dir() if fmt == "ro-crate" else out.is_file()
    if kind == "download":
        assert out.read_bytes() == b"abc"


def test_unknown_workflow_creates_no_folder(runner, wf, tmp_path):
    """An export that fails before writing (unknown workflow) leaves no new folder behind."""
    out = tmp_path / "new" / "x.json"
    result = runner.invoke(app, _command("export", "prov-json", "no-such-wf", out))
    assert result.exit_code == 2
    assert not (tmp_path / "new").exists()
