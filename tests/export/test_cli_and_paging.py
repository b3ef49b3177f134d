"""``flowcept export`` and ``flowcept report`` on the command line, and the paged reads exports stream with."""

from __future__ import annotations

import json

import pytest

from flowcept.cli import app
from flowcept.errors import QueryError
from tests.export._records import TASKS


@pytest.fixture(name="runner")
def fixture_runner():
    from click.testing import CliRunner

    return CliRunner()


class TestExportCli:
    @pytest.mark.parametrize("fmt", ["prov-json", "prov-n", "prov-o", "openlineage"])
    def test_each_format(self, known, runner, tmp_path, fmt):
        """Each file format is written from the configured store and the command says where."""
        wf, _ = known
        out = tmp_path / f"out.{fmt}"
        result = runner.invoke(app, ["export", "--format", fmt, "--workflow-id", wf, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert result.stdout.startswith(f"wrote {fmt} of workflow {wf} to {out}")
        text = out.read_text()
        if fmt == "prov-json":
            assert len(json.loads(text)["activity"]) == len(TASKS) + 1
        elif fmt == "openlineage":
            assert len(text.splitlines()) == 2 + len(TASKS) + 6
        else:
            assert f"task:{wf[3:]}-load1" in text

    def test_unknown_workflow_exits_nonzero(self, store, runner, tmp_path):
        """An unknown workflow id exits 2 with an Error: line naming it."""
        result = runner.invoke(app, ["export", "--format", "prov-json", "--workflow-id", "no-such-wf",
                                     "-o", str(tmp_path / "x.json")])
        assert result.exit_code == 2
        assert "Error: workflow_id: no workflow 'no-such-wf' in the store" in result.stderr

    def test_missing_output_is_usage_error(self, runner):
        """Without -o the command is a usage error."""
        result = runner.invoke(app, ["export", "--format", "prov-json", "--workflow-id", "x"])
        assert result.exit_code == 2 and "-o/--output" in result.stderr

    def test_report_markdown(self, known, runner, tmp_path):
        """flowcept report writes the workflow card of a stored workflow."""
        wf, _ = known
        out = tmp_path / "card.md"
        result = runner.invoke(app, ["report", "--workflow-id", wf, "-o", str(out)])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == f"wrote {out} (7 tasks, 4 activities)"
        assert out.read_text().startswith("# Workflow Card: card_wf\n")

    def test_report_bad_combination(self, runner):
        """A report type that does not come in the format is a usage error."""
        result = runner.invoke(app, ["report", "--type", "workflow_card", "--format", "pdf", "-w", "x"])
        assert result.exit_code == 2 and "does not come as" in result.stderr


class TestDbExport:
    def test_flowcept_db_export_workflow(self, known, tmp_path):
        """Flowcept.db.export_workflow exports from the configured store."""
        from flowcept import Flowcept

        wf, _ = known
        out = tmp_path / "db.jsonl"
        result = Flowcept.db.export_workflow(wf, "openlineage", str(out), namespace="lab")
        assert result["events"] == 2 + len(TASKS) + 6
        first = json.loads(out.read_text().splitlines()[0])
        assert (first["job"]["namespace"], first["job"]["name"], first["eventType"]) == ("lab", "card_wf", "START")


class TestFindPages:
    def test_pages_cover_every_record_once(self, store):
        """find_pages returns every matching record exactly once, in pages of at most page_size."""
        records = [{"type": "task", "task_id": f"pg-{i:03d}", "workflow_id": "wf-pages", "n": i} for i in range(23)]
        records.append({"type": "task", "task_id": "other", "workflow_id": "wf-other"})
        store.upsert(records)
        pages = list(store.find_pages("tasks", {"workflow_id": "wf-pages"}, page_size=5))
        assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
        assert sorted(r["n"] for p in pages for r in p) == list(range(23))
        assert list(store.find_pages("tasks", {"workflow_id": "none"}, page_size=5)) == []

    def test_find_page_resumes_from_its_key(self, store):
        """find_page: one page and the key after it; following the keys gives find_pages' pages exactly."""
        store.upsert([{"type": "task", "task_id": f"fp-{i:03d}", "workflow_id": "wf-fp", "n": i} for i in range(12)])
        flt = {"workflow_id": "wf-fp"}
        pages, key = [], None
        while True:
            docs, key = store.find_page("tasks", flt, after=key, page_size=5)
            pages.append([d["n"] for d in docs])
            if key is None:
                break
        assert pages == [[p["n"] for p in page] for page in store.find_pages("tasks", flt, page_size=5)]
        assert sorted(n for page in pages for n in page) == list(range(12))
        assert store.find_page("tasks", {"workflow_id": "none"}) == ([], None)
        with pytest.raises(QueryError, match="page key"):
            store.find_page("tasks", flt, after=[1, 2])
