"""Reports on both stores: the workflow card's exact counts and durations, the PDF renders, the HTML holds the plot
data, secrets never appear, and exactly one input mode is accepted."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from flowcept import Flowcept
from tests.export._records import make_records, tid

ACTIVITY_ROWS = [
    "| Activity | Tasks | ERROR | FINISHED | RUNNING | Median (s) | Min (s) | Max (s) | Total (s) |",
    "| load | 2 | 0 | 2 | 0 | 2.000 | 1.000 | 3.000 | 4.000 |",
    "| train | 3 | 1 | 2 | 0 | 1.500 | 0.500 | 2.500 | 4.500 |",
    "| train_step | 1 | 0 | 1 | 0 | 0.250 | 0.250 | 0.250 | 0.250 |",
    "| eval | 1 | 0 | 0 | 1 | - | - | - | - |",
]


def plotly_traces(html: str) -> list[dict]:
    """The data arrays of every ``Plotly.newPlot(id, data, layout)`` call in the page."""
    decoder = json.JSONDecoder()
    traces = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', html):
        data, _ = decoder.raw_decode(html, match.end())
        traces += data
    return traces


class TestWorkflowCard:
    def test_exact_counts_and_durations(self, known):
        """The card of the known workflow holds its exact per-activity counts, statuses and durations."""
        wf, _ = known
        stats = Flowcept.generate_report(workflow_id=wf)
        card = stats["markdown"]
        lines = card.splitlines()
        start = lines.index(ACTIVITY_ROWS[0])
        assert lines[start:start + 6] == [ACTIVITY_ROWS[0], "|---|---|---|---|---|---|---|---|---|"] + ACTIVITY_ROWS[1:]
        for line in ["# Workflow Card: card_wf", "- Tasks: 7", "- Status: ERROR 1, FINISHED 5, RUNNING 1",
                     "- Activities: 4", "- Task span (s): 7.500", "| Elapsed (s) | 10.000 |",
                     "| Started | 2023-11-14 22:13:20.000 UTC |", "- Hosts: node1, node2",
                     "- Structure (activities by first start): load → train → train_step → eval",
                     "| node1 | Linux 6.1 x86_64 | Test CPU | 8 | 16.0 | 500.0 | - |",
                     "| load | 2 | 1.000 | 0.500 | 0.000 | 2.000 | 4.000 | 0.000 | 0.000 |",
                     '| Arguments | {"db_password":"REDACTED","epochs":3} |']:
            assert line in lines, line
        assert "hunter2" not in card and "SECRET-KEY" not in card
        assert {k: stats[k] for k in ("report_type", "format", "output", "input_mode", "skipped_lines", "workflows",
                                      "tasks", "activities", "status_counts")} == {
            "report_type": "workflow_card", "format": "markdown", "output": None, "input_mode": "db",
            "skipped_lines": 0, "workflows": 1, "tasks": 7, "activities": 4,
            "status_counts": {"FINISHED": 5, "ERROR": 1, "RUNNING": 1}}

    def test_latest_objects(self, known):
        """Objects saved for the workflow are listed, latest first, with type, version, task and size."""
        wf, _ = known
        first = Flowcept.db.insert_or_update_object(b"weights-v0", workflow_id=wf, task_id=tid(wf, "train1"),
                                                    object_type="ml_model")
        second = Flowcept.db.insert_or_update_object(b"rows", workflow_id=wf, object_type="dataset")
        card = Flowcept.generate_report(workflow_id=wf)["markdown"]
        section = card.split("## 6. Objects\n\n")[1].split("\n\n## ")[0].splitlines()
        assert section[0] == "2 objects; the latest 2:"
        assert [row.split(" | ")[:5] for row in section[4:]] == [
            [f"| {second}", "dataset", "0", "-", "4"], [f"| {first}", "ml_model", "0", tid(wf, "train1"), "10"]]

    def test_campaign_and_records_and_jsonl(self, known, tmp_path):
        """A campaign card, a card from records and one from a JSONL file (bad lines counted) agree."""
        wf, records = known
        by_campaign = Flowcept.generate_report(campaign_id=f"camp-{wf[3:]}")["markdown"]
        by_records = Flowcept.generate_report(records=records)
        path = tmp_path / "buffer.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in records) + "\nnot json\n\n[1]\n")
        by_file = Flowcept.generate_report(input_jsonl_path=str(path), output_path=str(tmp_path / "card.md"))
        assert by_records["input_mode"] == "records" and by_file["input_mode"] == "jsonl"
        assert by_file["skipped_lines"] == 2 and by_file["output"] == str(tmp_path / "card.md")
        assert by_records["markdown"] == by_file["markdown"] == (tmp_path / "card.md").read_text()
        assert by_campaign.replace("Campaign Card: 1 workflows", "Workflow Card: card_wf") == by_records["markdown"]

    def test_default_input_is_the_buffer_file(self, backend, capsys):
        """With no input the configured JSONL buffer file is read; print_markdown prints the card."""
        from flowcept import flowcept_task

        @flowcept_task
        def step(x):
            return x + 1

        with Flowcept(workflow_name="buffered"):
            step(step(1))
        stats = Flowcept.generate_report(print_markdown=True)
        assert (stats["input_mode"], stats["tasks"], stats["activities"]) == ("jsonl", 2, 1)
        assert "Workflow Card: buffered" in capsys.readouterr().out

    def test_input_modes_and_kinds(self, known):
        """Two input modes, or an unknown report/format pair, are ValueErrors; an unknown id names it."""
        wf, records = known
        with pytest.raises(ValueError, match="exactly one input"):
            Flowcept.generate_report(records=records, workflow_id=wf)
        with pytest.raises(ValueError, match="unsupported report_type='workflow_card' with format='pdf'"):
            Flowcept.generate_report(format="pdf", records=records)
        with pytest.raises(ValueError, match="no workflow 'missing-wf' in the store"):
            Flowcept.generate_report(workflow_id="missing-wf")


@pytest.mark.timeout(600)
class TestProvenanceReport:
    def test_pdf_renders(self, known, tmp_path, pdftoppm):
        """The PDF renders page 1 with pdftoppm and its text holds the counts, without secrets."""
        wf, _ = known
        path = tmp_path / "report.pdf"
        stats = Flowcept.generate_report("provenance_report", "pdf", output_path=str(path), workflow_id=wf)
        assert stats["output"] == str(path) and stats["plots"] == 6 and stats["pages"] >= 2
        subprocess.run([pdftoppm, "-png", "-r", "50", "-f", "1", "-l", "1", str(path), str(tmp_path / "page")],
                       check=True, timeout=120)
        (png,) = tmp_path.glob("page*.png")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
        text = subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True, text=True,
                              check=True, timeout=120).stdout
        assert "Provenance Report: card_wf" in text and "Tasks: 7" in text
        assert re.search(r"train\s+3\s+1\s+2\s+0\s+1\.500\s+0\.500\s+2\.500\s+4\.500", text)
        assert "hunter2" not in text and "REDACTED" in text

    def test_html_holds_plot_data(self, known, tmp_path):
        """One self-contained HTML file: plotly inlined (no network), Gantt bars of every task with exact times,
        time per activity and the telemetry series."""
        wf, _ = known
        path = tmp_path / "report.html"
        stats = Flowcept.generate_report("provenance_report", "html", output_path=str(path), workflow_id=wf)
        assert stats["plots"] == 6
        html = path.read_text()
        assert "<script src=" not in html and 'src="http' not in html
        assert html.count("Plotly.newPlot(") == 6 and "hunter2" not in html
        traces = plotly_traces(html)
        gantt = {row[0]: (row[1], row[2]) for t in traces if t.get("customdata") for row in t["customdata"]}
        assert gantt[tid(wf, "train3")] == (5.0, 7.5) and gantt[tid(wf, "load2")] == (0.5, 3.5)
        assert tid(wf, "eval1") not in gantt  # still running: no bar
        per_activity = next(t for t in traces if t.get("name") == "seconds")
        assert dict(zip(per_activity["y"], per_activity["x"])) == {"train": 4.5, "load": 4.0, "train_step": 0.25}
        cpu = next(t for t in traces if t.get("name") == "CPU (%)")
        assert cpu["y"] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]

    def test_captured_workflow_default_path(self, backend, fc_env):
        """A workflow captured with telemetry reports to PROVENANCE_REPORT.html in the working directory."""
        from flowcept import flowcept_task

        @flowcept_task
        def work(n):
            return sum(range(n))

        with Flowcept(workflow_name="captured") as fc:
            for n in (10, 20, 30):
                work(n)
        stats = Flowcept.generate_report("provenance_report", "html", workflow_id=fc.workflow_id)
        assert stats["output"] == "PROVENANCE_REPORT.html" and (fc_env / "PROVENANCE_REPORT.html").exists()
        assert stats["tasks"] == 3 and stats["status_counts"] == {"FINISHED": 3}


def test_unique_records_helper():
    """Each call of the records helper gives fresh ids (tests never share records)."""
    assert make_records()[0] != make_records()[0]
