"""The web app as a person uses it: a real `biolens serve`, real jobs, and a real headless Chromium (Playwright
driving Debian's chromium, which `make test` installs). Screenshots of every page go to test-artifacts/web/.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from biolens.web.security import csrf_token

ROOT = Path(__file__).resolve().parents[1]
SLICE = ROOT / "examples" / "blood_cells_slice"
SHOTS = Path(os.environ.get("BIOLENS_ARTIFACTS", ROOT / "test-artifacts")) / "web"
CHROMIUM = os.environ.get("BIOLENS_CHROMIUM", "/usr/bin/chromium")
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}


class Server:
    """`biolens serve` in a child process, as a user starts it; `url` is the address it printed."""

    def __init__(self, runs: Path, root: Path):
        self.runs, self.root = runs, root
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.start()

    def start(self):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "biolens", "serve", "--no-browser", "--port", str(self.port), "--runs", str(self.runs),
             "--root", str(self.root)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV, cwd=ROOT)
        first = self.process.stdout.readline()
        match = re.search(r"(http://\S+\?token=(\S+))", first)
        assert match, first + self.process.stdout.read(2000)
        self.url, self.token = match.group(1), match.group(2)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/health", cookies={"biolens_token": self.token}).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
        raise AssertionError("biolens serve did not answer within 30 s")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, cookies={"biolens_token": self.token}, timeout=120)

    def kill(self):
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def workspace(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(SLICE, data / "cells")
    return tmp_path


def wait_for(condition, timeout: float, what: str, every: float = 0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"waited {timeout:.0f} s for {what}")


def job_rows(runs: Path) -> list[dict]:
    with sqlite3.connect(runs / ".biolens-web" / "jobs.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY id")]


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_restart_mid_run_shows_it_interrupted_and_resumes_it(workspace):
    """kill -9 of the server mid-training: its job dies with it; the restarted server shows the run as interrupted,
    and Resume continues it from the last checkpoint; Cancel then stops it cleanly and Resume finishes it."""
    runs = workspace / "runs"
    server = Server(runs, workspace / "data")
    try:
        with server.client() as web:
            started = web.post("/new", data={"csrf": csrf_token(server.token), "task": "classify", "name": "cells",
                                             "path": str(workspace / "data" / "cells" / "manifest.csv"),
                                             "group_column": "source_image", "epochs": "6", "learning_curve": "off",
                                             "seed": "3"}, follow_redirects=False)
            assert started.status_code == 303, started.text
        history = runs / "cells" / "history.csv"
        wait_for(lambda: history.exists() and len(history.read_text().splitlines()) >= 2, 300, "the first epoch")
        job_pid = job_rows(runs)[0]["pid"]
        server.kill()
        wait_for(lambda: not Path(f"/proc/{job_pid}").exists() or
                 Path(f"/proc/{job_pid}/stat").read_text().split(")")[-1].split()[0] == "Z", 20,
                 "the job process to die with the server")
        epochs_before = len(history.read_text().splitlines()) - 1
        assert epochs_before < 6

        server.start()
        with server.client() as web:
            page = web.get("/runs/cells").text
            assert "status-interrupted" in page and 'id="resume"' in page
            assert "interrupted" in web.get("/").text
            resumed = web.post("/runs/cells/resume", data={"csrf": csrf_token(server.token)}, follow_redirects=False)
            assert resumed.status_code == 303
            # Cancel mid-run leaves a consistent folder that resumes again
            wait_for(lambda: len(history.read_text().splitlines()) - 1 > epochs_before, 300, "an epoch after resuming")
            cancelled = web.post("/runs/cells/cancel", data={"csrf": csrf_token(server.token)}, follow_redirects=False)
            assert cancelled.status_code == 303
            assert "status-cancelled" in web.get("/runs/cells").text
            assert json.loads((runs / "cells" / "run.json").read_text())["status"] == "interrupted"
            epochs_at_cancel = len(history.read_text().splitlines()) - 1
            web.post("/runs/cells/resume", data={"csrf": csrf_token(server.token)})
            wait_for(lambda: "status-complete" in web.get("/runs/cells").text, 400, "the resumed run to finish", 2)
            finished = web.get("/runs/cells").text
            assert "balanced accuracy" in finished and 'id="report"' in finished
        log = (runs / ".biolens-web" / "logs" / "cells.log").read_text()
        assert f"epoch {epochs_before + 1}/6" in log  # continued after the checkpoint, not from scratch
        assert f"resuming after epoch {epochs_at_cancel}" in log
        wait_for(lambda: [row["status"] for row in job_rows(runs)] == ["interrupted", "cancelled", "complete"], 30,
                 "the job table to record the resumed job as complete")
    finally:
        server.stop()


def test_upload_train_watch_report_predict_compare_in_a_browser(workspace, trained_run):
    from playwright.sync_api import expect, sync_playwright

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium)"
    SHOTS.mkdir(parents=True, exist_ok=True)
    runs = workspace / "runs"
    runs.mkdir()
    shutil.copytree(trained_run, runs / "from-the-cli")  # a run made with the CLI shows up too
    bundle = workspace / "my cells.zip"
    with zipfile.ZipFile(bundle, "w") as archive:
        for label in ("RBC", "WBC"):
            for image in sorted((SLICE / "images" / label).iterdir())[:40]:
                archive.write(image, f"my cells/{label}/{image.name}")
    new_images = sorted((SLICE / "images" / "WBC").iterdir())[-3:] + sorted((SLICE / "images" / "RBC").iterdir())[-3:]
    pool = sorted((SLICE / "images" / "Platelets").iterdir())[:8]
    server = Server(runs, workspace / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            page.goto(server.url)
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            assert "token=" not in page.url
            expect(page.get_by_role("link", name="from-the-cli")).to_be_visible()
            page.screenshot(path=SHOTS / "home.png", full_page=True)

            page.get_by_role("link", name="New run", exact=True).click()
            page.get_by_label("Classify labelled images").check()
            page.get_by_label("Run name").fill("my-cells")
            page.get_by_label("Upload files or a zip").set_input_files(bundle)
            page.get_by_label("Maximum epochs").fill("3")
            page.get_by_label("Is my data enough?").select_option("off")
            expect(page.get_by_label("Method")).to_be_hidden()  # only the chosen task's settings show
            page.screenshot(path=SHOTS / "new_run.png", full_page=True)
            page.get_by_role("button", name="Start").click()

            expect(page.get_by_role("heading", name=re.compile("my-cells"))).to_be_visible()
            # live, no reload (an idle machine may finish an epoch between two refreshes: any epoch counts)
            expect(page.locator("#epoch")).to_contain_text(re.compile(r"epoch [1-3] of at most 3"), timeout=240_000)
            expect(page.locator("#stages")).to_contain_text("training")   # the stage under way, with its bar
            expect(page.locator("#stages progress").first).to_be_attached()
            page.screenshot(path=SHOTS / "run_progress.png", full_page=True)
            expect(page.locator("#status")).to_have_text("complete", timeout=300_000)
            expect(page.locator("#report")).to_be_visible(timeout=30_000)
            expect(page.frame_locator("#report").get_by_text("Methods").first).to_be_visible()
            expect(page.get_by_text("Result on held-out data")).to_be_visible()
            expect(page.get_by_role("button", name="Add the learning curve")).to_be_visible()  # turned off above
            page.screenshot(path=SHOTS / "run_done.png", full_page=True)
            with page.expect_download() as download:
                page.get_by_role("link", name="metrics.json").click()
            assert download.value.suggested_filename.endswith("metrics.json")

            page.get_by_role("link", name="Predict new images").click()
            expect(page.get_by_label("Model")).to_have_value("my-cells")
            page.get_by_label("Images or a zip of images").set_input_files(new_images)
            page.get_by_role("button", name="Predict").click()
            expect(page.locator("#predictions tbody tr")).to_have_count(6, timeout=120_000)
            expect(page.locator("#predictions img.thumb")).to_have_count(6)
            # the thumbnail decodes (waited for: on a loaded machine the row can show before its image has loaded)
            page.wait_for_function("document.querySelector('#predictions img.thumb').complete && "
                                   "document.querySelector('#predictions img.thumb').naturalWidth > 0", timeout=30_000)
            page.screenshot(path=SHOTS / "predict.png", full_page=True)
            with page.expect_download() as download:
                page.get_by_role("link", name="Download CSV").click()
            table = Path(download.value.path()).read_text()
            assert table.startswith("file,predicted,confidence,unsure") and len(table.splitlines()) == 7

            page.goto(f"{server.base}/runs/my-cells")  # the model for a phone, Fiji/QuPath or a script
            page.get_by_label("Use this model elsewhere").select_option("onnx")
            with page.expect_download() as download:
                page.get_by_role("button", name="Download the model").click()
            assert download.value.suggested_filename == "my-cells-onnx.zip"
            with zipfile.ZipFile(download.value.path()) as exported:
                assert {"my-cells-onnx/model.onnx", "my-cells-onnx/model.labels.txt"} <= set(exported.namelist())

            page.goto(f"{server.base}/runs/my-cells")  # the review loop: pick, label, retrain
            page.get_by_role("link", name="Label more images").click()
            page.get_by_label("Unlabelled images or a zip of them").set_input_files(pool)
            page.get_by_label("How many images to label").fill("4")
            page.get_by_role("button", name="Pick images to label").click()
            expect(page.locator("#review tbody tr")).to_have_count(4, timeout=120_000)
            page.get_by_label("label of image 1", exact=True).select_option("WBC")
            page.get_by_label("label of image 2", exact=True).select_option("RBC")
            page.screenshot(path=SHOTS / "review.png", full_page=True)
            page.get_by_role("button", name="Retrain with these labels").click()
            expect(page.get_by_role("heading", name=re.compile("my-cells-more-labels"))).to_be_visible()

            page.get_by_role("link", name="Home").click()
            page.get_by_label("compare my-cells", exact=True).check()
            page.get_by_label("compare from-the-cli").check()
            page.get_by_role("button", name="Compare the ticked runs").click()
            expect(page.locator("#compare-metrics")).to_contain_text("balanced accuracy")
            expect(page.locator("#compare-settings tr.differs").first).to_be_visible()
            page.screenshot(path=SHOTS / "compare.png", full_page=True)

            page.goto(f"{server.base}/new")  # the trait menu lists the chosen table's columns, read in the browser
            page.get_by_label("Find the variants behind a trait").check()
            traits = workspace / "traits.tsv"
            traits.write_text("sample\tYield\tpopulation\nA\t1.5\tnorth\n")
            page.locator("#phenotype_file").set_input_files(traits)
            expect(page.locator("#columns-traits option")).to_have_count(3)
            assert page.eval_on_selector_all("#columns-traits option", "os => os.map(o => o.value)") == \
                ["sample", "Yield", "population"]
            page.get_by_label("Classify DNA sequences").check()  # its own settings, the label table's columns too
            expect(page.get_by_label("Strands")).to_be_visible()
            expect(page.get_by_label("Trait column")).to_be_hidden()
            labels = workspace / "labels.tsv"
            labels.write_text("id\tlabel\tfamily\nseq1\tbound\tA\n")
            page.locator("#labels_file").set_input_files(labels)
            expect(page.locator("#columns-labels option")).to_have_count(3)
            table = workspace / "peaks.csv"  # one table of sequences and labels: its columns are group columns too
            table.write_text("id,sequence,label,chromosome\nseq1,ACGTACGTAC,bound,chr1\n")
            page.locator("#files").set_input_files(table)
            expect(page.locator("#columns-sequence-groups option")).to_have_count(5)
            assert "chromosome" in page.eval_on_selector_all("#columns-sequence-groups option",
                                                             "os => os.map(o => o.value)")
            page.screenshot(path=SHOTS / "new_sequence_run.png", full_page=True)
            page.goto(f"{server.base}/new")  # how long a run would take, measured before it is queued
            page.get_by_label("or give a path on this machine").fill(str(workspace / "data" / "cells" / "manifest.csv"))
            page.get_by_label("Maximum epochs").fill("12")
            page.get_by_role("button", name="How long will it take?").click()
            expect(page.locator("#estimate")).to_contain_text("216 images", timeout=180_000)
            expect(page.locator("#estimate")).to_contain_text("for 12 epochs")
            page.screenshot(path=SHOTS / "time_estimate.png", full_page=True)
            page.get_by_label("Find and count objects in whole images").check()  # object finding has its own button
            page.locator("#annotation_path").fill("/etc/hosts")
            page.locator("#estimate-detect-button").click()
            expect(page.locator("#estimate-detect")).to_contain_text("/etc/hosts")  # outside the roots: refused
            page.goto(f"{server.base}/new")  # a refusal is one readable line, not a traceback
            page.get_by_label("Run name").fill("outside")
            page.get_by_label("or give a path on this machine").fill("/etc")
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_role("alert")).to_contain_text("outside the folders this server may read")
            page.screenshot(path=SHOTS / "refusal.png", full_page=True)
            page.get_by_label("or give a path on this machine").fill("")  # a refused upload is kept, not lost
            page.get_by_label("Run name").fill("my-cells")
            page.get_by_label("Upload files or a zip").set_input_files(bundle)
            page.get_by_role("button", name="Start").click()
            expect(page.get_by_role("alert")).to_contain_text("exists already")
            expect(page.locator("#kept-files")).to_contain_text("my cells.zip")
            page.screenshot(path=SHOTS / "refusal_files_kept.png", full_page=True)
            browser.close()
    finally:
        server.stop()


def test_finished_runs_of_four_tasks_as_a_newcomer_meets_them(tmp_path, trained_run, detect_run, sequence_run,
                                                             pbmc_run):
    """The pages a newcomer walks through after the runs are done, each with a screenshot: Home with one headline
    per run, each task's report as a page (class examples, mistakes, what the model looked at; counts against
    annotations; motifs; clusters against the known label, without a held-out claim), Predict with an object run (counts, each image with its objects), Compare of two tasks
    (said to be not comparable), and rename and delete (delete asks first)."""
    from playwright.sync_api import expect, sync_playwright

    from conftest import dot_images

    SHOTS.mkdir(parents=True, exist_ok=True)
    runs = tmp_path / "runs"
    for source, name in ((trained_run, "cells"), (detect_run, "dots"), (sequence_run, "sequences"), (pbmc_run, "pbmc")):
        shutil.copytree(source, runs / name)
    (tmp_path / "data").mkdir()
    fresh = dot_images(tmp_path / "fresh", n_images=2, side=96, seed=5)
    server = Server(runs, tmp_path / "data")
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(server.url)
            for name in ("cells", "dots", "sequences", "pbmc"):
                expect(page.get_by_role("link", name=name, exact=True)).to_be_visible()
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280  # nothing overflows at 1280 px
            page.screenshot(path=SHOTS / "home_four_tasks.png", full_page=True)

            for name, shown, shot in (
                    ("cells", ['img[alt="A few training images of each class"]', "h3:has-text('Misclassified test images')",
                               "h2:has-text('What the network looked at')"], "report_classify.png"),
                    ("dots", ["h2:has-text('Methods')"], "report_objects.png"),
                    ("sequences", ["h2:has-text('Motifs the network learned')", "th:has-text('Beats random')"], "report_sequences.png"),
                    ("pbmc", ["#contingency", "#embedding-verdict"], "report_clusters.png")):
                page.goto(f"{server.base}/runs/{name}/files/report.html")
                for selector in shown:
                    expect(page.locator(selector).first).to_be_visible()
                if name == "pbmc":  # no held-out data in clustering, so no such claim
                    expect(page.get_by_text("held-out data")).to_have_count(0)
                broken = page.evaluate("[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length")
                assert broken == 0, f"{name}: {broken} figures of the report do not load"
                page.screenshot(path=SHOTS / shot, full_page=True)

            page.goto(f"{server.base}/predict")
            page.get_by_label("Model").select_option("dots")
            page.get_by_label("Images or a zip of images").set_input_files(sorted((fresh / "images").iterdir()))
            page.get_by_role("button", name="Predict").click()
            expect(page.get_by_text("objects in the images")).to_be_visible(timeout=120_000)
            expect(page.locator("img.thumb")).to_have_count(2)
            assert page.evaluate("document.documentElement.scrollWidth") <= 1280
            page.screenshot(path=SHOTS / "predict_objects.png", full_page=True)

            page.goto(f"{server.base}/compare?runs=cells&runs=dots")
            expect(page.get_by_text("not comparable").first).to_be_visible()
            expect(page.locator("#compare-metrics")).to_contain_text("F1 (objects)")  # held-out figures, with CIs
            expect(page.locator("#compare-metrics")).not_to_contain_text("train")     # the rest folded away
            page.locator("#compare-other summary").click()
            expect(page.locator("#compare-other")).to_contain_text(re.compile(r"training time\s*\d+ s"))
            expect(page.locator("#compare-settings")).to_contain_text("compact trains from scratch")
            page.screenshot(path=SHOTS / "compare_two_tasks.png", full_page=True)

            page.goto(f"{server.base}/runs/sequences")
            page.get_by_label("New name").fill("motifs-v1")
            page.get_by_role("button", name="Rename").click()
            expect(page.get_by_role("heading", name=re.compile("motifs-v1"))).to_be_visible()
            asked = []
            page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
            page.get_by_role("button", name="Delete").click()
            expect(page.get_by_role("heading", name=re.compile("motifs-v1"))).to_be_visible()  # dismissed: kept
            assert asked and "trash" in asked[0] and (runs / "motifs-v1").exists()
            page.once("dialog", lambda dialog: dialog.accept())
            page.get_by_role("button", name="Delete").click()
            expect(page.get_by_role("heading", name="Runs")).to_be_visible()
            expect(page.get_by_role("link", name="motifs-v1")).to_have_count(0)
            page.screenshot(path=SHOTS / "after_delete.png", full_page=True)
            browser.close()
    finally:
        server.stop()
