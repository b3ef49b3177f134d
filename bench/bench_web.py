"""Web service: time to first render of a 100,000-task workflow page, and API latency for a page of 100 tasks.

Run: python bench/bench_web.py [--tasks N] [--screenshots DIR]

Builds a workflow of N tasks in a fresh SQLite store (bulk upserts, untimed), starts `flowcept serve` on a free
port, then measures:

* API latency: median and 95th percentile wall time of GET /api/v1/tasks?workflow_id=..&limit=100 (the first page
  and pages deep in the keyset order), 50 requests each, over HTTP on loopback;
* first render: headless Chromium (Debian's, driven by Playwright) from `goto` of the workflow page until its
  timeline bars and graph nodes are drawn, median of 5 loads.

With --screenshots DIR it also captures a small workflow with CPU and memory telemetry and saves a screenshot of
each page there (the pictures in docs/img/ come from this).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from tests.web.server_env import running_server  # noqa: E402

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _settings(folder: str, telemetry: bool = False) -> str:
    path = os.path.join(folder, "settings.yaml")
    text = f"databases:\n  sqlite:\n    path: {folder}/bench.sqlite\nproject:\n  dump_buffer:\n    enabled: false\n"
    if telemetry:
        text += "telemetry_capture:\n  cpu: true\n  mem: true\n"
    with open(path, "w") as f:
        f.write(text)
    os.environ["FLOWCEPT_SETTINGS_PATH"] = path
    from flowcept.settings import reload_settings

    reload_settings()
    return path


def _populate(n: int) -> str:
    from flowcept.query.api import DBAPI

    db = DBAPI()
    wf = "bench-web-wf"
    for start in range(0, n, 20_000):
        db.store.upsert([{"type": "task", "task_id": f"t{i:07d}", "workflow_id": wf, "activity_id": f"step_{i % 7}",
                          "parent_task_id": f"t{i - 1:07d}" if i % 50 else None, "used": {"i": i},
                          "generated": {"out": i * 2}, "started_at": 1e9 + i * 0.01, "ended_at": 1e9 + i * 0.01 + 0.005,
                          "status": "FINISHED"} for i in range(start, min(n, start + 20_000))])
    db.store.upsert([{"type": "workflow", "workflow_id": wf, "name": "bench", "started_at": 1e9, "ended_at": 1e9 + n,
                      "status": "FINISHED"}])
    db.close()
    return wf


def _latency(base: str, path: str, reps: int = 50) -> tuple[float, float]:
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        with urllib.request.urlopen(base + path, timeout=60) as res:
            res.read()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def _first_render(base: str, workflow_id: str, reps: int = 5) -> float:
    from playwright.sync_api import sync_playwright

    times = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        for _ in range(reps):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            t0 = time.perf_counter()
            page.goto(f"{base}/#/workflows/{workflow_id}")
            page.wait_for_selector("#gantt rect.gantt-bar")
            page.wait_for_selector("#graph g[data-task-id]")
            times.append((time.perf_counter() - t0) * 1000)
            page.close()
        browser.close()
    return statistics.median(times)


def _screenshots(folder: str, out: str) -> None:
    from playwright.sync_api import sync_playwright

    from flowcept import Flowcept, flowcept_task

    settings = _settings(folder, telemetry=True)

    @flowcept_task(output_names="features")
    def preprocess(samples, scale):
        return [sum(x * scale for x in range(samples)) for _ in range(3)]

    @flowcept_task(output_names="loss")
    def train_epoch(features, epoch, learning_rate=0.01):
        total = 0
        for i in range(200_000):
            total += i % (epoch + 2)
        return round(1.0 / (epoch + 1) + total * 1e-12, 4)

    @flowcept_task
    def evaluate(loss):
        return {"accuracy": round(1 - loss / 2, 3)}

    @flowcept_task(output_names="loss")
    def train(features, epochs):
        loss = None
        for epoch in range(epochs):
            loss = train_epoch(features, epoch)
        return loss

    @flowcept_task
    def pipeline(samples, epochs):
        return evaluate(train(preprocess(samples, scale=2), epochs))

    with Flowcept(workflow_name="training-run", workflow_args={"epochs": 6}) as fc:
        pipeline(20_000, 6)
        Flowcept.db.insert_or_update_object(b"\x00" * 4096, object_id="model-checkpoint", object_type="ml_model",
                                            task_id=None, control_version=True)
    os.makedirs(out, exist_ok=True)
    with running_server(settings, folder) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, url, selector in [
            ("ui_workflows", "/#/", "#workflows a"),
            ("ui_workflow", f"/#/workflows/{fc.workflow_id}", "#telemetry svg"),
            ("ui_objects", "/#/objects", "#objects td"),
        ]:
            page.goto(base + url)
            page.wait_for_selector(selector)
            page.wait_for_timeout(300)
            page.screenshot(path=os.path.join(out, f"{name}.png"), full_page=True)
        page.goto(f"{base}/#/workflows/{fc.workflow_id}")
        page.wait_for_selector("a.task-link")
        page.locator("a.task-link", has_text="train_epoch").first.click()
        page.wait_for_selector("#lineage .upstream")
        page.screenshot(path=os.path.join(out, "ui_task.png"), full_page=True)
        browser.close()
    print(f"screenshots in {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=100_000)
    parser.add_argument("--screenshots", metavar="DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-web-") as folder:
        os.environ["HOME"] = folder
        os.chdir(folder)
        if args.screenshots:
            _screenshots(folder, os.path.abspath(os.path.join(ROOT, args.screenshots))
                         if not os.path.isabs(args.screenshots) else args.screenshots)
            return
        settings = _settings(folder)
        t0 = time.perf_counter()
        wf = _populate(args.tasks)
        print(f"stored {args.tasks:,} tasks in {time.perf_counter() - t0:.1f} s (bulk upserts, setup)")
        with running_server(settings, folder) as base:
            median, p95 = _latency(base, f"/api/v1/tasks?workflow_id={wf}&limit=100")
            print(f"GET /tasks?limit=100, first page:   median {median:.1f} ms, p95 {p95:.1f} ms")
            # A page deep in the order: follow next_cursor to 90% of the workflow, then time that page.
            import json

            cursor, path = None, f"/api/v1/tasks?workflow_id={wf}&limit=1000"
            for _ in range(int(args.tasks * 0.9) // 1000):
                with urllib.request.urlopen(base + path + (f"&cursor={cursor}" if cursor else ""), timeout=60) as r:
                    cursor = json.loads(r.read())["next_cursor"]
            median, p95 = _latency(base, f"/api/v1/tasks?workflow_id={wf}&limit=100&cursor={cursor}")
            print(f"GET /tasks?limit=100, page at 90%:  median {median:.1f} ms, p95 {p95:.1f} ms")
            median, p95 = _latency(base, f"/api/v1/workflows/{wf}", reps=20)
            print(f"GET /workflows/<id> (counts):       median {median:.1f} ms, p95 {p95:.1f} ms")
            render = _first_render(base, wf)
            print(f"first render of the {args.tasks:,}-task workflow page (timeline + graph drawn): "
                  f"median {render:.0f} ms over 5 loads")


if __name__ == "__main__":
    main()
