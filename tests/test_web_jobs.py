"""Every task the New run page offers runs for real through the job queue: a cluster run from a path on this
machine and an association run from uploaded files (the image flow is in tests/test_web_browser.py)."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from biolens.simulate import simulate_cohort
from biolens.web import security
from biolens.web.app import Settings, create_app

PBMC = Path(__file__).resolve().parents[2] / "shared" / "data" / "pbmc68k_reduced" / "pbmc68k_reduced.h5ad"


def wait_until_finished(client, name: str, timeout: float = 600) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        job = client.app.app.state.queue.latest_for(name)
        if job and job["status"] not in ("queued", "running"):
            return job["status"]
        time.sleep(1)
    raise AssertionError(f"{name} did not finish in {timeout} s")


@pytest.mark.slow  # a longer end-to-end run: pytest -m slow (keeps the default suite under 15 minutes)
def test_cluster_and_associate_jobs_run_from_the_new_run_form(tmp_path):
    if not PBMC.exists():
        pytest.fail(f"{PBMC} is missing: the shared data sets must sit beside the repository (../shared/data)")
    cohort = simulate_cohort("pair", trait="binary", seed=1, n_individuals=400, length=1000).write(tmp_path / "cohort")
    settings = Settings(runs_dir=tmp_path / "runs", roots=[PBMC.parent])
    app = security.AccessGate(create_app(settings), token=settings.token, max_body_bytes=settings.max_upload_bytes,
                              allow_remote=False)
    csrf = security.csrf_token(settings.token)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        client.get(f"/?token={settings.token}")
        clustered = client.post("/new", data={"csrf": csrf, "task": "cluster", "name": "pbmc", "path": str(PBMC),
                                              "method": "leiden", "compare_with": "bulk_labels"},
                                follow_redirects=False)
        assert clustered.status_code == 303, clustered.text[-500:]
        files = [("files", ("cohort.vcf.gz", cohort["genotypes"].read_bytes(), "application/gzip")),
                 ("phenotype_file", ("traits.tsv", cohort["phenotypes"].read_bytes(), "text/tab-separated-values"))]
        associated = client.post("/new", data={"csrf": csrf, "task": "associate", "name": "assoc", "trait": "status",
                                               "permutations": "5"}, files=files, follow_redirects=False)
        assert associated.status_code == 303, associated.text[-500:]
        assert "queued" in client.get("/runs/assoc").text  # one job at a time: the second waits

        assert wait_until_finished(client, "pbmc") == "complete", client.get("/runs/pbmc").text[-2000:]
        page = client.get("/runs/pbmc").text
        assert "clusters" in page and "ARI" in page and "clusters.csv" in page and "markers.tsv" in page
        assert wait_until_finished(client, "assoc") == "complete", client.get("/runs/assoc").text[-2000:]
        page = client.get("/runs/assoc").text
        assert "AUC deep" in page and "variants.tsv" in page and "interactions.tsv" in page and 'id="report"' in page
        home = client.get("/").text
        assert home.count("status-complete") == 2
