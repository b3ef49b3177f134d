"""The UI in a real browser: Debian's Chromium driven by Playwright, against a running `flowcept serve`."""

from __future__ import annotations

import os
import shutil

import pytest

pytest.importorskip("fastapi")
playwright_api = pytest.importorskip("playwright.sync_api")

from tests.conftest import write_settings  # noqa: E402
from tests.web.server_env import running_server  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags Chromium needs on this closed network (and as root): no sandbox, no background calls home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = os.environ.get("FLOWCEPT_TEST_ARTIFACTS")

pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="needs Debian's chromium (.ci/run installs it)")


@pytest.fixture(name="browser_page")
def fixture_browser_page():
    # Playwright starts the browser with a fresh, empty profile of its own (the closed network needs one).
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        try:
            yield page
        finally:
            browser.close()


def shot(page, tmp_path, name: str) -> None:
    """Keep a screenshot as a test artifact (FLOWCEPT_TEST_ARTIFACTS, else the test's folder)."""
    folder = ARTIFACTS or str(tmp_path)
    os.makedirs(folder, exist_ok=True)
    page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


@pytest.mark.timeout(240)
def test_pages_show_a_captured_workflow_and_live_tasks(browser_page, tmp_path, monkeypatch):
    from flowcept import Flowcept, flowcept_task

    settings = write_settings(tmp_path, f"databases:\n  sqlite:\n    path: {tmp_path / 'ui.sqlite'}\n"
                                        "web_server:\n  sse_poll_interval_sec: 0.5\n", monkeypatch)

    @flowcept_task(output_names="features")
    def preprocess(dataset, scale):
        return [x * scale for x in dataset]

    @flowcept_task(output_names="model")
    def train(features, epochs):
        return {"weights": sum(features) / epochs}

    @flowcept_task
    def pipeline():
        return train(preprocess([1, 2, 3], scale=2), epochs=4)

    page = browser_page
    with Flowcept(workflow_name="ui-demo") as fc:
        pipeline()
        Flowcept.db.count("tasks")  # everything captured so far is stored
        with running_server(settings, tmp_path) as base:
            page.goto(f"{base}/")
            page.wait_for_selector("#workflows a.wf-link")
            row = page.locator("#workflows tr", has_text="ui-demo")
            assert row.locator(".task-count").inner_text() == "3"
            shot(page, tmp_path, "workflows")

            row.locator("a.wf-link").click()
            page.wait_for_selector("#gantt rect.gantt-bar")
            assert page.locator("#wf-name").inner_text() == "ui-demo"
            assert page.locator("#task-count").inner_text() == "3"
            assert page.locator("#gantt rect.gantt-bar").count() == 3
            assert page.locator("#graph g[data-task-id]").count() == 3
            assert page.locator("#graph path.graph-edge").count() == 2  # pipeline -> preprocess, pipeline -> train
            shot(page, tmp_path, "workflow")

            # Live: a task captured while the page is open appears without reloading.
            preprocess([5], scale=10)
            page.wait_for_function("document.querySelector('#task-count').textContent === '4'", timeout=5000)
            assert page.locator("#gantt rect.gantt-bar").count() == 4
            shot(page, tmp_path, "workflow_live")

            page.locator("a.task-link", has_text="train").first.click()
            page.wait_for_selector("#used pre")
            used = page.locator("#used pre").inner_text()
            assert '"epochs": 4' in used and '"features"' in used
            assert '"weights": 3' in page.locator("#generated pre").inner_text()
            assert page.locator("#task-status").inner_text() == "FINISHED"
            text = page.locator("main").inner_text()
            assert "[object" not in text and "null" not in text.split("Record")[0]
            page.wait_for_selector("#lineage .upstream a")
            assert page.locator("#lineage .upstream a").all_inner_texts() == ["pipeline"]
            shot(page, tmp_path, "task")

            Flowcept.db.insert_or_update_object(b"checkpoint", object_id="ckpt-ui", object_type="ml_model")
            page.goto(f"{base}/#/objects")
            page.wait_for_selector("#objects td")
            assert "ckpt-ui" in page.locator("#objects").inner_text()
            shot(page, tmp_path, "objects")
