"""The web app's routes and every security refusal, through FastAPI's TestClient over the real app and real files.

The job dispatcher is left stopped here (submitted jobs stay queued), so these tests check what the pages and the
queue do; tests/test_web_browser.py runs real jobs in a real server and browser.
"""
from __future__ import annotations

import html
import io
import json
import re
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from markupsafe import escape

from biolens.web import security
from biolens.web.app import Settings, create_app

SLICE = Path(__file__).resolve().parents[1] / "examples" / "blood_cells_slice"


@pytest.fixture
def server(tmp_path):
    settings = Settings(runs_dir=tmp_path / "runs", roots=[tmp_path / "data"], start_jobs=False,
                        max_upload_bytes=2 << 20)
    (tmp_path / "data").mkdir()
    app = security.AccessGate(create_app(settings), token=settings.token, max_body_bytes=settings.max_upload_bytes,
                              allow_remote=False)
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        client.get(f"/?token={settings.token}")  # the printed address: sets the cookie
        client.settings = settings
        client.csrf = security.csrf_token(settings.token)
        yield client


def alert(response) -> str:
    text = response.text
    start = text.find('role="alert"')
    return text[text.find(">", start) + 1:text.find("</p>", start)] if start >= 0 else ""


def zip_bytes(entries: dict[str, bytes], links: dict[str, str] = ()) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
        for name, target in dict(links).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            bundle.writestr(info, target)
    return buffer.getvalue()


def new_run(server, files=None, **fields):
    data = {"csrf": server.csrf, "task": "classify", "name": "cells", "epochs": "2", **fields}
    return server.post("/new", data=data, files=files or [], follow_redirects=False)


def test_token_is_required_on_every_route(server):
    token = server.settings.token
    anonymous = TestClient(server.app, base_url="http://127.0.0.1:8765")
    for path in ("/", "/new", "/predict", "/compare", "/runs/x", "/runs/x/events", "/static/app.js", "/health"):
        refused = anonymous.get(path)
        assert refused.status_code == 403 and "?token=" in refused.text, path
    assert anonymous.get("/?token=wrong", follow_redirects=False).status_code == 403
    anonymous.cookies.set(security.TOKEN_COOKIE, "wrong")
    assert anonymous.get("/").status_code == 403
    assert anonymous.post("/new", data={"name": "x"}).status_code == 403
    first = TestClient(server.app, base_url="http://127.0.0.1:8765").get(f"/new?token={token}", follow_redirects=False)
    assert first.status_code == 303 and first.headers["location"] == "/new"  # the token leaves the address bar
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_other_hosts_are_refused(server):
    # DNS rebinding: a web page whose name now points at 127.0.0.1 still sends its own Host
    assert server.get("/", headers={"host": "evil.example:8765"}).status_code == 400


def test_state_changes_need_the_csrf_token_and_our_origin(server):
    missing = server.post("/new", data={"task": "classify", "name": "cells"})
    assert missing.status_code == 403 and "security token" in missing.text
    wrong = server.post("/new", data={"csrf": "x" * 40, "task": "classify", "name": "cells"})
    assert wrong.status_code == 403
    foreign = server.post("/new", data={"csrf": server.csrf, "name": "cells"}, headers={"origin": "http://evil.example"})
    assert foreign.status_code == 403 and "another web site" in foreign.text
    for action in ("cancel", "resume"):
        assert server.post(f"/runs/cells/{action}", data={}).status_code in (403, 404)


def test_pages_render(server):
    for path, words in (("/", "No runs yet"), ("/new", "Run name"), ("/predict", "No finished classification"),
                        ("/compare", "Runs to compare")):
        page = server.get(path)
        assert page.status_code == 200 and words in page.text, path
        assert 'lang="en"' in page.text and 'aria-label="Main"' in page.text
    form = server.get("/new").text  # every field a person types into or picks has a label
    fields = re.findall(r'<(?:input|select)(?![^>]*type="(?:hidden|radio|checkbox)")[^>]*\bid="([^"]+)"', form)
    assert len(fields) >= 12
    assert all(f'<label for="{field}"' in form for field in fields), fields
    assert server.get("/runs/nothing").status_code == 404
    assert server.get("/runs/..%2F..%2Fetc").status_code == 404


def test_path_outside_the_roots_is_refused(server, tmp_path):
    outside = tmp_path / "elsewhere"
    shutil.copytree(SLICE, outside)
    refused = new_run(server, path=str(outside))
    assert refused.status_code == 400 and "outside the folders this server may read" in alert(refused)
    sneaky = new_run(server, path=str(tmp_path / "data" / ".." / "elsewhere"))
    assert "outside the folders" in alert(sneaky)
    (tmp_path / "data" / "link").symlink_to(outside)
    assert "outside the folders" in alert(new_run(server, path=str(tmp_path / "data" / "link")))
    assert "does not exist" in alert(new_run(server, path=str(tmp_path / "data" / "missing")))


def test_a_path_inside_the_roots_queues_a_job(server, tmp_path):
    shutil.copytree(SLICE, tmp_path / "data" / "cells")
    queued = new_run(server, path=str(tmp_path / "data" / "cells" / "manifest.csv"), group_column="source_image")
    assert queued.status_code == 303 and queued.headers["location"] == "/runs/cells"
    page = server.get("/runs/cells")
    assert "queued" in page.text and 'id="cancel"' in page.text
    assert "queued" in server.get("/").text
    again = new_run(server, path=str(tmp_path / "data" / "cells"))
    assert "exists already" in alert(again)
    cancelled = server.post("/runs/cells/cancel", data={"csrf": server.csrf}, follow_redirects=False)
    assert cancelled.status_code == 303
    assert "cancelled" in server.get("/runs/cells").text
    assert server.app.app.state.queue.latest_for("cells")["status"] == "cancelled"


def test_network_and_image_size_are_chosen_in_the_form_and_reach_the_job(server, tmp_path):
    form = server.get("/new").text
    assert 'name="backbone"' in form and "MobileNetV3 Small" in form and 'name="image_size"' in form
    shutil.copytree(SLICE, tmp_path / "data" / "cells")
    manifest = str(tmp_path / "data" / "cells" / "manifest.csv")
    queued = new_run(server, name="mobile", path=manifest, backbone="MobileNetV3Small",
                     image_size="96")
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("mobile")["params"])
    assert params["backbone"] == "MobileNetV3Small" and params["image_size"] == 96
    server.post("/runs/mobile/cancel", data={"csrf": server.csrf}, follow_redirects=False)
    odd = new_run(server, name="odd", path=manifest, backbone="../../etc", image_size="96")
    assert odd.status_code == 303  # an unknown network falls back to the compact one, never reaches the engine
    assert json.loads(server.app.app.state.queue.latest_for("odd")["params"])["backbone"] == "compact"
    server.post("/runs/odd/cancel", data={"csrf": server.csrf}, follow_redirects=False)


def test_the_time_estimate_reads_only_inside_the_roots(server):
    """The measured estimate itself is exercised in the browser test (tests/test_web_browser.py)."""
    assert 'id="estimate-button"' in server.get("/new").text
    outside = server.get("/estimate", params={"path": "/etc"})
    assert outside.status_code == 400 and "/etc" in outside.json()["detail"]
    assert 'id="estimate-detect-button"' in server.get("/new").text  # object finding: the same probe, its own button
    outside = server.get("/estimate", params={"path": "/etc/hosts", "task": "detect"})
    assert outside.status_code == 400 and "/etc/hosts" in outside.json()["detail"]


def test_pretrain_is_offered_and_queued_with_the_engine_gate(server, tmp_path):
    assert "Learn what your images look like" in server.get("/new").text
    shutil.copytree(SLICE / "images", tmp_path / "data" / "cells")
    refused = new_run(server, task="pretrain", name="feat", path=str(tmp_path / "data" / "cells"),
                      pretrain_epochs="-3")
    assert refused.status_code == 400
    queued = new_run(server, task="pretrain", name="feat", path=str(tmp_path / "data" / "cells"), pretrain_epochs="2")
    assert queued.status_code == 303 and queued.headers["location"] == "/runs/feat"
    job = server.app.app.state.queue.latest_for("feat")
    assert job["task"] == "pretrain" and json.loads(job["params"])["images"] == [str(tmp_path / "data" / "cells")]
    server.post("/runs/feat/cancel", data={"csrf": server.csrf}, follow_redirects=False)


def test_a_finished_pretraining_run_starts_a_classifier_or_embeds_images_to_cluster_from_the_form(
        server, tmp_path, pretrain_run):
    """The pretraining task says its features are for later clustering or classifying: the form offers finished
    pretraining runs for both (`--init-from`), with the cluster settings of the CLI (k, resolution, what rows are,
    what values are); a run that is not a finished pretraining run is refused at the form."""
    assert 'id="init_from"' in server.get("/new").text and "(none has finished yet)" in server.get("/new").text
    shutil.copytree(pretrain_run, tmp_path / "runs" / "pre")
    shutil.copytree(SLICE / "images", tmp_path / "data" / "cells")
    form = server.get("/new").text
    assert '<option value="pre">pre</option>' in form and "(none has finished yet)" not in form
    queue = server.app.app.state.queue

    classified = new_run(server, name="from-pre", path=str(tmp_path / "data" / "cells"), init_from="pre")
    assert classified.status_code == 303
    assert json.loads(queue.latest_for("from-pre")["params"])["init_from"] == str(tmp_path / "runs" / "pre")
    clustered = new_run(server, task="cluster", name="groups", path=str(tmp_path / "data" / "cells"),
                        method="kmeans", k="3", cluster_init_from="pre", rows_are="auto", data_type="auto",
                        compare_with="folder")
    assert clustered.status_code == 303
    params = json.loads(queue.latest_for("groups")["params"])
    assert params["init_from"] == str(tmp_path / "runs" / "pre") and params["k"] == 3 and params["transpose"] is None
    from biolens.runs import read_json
    from biolens.web.jobs import execute

    execute("cluster", str(tmp_path / "runs" / "groups"), params, str(tmp_path / "job.log"), str(tmp_path / "out"))
    assert read_json(tmp_path / "out")["status"] == "complete", (tmp_path / "job.log").read_text()[-2000:]
    metrics = read_json(tmp_path / "runs" / "groups" / "metrics.json")
    assert metrics["embedding"]["self_supervised"]["from_task"] == "pretrain" and metrics["n_clusters"] == 3
    # the three cell types told apart on the pretrained features better than on the pixels' principal components
    assert metrics["compare"]["deep"]["ari"] > metrics["compare"]["reference"]["ari"] + 0.2
    turned = new_run(server, task="cluster", name="genes-rows", path=str(tmp_path / "data" / "cells"),
                     rows_are="features", resolution="1.5")
    assert turned.status_code == 303
    params = json.loads(queue.latest_for("genes-rows")["params"])
    assert params["transpose"] is True and params["resolution"] == 1.5 and params["init_from"] == ""
    ignored = new_run(server, task="cluster", name="five", path=str(tmp_path / "data" / "cells"), k="5")
    assert ignored.status_code == 400 and "the number of clusters is k-means'" in alert(ignored)
    unknown = new_run(server, name="from-nothing", path=str(tmp_path / "data" / "cells"), init_from="nope")
    assert unknown.status_code == 400 and "no finished pretraining run called 'nope'" in alert(unknown)


def test_multi_page_tiffs_are_asked_about_at_the_form_and_the_answer_reaches_the_job(server, tmp_path):
    """z-stacks given without saying what their pages are: refused at the form in its own words (not the CLI's
    --stack), and queued once the Multi-page TIFFs field says max projection."""
    import tifffile

    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (tmp_path / "data" / "stacks" / label).mkdir(parents=True)
        for k in range(6):
            tifffile.imwrite(tmp_path / "data" / "stacks" / label / f"{label}{k}.tif",
                             (rng.random((5, 32, 32)) * 255).astype(np.uint8))
    path = str(tmp_path / "data" / "stacks")
    asked = new_run(server, name="stacks", path=path)
    assert asked.status_code == 400
    said = alert(asked)
    assert "a multi-page TIFF (5 pages)" in said and "the Multi-page TIFFs field" in said and "--stack" not in said
    assert new_run(server, name="stacks", path=path, stack="max").status_code == 303
    assert json.loads(server.app.app.state.queue.latest_for("stacks")["params"])["stack"] == "max"
    for task, field in (("cluster", "cluster_stack"), ("pretrain", "pretrain_stack")):  # unlabelled images alike
        asked = new_run(server, task=task, name=f"{task}-stacks", path=path)
        assert asked.status_code == 400 and "a multi-page TIFF (5 pages)" in alert(asked)
        assert new_run(server, task=task, name=f"{task}-stacks", path=path, **{field: "first"}).status_code == 303
        assert json.loads(server.app.app.state.queue.latest_for(f"{task}-stacks")["params"])["stack"] == "first"

    from conftest import as_z_stacks, dot_images  # objects in z-stacks: the same question in the object form

    dots = dot_images(tmp_path / "data" / "dots", n_images=3, side=64, seed=2)
    as_z_stacks(dots)
    asked = new_run(server, task="detect", name="dot-stacks", path=str(dots))
    assert asked.status_code == 400 and "a multi-page TIFF (3 z-planes)" in alert(asked)
    assert new_run(server, task="detect", name="dot-stacks", path=str(dots), detect_stack="mean").status_code == 303
    assert json.loads(server.app.app.state.queue.latest_for("dot-stacks")["params"])["stack"] == "mean"


def test_sequence_classification_is_offered_checked_at_submit_and_queued(server, sequence_data):
    """FASTA and label table uploaded as a person would; the label table's mistakes are said at the form, in its
    words, before anything is queued."""
    assert "Classify DNA sequences" in server.get("/new").text
    fasta, labels = sequence_data["sequences"], sequence_data["labels"]

    def submit(name, labels_bytes, **fields):
        files = [("files", (fasta.name, fasta.read_bytes(), "text/plain")),
                 ("labels_file", ("labels.tsv", labels_bytes, "text/tab-separated-values"))]
        return new_run(server, files=files, task="sequence_classify", name=name, **fields)

    table = labels.read_text()
    no_label = submit("seq-bad", table.replace("\tlabel", "\tcell_type\tbatch", 1).encode())
    assert no_label.status_code == 400 and "no label column" in alert(no_label)
    assert "the label table" in alert(no_label) or "labels.tsv" in alert(no_label)
    assert str(server.settings.uploads_dir) not in alert(no_label)  # upload paths are cut to the uploaded names
    wrong_ids = submit("seq-bad", table.replace("\n", "\nx", 1).encode())
    assert wrong_ids.status_code == 400 and "have no sequence in" in alert(wrong_ids)
    no_group = submit("seq-bad", table.encode(), sequence_group_column="family")
    assert no_group.status_code == 400 and "'family'" in alert(no_group)
    image = sorted((SLICE / "images" / "RBC").iterdir())[0]
    not_fasta = new_run(server, task="sequence_classify", name="seq-bad",
                        files=[("files", (image.name, image.read_bytes(), "image/png")),
                               ("labels_file", ("labels.tsv", table.encode(), "text/plain"))])
    assert not_fasta.status_code == 400 and "neither FASTA nor a table with a sequence column" in alert(not_fasta)
    assert server.app.app.state.queue.latest_for("seq-bad") is None

    queued = submit("seq", table.encode(), length="200", strands="single", sequence_epochs="5",
                    known_motifs="jaspar-plants", sequence_learning_curve="off")
    assert queued.status_code == 303 and queued.headers["location"] == "/runs/seq", alert(queued)
    job = server.app.app.state.queue.latest_for("seq")
    params = json.loads(job["params"])
    assert job["task"] == "sequence_classify" and Path(params["data"]).name == fasta.name
    assert Path(params["labels"]).read_text() == table
    assert (params["length"], params["both_strands"], params["epochs"]) == (200, False, 5)
    assert params["known_motifs"] == "jaspar-plants" and params["learning_curve"] == "off"
    server.post("/runs/seq/cancel", data={"csrf": server.csrf}, follow_redirects=False)


def test_one_fasta_per_class_uploaded_without_a_label_table_is_queued(server, sequence_data):
    """Two peak sets chosen together, the file names their classes: no label table asked for."""
    lines = sequence_data["sequences"].read_text().splitlines()
    records = dict(zip((h[1:] for h in lines[0::2]), lines[1::2]))
    labels = {row.split("\t")[0]: row.split("\t")[1] for row in sequence_data["labels"].read_text().splitlines()[1:]}
    files = [("files", (f"{label}.fa", "".join(f">{i}\n{records[i]}\n" for i, l in labels.items() if l == label).encode(),
                        "text/plain")) for label in ("nfkb", "ebox")]
    queued = new_run(server, files=files, task="sequence_classify", name="peaks", sequence_epochs="3")
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("peaks")["params"])
    assert params["labels"] is None and sorted(p.name for p in Path(params["data"]).iterdir()) == ["ebox.fa", "nfkb.fa"]
    server.post("/runs/peaks/cancel", data={"csrf": server.csrf}, follow_redirects=False)
    one = new_run(server, files=files[:1], task="sequence_classify", name="peaks-one")
    assert one.status_code == 400 and "needs its label table" in alert(one) and "one FASTA file per class" in alert(one)


def test_a_table_of_sequences_and_labels_uploaded_alone_is_queued_and_predicted(server, tmp_path, sequence_data,
                                                                                sequence_run):
    """A CSV with a sequence and a label column (as benchmark sets come) is the whole input: no label table."""
    lines = sequence_data["sequences"].read_text().splitlines()
    labels = dict(row.split("\t") for row in sequence_data["labels"].read_text().splitlines()[1:])
    table = "sequence,label\n" + "".join(f"{s},{labels[h[1:]]}\n" for h, s in zip(lines[0::2], lines[1::2])
                                          if h[1:] in labels)
    queued = new_run(server, files=[("files", ("peaks.csv", table.encode(), "text/csv"))], task="sequence_classify",
                     name="seqtable", sequence_epochs="3")
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("seqtable")["params"])
    assert params["labels"] is None and Path(params["data"]).read_text() == table
    server.post("/runs/seqtable/cancel", data={"csrf": server.csrf}, follow_redirects=False)

    shutil.copytree(sequence_run, tmp_path / "runs" / "motifs-table")
    rows = "sequence\n" + "".join(f"{s}\n" for s in lines[1:14:2])
    predicted = server.post("/predict", data={"csrf": server.csrf, "run": "motifs-table"},
                            files=[("files", ("new.csv", rows.encode(), "text/csv"))])
    assert predicted.status_code == 200, alert(predicted)
    assert predicted.text.count("<tr ") == 7 and "line_8" in predicted.text


def test_peaks_as_narrowpeak_files_with_a_genome_on_this_machine_are_queued(server, tmp_path):
    """Two factors' narrowPeak files uploaded, the genome named by its path (too large to upload)."""
    from test_sequence_classify import _peaks_and_genome

    genome, peaks, _ = _peaks_and_genome(tmp_path / "data" / "peaks", np.random.default_rng(7))  # under the root
    files = [("files", (p.name, p.read_bytes(), "text/plain")) for p in sorted(peaks.iterdir())]
    queued = new_run(server, files=files, task="sequence_classify", name="narrow", genome_path=str(genome))
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("narrow")["params"])
    assert params["genome"] == str(genome) and params["labels"] is None
    assert sorted(p.name for p in Path(params["data"]).iterdir()) == ["GATA1.narrowPeak", "TAL1.narrowPeak"]
    server.post("/runs/narrow/cancel", data={"csrf": server.csrf}, follow_redirects=False)
    renamed = tmp_path / "data" / "ensembl.fa"
    renamed.write_text(genome.read_text().replace(">chr", ">"))
    refused = new_run(server, files=files, task="sequence_classify", name="narrow-bad", genome_path=str(renamed))
    assert refused.status_code == 400 and "chromosome 'chr1' is not in ensembl.fa" in alert(refused)
    outside = tmp_path / "elsewhere.fa"  # a genome outside the folders the server may read
    outside.write_text(genome.read_text())
    refused = new_run(server, files=files, task="sequence_classify", name="narrow-bad", genome_path=str(outside))
    assert refused.status_code == 400 and "outside the folders this server may read" in alert(refused)


def test_a_finished_sequence_run_predicts_an_uploaded_fasta(server, tmp_path, sequence_run):
    from biolens.simulate import simulate_labelled_sequences

    shutil.copytree(sequence_run, tmp_path / "runs" / "motifs")
    assert "Predict new sequences" in server.get("/runs/motifs").text
    assert '<option value="motifs"' in server.get("/predict").text
    fresh = simulate_labelled_sequences(tmp_path / "new", n_per_class=4, seed=12)["sequences"]
    predicted = server.post("/predict", data={"csrf": server.csrf, "run": "motifs"},
                            files=[("files", ("new.fasta", fresh.read_bytes(), "text/plain"))])
    assert predicted.status_code == 200, alert(predicted)
    assert predicted.text.count("<tr ") == 12 and "12 sequences (" in predicted.text
    assert "<th scope=\"col\">image</th>" not in predicted.text.split('id="predictions"')[1]
    batch = predicted.text.split("/predictions/")[1].split("/")[0]
    assert server.get(f"/predictions/{batch}/predictions.csv").text.startswith("id,predicted,confidence,unsure")
    assert f"/predictions/{batch}/predictions_motif_sites.tsv" in predicted.text  # where the learned motifs sit
    sites = server.get(f"/predictions/{batch}/predictions_motif_sites.tsv")
    assert sites.status_code == 200 and sites.text.startswith("motif\tknown_motif\tfavours\tid\tstart")
    assert server.get(f"/predictions/{batch}/run.json").status_code == 404  # only the predictions' own files
    page = server.get("/runs/motifs").text  # and its model goes elsewhere like an image model's
    assert 'action="/runs/motifs/export"' in page and "one-hot DNA" in page
    download = server.post("/runs/motifs/export", data={"csrf": server.csrf, "format": "onnx"})
    assert download.status_code == 200, alert(download)
    with zipfile.ZipFile(io.BytesIO(download.content)) as bundle:
        assert {"motifs-onnx/model.onnx", "motifs-onnx/model.labels.txt", "motifs-onnx/model.json"} <= set(bundle.namelist())
        assert json.loads(bundle.read("motifs-onnx/model.json"))["input_name"] == "one_hot"


def test_uploaded_zip_is_unpacked_to_its_class_folders(server):
    images = {f"cells/{label}/{path.name}": path.read_bytes()
              for label in ("RBC", "WBC") for path in sorted((SLICE / "images" / label).iterdir())[:3]}
    accepted = new_run(server, files=[("files", ("cells.zip", zip_bytes(images), "application/zip"))])
    assert accepted.status_code == 303
    queue = server.app.app.state.queue
    data = Path(json.loads(queue.jobs()[0]["params"])["data"])
    assert sorted(p.name for p in data.iterdir()) == ["RBC", "WBC"] and len(list(data.rglob("*.jpg"))) == 6


@pytest.mark.parametrize("entries,links,words", [
    ({"../../escape.jpg": b"\xff\xd8\xff" + b"0" * 10}, {}, "points outside its folder"),
    ({"/etc/cron.d/x.jpg": b"\xff\xd8\xff"}, {}, "points outside its folder"),
    ({"cells/a.jpg": b"\xff\xd8\xff"}, {"cells/b.jpg": "/etc/passwd"}, "symbolic link"),
    ({"cells/bomb.jpg": b"\0" * (50 << 20)}, {}, "zip bombs"),
])
def test_dangerous_zips_are_refused(server, tmp_path, entries, links, words):
    response = new_run(server, files=[("files", ("cells.zip", zip_bytes(entries, links), "application/zip"))])
    assert response.status_code == 400 and words in alert(response)
    assert not (tmp_path / "escape.jpg").exists() and not (tmp_path / "runs" / "escape.jpg").exists()
    assert not any(p.is_symlink() for p in (tmp_path / "runs").rglob("*"))


def test_uploads_are_size_limited_and_type_checked(server):
    big = b"\xff\xd8\xff" + b"\0" * (3 << 20)
    too_large = new_run(server, files=[("files", ("big.jpg", big, "image/jpeg"))])
    assert too_large.status_code == 413 and "larger than this server accepts" in too_large.text

    def chunked():  # no Content-Length: counted while read
        yield b"--x\r\nContent-Disposition: form-data; name=\"csrf\"\r\n\r\n" + server.csrf.encode() + b"\r\n"
        for _ in range(6):
            yield b"\0" * (1 << 20)

    streamed = server.post("/new", content=chunked(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert streamed.status_code == 413
    fake = new_run(server, files=[("files", ("cell.png", b"MZ\x90\x00 not an image", "image/png"))])
    assert fake.status_code == 400 and "not a PNG file" in alert(fake)
    script = new_run(server, files=[("files", ("run.sh", b"#!/bin/sh", "text/x-sh"))])
    assert "does not read .sh files" in alert(script)
    folder_escape = new_run(server, files=[("files", ("../../x.jpg", b"\xff\xd8\xff", "image/jpeg"))])
    assert "points outside its folder" in alert(folder_escape)


def test_run_files_cannot_escape_the_run_folder(server, tmp_path, trained_run):
    shutil.copytree(trained_run, tmp_path / "runs" / "cli-run")
    (tmp_path / "secret.txt").write_text("TOP-SECRET-CONTENT")
    assert server.get("/runs/cli-run/files/report.html").status_code == 200
    for path in ("../../secret.txt", "..%2F..%2Fsecret.txt", "/etc/passwd"):
        response = server.get(f"/runs/cli-run/files/{path}")
        assert response.status_code == 404 and "TOP-SECRET" not in response.text


def test_home_run_compare_and_predict_over_a_real_run(server, tmp_path, trained_run):
    for name in ("cli-run", "cli-run-2"):
        shutil.copytree(trained_run, tmp_path / "runs" / name)
    home = server.get("/")
    assert "cli-run" in home.text and "balanced accuracy" in home.text and "complete" in home.text
    run_page = server.get("/runs/cli-run")
    assert 'id="report"' in run_page.text and "model.keras" in run_page.text and "Predict new images" in run_page.text
    events = server.get("/runs/cli-run/events")
    assert events.status_code == 200 and '"done": true' in events.text and '"status": "complete"' in events.text
    compare = server.get("/compare?runs=cli-run&runs=cli-run-2")
    assert compare.status_code == 200 and "balanced accuracy" in compare.text and "epochs" in compare.text
    assert "balanced_accuracy" not in compare.text.split("compare-metrics")[1]  # names a person reads
    assert "No clear difference between cli-run and cli-run-2" in compare.text  # same model, same test images
    assert "Choose two or more" in server.get("/compare?runs=cli-run").text
    resume = server.post("/runs/cli-run/resume", data={"csrf": server.csrf})
    assert resume.status_code == 409 and "nothing to resume" in resume.text

    menu = server.get("/predict").text
    assert re.search(r'<option value="" disabled\s+selected>choose a trained model', menu)  # no silent default
    assert re.search(r'<option value="cli-run" >cli-run — [^<]*: [^<]*\d', menu)           # with its held-out figure
    assert re.search(r'<option value="cli-run" selected>', server.get("/predict?run=cli-run").text)
    images = sorted((SLICE / "images" / "WBC").iterdir())[:2] + sorted((SLICE / "images" / "RBC").iterdir())[:2]
    predicted = server.post("/predict", data={"csrf": server.csrf, "run": "cli-run"},
                            files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in images])
    assert predicted.status_code == 200, alert(predicted)
    assert predicted.text.count("<tr ") == 4 and all(p.name in predicted.text for p in images)
    assert "RBC: " in predicted.text or "WBC: " in predicted.text  # counts per class
    thumbs = re.findall(r'src="(/predictions/[0-9a-f]{12}/thumbs/\d+\.png)"', predicted.text)
    assert len(thumbs) == 4 and server.get(thumbs[0]).headers["content-type"] == "image/png"
    batch = predicted.text.split("/predictions/")[1].split("/")[0]
    table = server.get(f"/predictions/{batch}/predictions.csv")
    assert table.status_code == 200 and table.text.startswith("file,predicted,confidence,unsure")
    assert server.get("/predictions/../../x.csv").status_code == 404
    assert server.get(f"/predictions/{batch}/run.json").status_code == 404
    not_a_run = server.post("/predict", data={"csrf": server.csrf, "run": "missing"},
                            files=[("files", (images[0].name, images[0].read_bytes(), "image/jpeg"))])
    assert not_a_run.status_code == 400 and "no run called" in not_a_run.text


def test_remote_host_needs_an_explicit_flag():
    from biolens.errors import InputError
    from biolens.web.serve import serve

    with pytest.raises(InputError, match="--allow-remote"):
        serve(host="0.0.0.0", open_browser=False)


def test_review_loop_picks_images_takes_labels_and_queues_a_retrain(server, tmp_path, trained_run):
    shutil.copytree(trained_run, tmp_path / "runs" / "cli-run")
    pool = sorted((SLICE / "images" / "WBC").iterdir())[:6] + sorted((SLICE / "images" / "Platelets").iterdir())[:6]
    picked = server.post("/runs/cli-run/review", data={"csrf": server.csrf, "n": "5"},
                         files=[("files", (p.name, p.read_bytes(), "image/jpeg")) for p in pool], follow_redirects=False)
    assert picked.status_code == 303, alert(picked)
    sheet_url = picked.headers["location"]
    sheet = server.get(sheet_url).text
    assert sheet.count('<select id="label_') == 5 and "not sure (skip)" in sheet
    image = server.get(f"{sheet_url}/images/0")
    assert image.status_code == 200 and image.content[:3] == b"\xff\xd8\xff"
    assert server.get(f"{sheet_url}/images/99").status_code == 404

    wrong = server.post(sheet_url, data={"csrf": server.csrf, "label_0": "Neuron", "name": "more"})
    assert wrong.status_code == 400 and "not one of the classes" in alert(wrong)
    labels = {"label_0": "WBC", "label_1": "Platelets", "label_3": "WBC"}
    queued = server.post(sheet_url, data={"csrf": server.csrf, "name": "cli-run-more", **labels}, follow_redirects=False)
    assert queued.status_code == 303 and queued.headers["location"] == "/runs/cli-run-more"
    job = server.app.app.state.queue.latest_for("cli-run-more")
    params = json.loads(job["params"])
    base = json.loads((trained_run / "run.json").read_text())["config"]
    assert params["data"] == base["data"] and params["seed"] == base["seed"]  # same data and split: same test set
    added = pd.read_csv(params["add_labels"], keep_default_na=False)
    assert list(added.label[:4]) == ["WBC", "Platelets", "", "WBC"] and len(added) == 5
    not_finished = server.post("/runs/cli-run-more/review", data={"csrf": server.csrf, "n": "5"})
    assert not_finished.status_code in (404, 409)


def test_every_stage_reaches_the_run_page_with_a_bar_and_an_eta(tmp_path):
    """The CLI's stages (console.step, progress bars, training epochs) are what the Run page shows: nested stages
    outermost first, counts and an ETA from the pace so far, nothing once they end."""
    import time

    from biolens import console
    from biolens.web import views

    with console.follow(tmp_path):
        with console.step("classical epistasis scans"):
            with console.progress_bar("permutations", 10) as advance:
                advance(4)
                time.sleep(0.6)
                advance(1)  # written: more than 0.5 s since the last write
                shown = views.stages(tmp_path)
                assert [s["name"] for s in shown] == ["classical epistasis scans", "permutations"]
                assert shown[0]["fraction"] is None and shown[1]["fraction"] == 0.5
                assert shown[1]["count"] == "5 of 10 items" and shown[1]["eta_s"] is not None
        assert views.stages(tmp_path) == []
    finished = json.loads((tmp_path / console.PROGRESS_FILE).read_text())["finished"]
    assert [s["name"] for s in finished] == ["permutations", "classical epistasis scans"]
    assert console.PROGRESS_FILE not in views.downloads(tmp_path)[1]


def test_compare_says_which_run_is_better_only_on_the_same_test_images(tmp_path):
    from biolens.web import views

    rng = np.random.default_rng(0)
    truth = rng.choice(["RBC", "WBC"], 300)

    def run(name, task, right_share, files=None):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "run.json").write_text(json.dumps({"task": task, "status": "complete"}))
        right = rng.random(len(truth)) < right_share
        predicted = np.where(right, truth, np.where(truth == "RBC", "WBC", "RBC"))
        rows = ["file,true,predicted,confidence,unsure"] + [f"{(files or 'img')}_{k}.png,{t},{p},0.9,False"
                                                             for k, (t, p) in enumerate(zip(truth, predicted))]
        (folder / "predictions.csv").write_text("\n".join(rows) + "\n")

    run("good", "classify", 0.95)
    run("poor", "classify", 0.6)
    run("other-images", "classify", 0.95, files="other")
    run("clusters", "cluster", 0.5)
    said = views.verdicts(tmp_path, ["good", "poor", "other-images", "clusters"])
    assert said[0].startswith("good is better than poor") and "paired bootstrap" in said[0]
    assert "different images" in said[1]                     # good vs other-images
    assert "not comparable: different tasks" in said[2]       # good vs clusters
    assert views.verdicts(tmp_path, ["good", "good"])[0].startswith("No clear difference")


def test_compare_of_object_runs_pairs_their_held_out_units(tmp_path, detect_run):
    """Two object-finding runs tested on the same units get a paired verdict on object F1; a run tested on other
    images is said not to be comparable."""
    from biolens.web import views

    shutil.copytree(detect_run, tmp_path / "first")
    shutil.copytree(detect_run, tmp_path / "missing-half")
    counts = pd.read_csv(detect_run / "test_counts.tsv", sep="\t")
    rng = np.random.default_rng(1)
    rng_true = rng.integers(20, 60, 30)
    many = pd.DataFrame({"unit": range(30), "image": [f"u{k}.png" for k in range(30)], "label": counts["label"][0],
                         "true": rng_true, "found": rng_true, "matched": rng_true - rng.integers(0, 3, 30)})
    many.to_csv(tmp_path / "first" / "test_counts.tsv", sep="\t", index=False)
    worse = many.assign(found=many["true"] // 2, matched=np.minimum(many["matched"], many["true"] // 2))
    worse.to_csv(tmp_path / "missing-half" / "test_counts.tsv", sep="\t", index=False)
    shutil.copytree(detect_run, tmp_path / "elsewhere")  # its own (real) test units, not the 30 above
    said = views.verdicts(tmp_path, ["first", "missing-half", "elsewhere"])
    assert said[0].startswith("first is better than missing-half") and "30 held-out units" in said[0], said[0]
    assert "different held-out images" in said[1]
    assert views.verdicts(tmp_path, ["first", "first"])[0].startswith("No clear difference")


def test_predict_with_an_object_run_shows_counts_per_class_and_each_image_with_its_objects(server, tmp_path, detect_run):
    from conftest import dot_images

    shutil.copytree(detect_run, tmp_path / "runs" / "dots")
    fresh = dot_images(tmp_path / "fresh", n_images=2, side=96, seed=5)
    images = sorted((fresh / "images").iterdir())
    predicted = server.post("/predict", data={"csrf": server.csrf, "run": "dots"},
                            files=[("files", (p.name, p.read_bytes(), "image/png")) for p in images])
    assert predicted.status_code == 200, alert(predicted)
    assert "objects in the images (" in predicted.text and all(p.name in predicted.text for p in images)
    thumbs = re.findall(r'src="(/predictions/[0-9a-f]{12}/thumbs/\d+\.png)"', predicted.text)
    assert len(thumbs) == 2
    drawn = server.get(thumbs[0])
    assert drawn.status_code == 200 and drawn.headers["content-type"] == "image/png"
    assert server.get(thumbs[0].replace(".png", ".svg")).status_code == 404


def test_a_finished_classifier_downloads_as_a_model_for_use_elsewhere(server, tmp_path, trained_run, detect_run):
    """The Run page's export: a zip with the model, its classes and description; the TFLite interpreter gives the
    probabilities the run's own predict gives."""
    from biolens.tasks.export import check_round_trip
    from test_export import _pixels

    shutil.copytree(trained_run, tmp_path / "runs" / "cells")
    shutil.copytree(detect_run, tmp_path / "runs" / "dots")
    page = server.get("/runs/cells").text
    assert 'action="/runs/cells/export"' in page and "TensorFlow Lite" in page and "ONNX" in page
    assert 'action="/runs/dots/export"' not in server.get("/runs/dots").text
    assert server.post("/runs/cells/export", data={"format": "tflite"}).status_code == 403  # CSRF, as every POST
    download = server.post("/runs/cells/export", data={"csrf": server.csrf, "format": "tflite"})
    assert download.status_code == 200, download.text[:500]
    assert 'filename="cells-tflite.zip"' in download.headers["content-disposition"]
    with zipfile.ZipFile(io.BytesIO(download.content)) as bundle:
        assert sorted(n for n in bundle.namelist() if not n.endswith("/")) == ["cells-tflite/model.json", "cells-tflite/model.labels.txt",
                                             "cells-tflite/model.tflite"]
        bundle.extractall(tmp_path / "unpacked")
    unpacked = tmp_path / "unpacked" / "cells-tflite"
    info = json.loads((trained_run / "run.json").read_text())
    assert (unpacked / "model.labels.txt").read_text().split() == info["class_names"]
    images = sorted((SLICE / "images" / "WBC").iterdir())[:2] + sorted((SLICE / "images" / "RBC").iterdir())[:2]
    predicted = tmp_path / "predicted.csv"
    import biolens

    biolens.predict(trained_run, images, out=predicted)
    names, pixels = _pixels(trained_run, images)
    expected = pd.read_csv(predicted).set_index("file").loc[names, [f"prob_{c}" for c in info["class_names"]]]
    np.testing.assert_allclose(check_round_trip(unpacked / "model.tflite", "tflite", pixels), expected.to_numpy(),
                               atol=1.5e-4)
    assert not any((tmp_path / "runs" / ".biolens-web" / "exports").iterdir())  # the server keeps no copy
    refused = server.post("/runs/dots/export", data={"csrf": server.csrf, "format": "tflite"})
    assert refused.status_code == 409 and "not a finished image or sequence classification run" in refused.text
    web = server.post("/runs/cells/export", data={"csrf": server.csrf, "format": "tfjs"})
    with zipfile.ZipFile(io.BytesIO(web.content)) as bundle:
        assert "cells-tfjs/model/model.json" in bundle.namelist()
    assert server.post("/runs/cells/export", data={"csrf": server.csrf, "format": "coreml"}).status_code == 400


def test_a_guessing_model_is_flagged_wherever_its_headline_shows_and_marks_every_prediction(server, tmp_path,
                                                                                             trained_run):
    """Metrics as the engine writes them for a model whose CI reaches chance level: Home and the Predict menu say so
    beside the headline, the Run page lists the warnings, and predictions are all marked for a person to check."""
    from biolens.engine.supervised import at_chance, honesty_warnings

    folder = tmp_path / "runs" / "guessing"
    shutil.copytree(trained_run, folder)
    metrics = json.loads((folder / "metrics.json").read_text())
    metrics.update(balanced_accuracy=0.5, balanced_accuracy_ci95=[0.3, 0.7])
    metrics.update(at_chance=at_chance(metrics, len(metrics["class_names"])),
                   warnings=honesty_warnings(metrics, len(metrics["class_names"])))
    assert metrics["at_chance"]
    (folder / "metrics.json").write_text(json.dumps(metrics))
    shutil.copytree(trained_run, tmp_path / "runs" / "fine")
    home = server.get("/").text
    assert home.count("not clearly better than guessing") == 1
    run_page = server.get("/runs/guessing").text
    assert 'id="run-warnings"' in run_page and "not clearly better than guessing" in run_page
    fine_metrics = json.loads((trained_run / "metrics.json").read_text())
    fine_page = server.get("/runs/fine").text
    assert ('id="run-warnings"' in fine_page) == bool(fine_metrics.get("warnings"))
    assert 'id="baseline-reading"' in fine_page  # the network beside its classical baseline, in words
    assert str(escape(fine_metrics["baseline_reading"])) in fine_page  # as Jinja escapes it
    assert "(not clearly better than guessing)" in server.get("/predict").text
    images = sorted((SLICE / "images" / "WBC").iterdir())[:3]
    predicted = server.post("/predict", data={"csrf": server.csrf, "run": "guessing"},
                            files=[("files", (p.name, p.read_bytes(), "image/png")) for p in images])
    assert predicted.status_code == 200, alert(predicted)
    assert 'id="caution"' in predicted.text and predicted.text.count('class="unsure"') == 3


def test_runs_can_be_renamed_and_deleted_but_not_while_running(server, tmp_path, trained_run):
    runs = tmp_path / "runs"
    shutil.copytree(trained_run, runs / "first-try")
    renamed = server.post("/runs/first-try/rename", data={"csrf": server.csrf, "new_name": "cells-v1"})
    assert renamed.status_code == 200 and (runs / "cells-v1" / "run.json").exists() and not (runs / "first-try").exists()
    assert "cells-v1" in server.get("/").text
    bad = server.post("/runs/cells-v1/rename", data={"csrf": server.csrf, "new_name": "../escape"})
    assert bad.status_code == 400 and "letters, digits" in bad.text
    shutil.copytree(trained_run, runs / "taken")
    clash = server.post("/runs/cells-v1/rename", data={"csrf": server.csrf, "new_name": "taken"})
    assert clash.status_code == 409 and "already a run called taken" in clash.text
    no_token = server.post("/runs/cells-v1/delete", data={})
    assert no_token.status_code in (400, 403) and (runs / "cells-v1").exists()
    deleted = server.post("/runs/cells-v1/delete", data={"csrf": server.csrf})
    assert deleted.status_code == 200 and not (runs / "cells-v1").exists()
    assert list((server.settings.state_dir / "trash").glob("cells-v1-*/run.json"))  # kept in the trash
    assert "cells-v1" not in server.get("/").text
    shutil.copytree(SLICE, tmp_path / "data" / "cells")  # a queued run (jobs do not start here) stays put
    queued = new_run(server, path=str(tmp_path / "data" / "cells" / "manifest.csv"), group_column="source_image")
    assert queued.status_code == 303
    for action, data in (("delete", {}), ("rename", {"new_name": "other"})):
        refused = server.post(f"/runs/cells/{action}", data={"csrf": server.csrf, **data})
        assert refused.status_code == 409 and "cancel it first" in refused.text


def test_new_run_mistakes_are_said_at_the_form_in_its_own_words(server, tmp_path):
    """Mistakes that can be seen without training are refused at submit (nothing queued), naming the uploaded file
    and the form's fields, never the server's upload folders or a CLI flag."""
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=120, length=400, seed=4).write(tmp_path / "c")
    vcf, traits = paths["genotypes"], paths["phenotypes"]

    def associate(trait, first, second, name="assoc", **fields):
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": trait,
                                         **fields},
                           files=[("files", (first.name, first.read_bytes(), "application/octet-stream")),
                                  ("phenotype_file", (second.name, second.read_bytes(), "text/plain"))],
                           follow_redirects=False)

    wrong_case = associate("Yield", vcf, traits)
    assert wrong_case.status_code == 400 and "Did you mean 'yield'" in alert(wrong_case)
    swapped = associate("yield", traits, vcf)
    assert swapped.status_code == 400 and "swapped" in alert(swapped)
    for message in (alert(wrong_case), alert(swapped)):
        assert ".biolens-web" not in message and "--" not in message
    assert server.app.app.state.queue.latest_for("assoc") is None  # nothing was queued
    assert associate("yield", vcf, traits).status_code == 303       # the right way round is queued
    assert json.loads(server.app.app.state.queue.latest_for("assoc")["params"])["trait_transform"] == "none"
    assert associate("yield", vcf, traits, name="logged", trait_transform="log").status_code == 303
    assert json.loads(server.app.app.state.queue.latest_for("logged")["params"])["trait_transform"] == "log"

    not_images = new_run(server, files=[("files", ("notes.txt", b"just some text\n", "text/plain"))], name="notes")
    assert not_images.status_code == 400 and alert(not_images) and "Traceback" not in not_images.text
    assert server.app.app.state.queue.latest_for("notes") is None


def test_object_finding_takes_kind_group_and_time_limit_and_refuses_their_mistakes_at_the_form(server, tmp_path):
    """The detect form's choices reach the job; a group column that is not there, or outlines asked of points, are
    refused at submit in the form's words (nothing queued)."""
    from PIL import Image

    folder = tmp_path / "data" / "plates"
    folder.mkdir(parents=True)
    rows = ["image,x,y,plate"]
    for k in range(2):
        Image.fromarray(np.full((64, 64, 3), 40 * k, dtype=np.uint8)).save(folder / f"p{k}.png")
        rows += [f"p{k}.png,{10 + 20 * j},{20 + j},plate{k}" for j in range(3)]
    (folder / "colonies.csv").write_text("\n".join(rows) + "\n")

    def detect(name, **fields):
        return new_run(server, task="detect", name=name, path=str(folder), annotation_path=str(folder / "colonies.csv"),
                       **fields)

    no_column = detect("plates", detect_group_column="dish")
    assert no_column.status_code == 400 and "Group column field" in alert(no_column) and "--" not in alert(no_column)
    wrong_kind = detect("plates", detect_kind="masks")
    assert wrong_kind.status_code == 400 and "What the annotations mark" in alert(wrong_kind)
    assert server.app.app.state.queue.latest_for("plates") is None
    queued = detect("plates", detect_kind="points", detect_group_column="plate", detect_time_budget_min="2")
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("plates")["params"])
    assert (params["kind"], params["group_column"], params["time_budget"]) == ("points", "plate", 120.0)
    server.post("/runs/plates/cancel", data={"csrf": server.csrf}, follow_redirects=False)


def test_column_menus_read_a_table_on_this_machine_and_nothing_outside_the_roots(server, tmp_path):
    table = tmp_path / "data" / "traits.tsv"
    table.write_text("sample\tYield\tpopulation\nA\t1.5\tnorth\n")
    answer = server.get("/columns", params={"path": str(table)})
    assert answer.status_code == 200 and answer.json() == {"columns": ["sample", "Yield", "population"]}
    assert server.get("/columns", params={"path": str(tmp_path / "data")}).json() == {"columns": []}
    outside = server.get("/columns", params={"path": "/etc/passwd"})
    assert outside.status_code == 400 and "outside the folders" in outside.text
    page = server.get("/new").text
    assert 'list="columns-traits"' in page and '<datalist id="columns-data">' in page


def test_a_finished_run_gets_its_learning_curve_from_a_button_as_a_second_step(server, tmp_path, detect_run):
    """The Run page offers the curve only where it is missing; the button queues a second step on the same folder
    (the page then reads 'queued', not 'complete'); the job itself calls the engine's step, whose refusal (here: the
    data changed since training) reaches the job's outcome in one line."""
    from biolens.runs import read_json, write_json
    from biolens.web.jobs import execute

    runs = tmp_path / "runs"
    shutil.copytree(detect_run, runs / "dots")
    page = server.get("/runs/dots").text
    assert 'id="learning-curve"' in page and "quarter and a half" in page
    assert "minutes on this machine" in page  # the time the run predicted for its curve (turned off there)
    assert 'href="/predict?run=dots"' in page and "/runs/dots/review" not in page  # objects: predict, no image review
    queued = server.post("/runs/dots/learning-curve", data={"csrf": server.csrf}, follow_redirects=False)
    assert queued.status_code == 303
    job = server.app.app.state.queue.latest_for("dots")
    assert job["status"] == "queued" and json.loads(job["params"]) == {"second_step": "learning_curve"}
    assert 'status-queued' in server.get("/runs/dots").text
    again = server.post("/runs/dots/learning-curve", data={"csrf": server.csrf})
    assert again.status_code == 409 and "already queued" in again.text

    info = read_json(runs / "dots" / "run.json")
    write_json(runs / "dots" / "run.json", {**info, "data_fingerprint": "0" * 64})
    result = tmp_path / "outcome.json"
    execute("detect", str(runs / "dots"), {"second_step": "learning_curve"}, str(tmp_path / "job.log"), str(result))
    outcome = read_json(result)
    assert outcome["status"] == "failed" and "data fingerprint differs" in outcome["error"]
    assert read_json(runs / "dots" / "run.json")["status"] == "complete"  # the finished run is left as it was

    metrics = read_json(runs / "dots" / "metrics.json")
    write_json(runs / "dots" / "metrics.json", {**metrics, "learning_curve": {"advice": "made"}})
    assert 'id="learning-curve"' not in server.get("/runs/dots").text  # a run with its curve is offered none


def test_files_of_a_refused_form_are_kept_for_the_corrected_one(server, tmp_path):
    """After a form error the uploaded files stay on the server: the page names them, and the corrected form sent
    without files queues the run on them (issue 18: every file had to be chosen again)."""
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=120, length=400, seed=4).write(tmp_path / "c")
    vcf, traits = paths["genotypes"], paths["phenotypes"]
    files = [("files", (vcf.name, vcf.read_bytes(), "application/octet-stream")),
             ("phenotype_file", (traits.name, traits.read_bytes(), "text/plain"))]
    fields = {"csrf": server.csrf, "task": "associate", "name": "kept-assoc"}
    refused = server.post("/new", data={**fields, "trait": "Yield"}, files=files, follow_redirects=False)
    assert refused.status_code == 400 and "Did you mean 'yield'" in alert(refused)
    tokens = dict(re.findall(r'name="(kept_\w+)" value="([^"]+)"', refused.text))
    assert set(tokens) == {"kept_files", "kept_phenotype_file"}
    assert f"Kept from your last try: {vcf.name}" in refused.text and traits.name in refused.text
    menu = re.search(r'<datalist id="columns-traits">(.*?)</datalist>', refused.text).group(1)
    assert '<option value="yield">' in menu  # the kept table still fills the trait menu
    assert server.app.app.state.queue.latest_for("kept-assoc") is None

    again = server.post("/new", data={**fields, "trait": "", **tokens}, follow_redirects=False)  # a second mistake
    assert again.status_code == 400 and dict(re.findall(r'name="(kept_\w+)" value="([^"]+)"', again.text)) == tokens
    queued = server.post("/new", data={**fields, "trait": "yield", **tokens}, follow_redirects=False)
    assert queued.status_code == 303
    params = json.loads(server.app.app.state.queue.latest_for("kept-assoc")["params"])
    assert Path(params["genotypes"]).read_bytes() == vcf.read_bytes()
    assert Path(params["phenotypes"]).read_bytes() == traits.read_bytes()

    forged = server.post("/new", data={**fields, "name": "forged", "trait": "yield", "kept_files": "../../../etc"},
                         files=[files[1]], follow_redirects=False)
    assert forged.status_code == 400 and "choose the data" in alert(forged)  # a token is a name, never a path


def test_a_kept_annotation_table_is_read_as_the_annotations_of_the_corrected_object_form(server, tmp_path):
    """The object-finding form keeps its annotation table after a refusal like every other file; the corrected form
    sent without files reads the kept table as the annotations (it had taken the images as the annotations)."""
    from PIL import Image

    (tmp_path / "plates").mkdir()
    rows = ["image,x,y"]
    for k in range(4):
        Image.fromarray(np.full((48, 48, 3), 30, np.uint8)).save(tmp_path / "plates" / f"p{k}.png")
        rows += [f"p{k}.png,{10 + 5 * j},{12 + 4 * j}" for j in range(3)]
    table = "\n".join(rows) + "\n"
    files = [("files", (f"p{k}.png", (tmp_path / "plates" / f"p{k}.png").read_bytes(), "image/png")) for k in range(4)]
    files.append(("annotation_file", ("points.csv", table.encode(), "text/csv")))
    fields = {"csrf": server.csrf, "task": "detect", "name": "kept-dots"}
    refused = server.post("/new", data={**fields, "detect_group_column": "plate"}, files=files, follow_redirects=False)
    assert refused.status_code == 400 and "plate" in alert(refused)
    tokens = dict(re.findall(r'name="(kept_\w+)" value="([^"]+)"', refused.text))
    assert set(tokens) == {"kept_files", "kept_annotation_file"}
    queued = server.post("/new", data={**fields, **tokens}, follow_redirects=False)
    assert queued.status_code == 303, alert(queued)
    params = json.loads(server.app.app.state.queue.latest_for("kept-dots")["params"])
    assert Path(params["annotations"]).read_text() == table and Path(params["images"]).is_dir()


def test_a_plink_fileset_uploaded_as_its_three_files_is_read_by_its_bed_and_an_incomplete_one_refused(server, tmp_path):
    """The .bed, .bim and .fam uploaded together are one genotype input (the job gets the .bed); a .bed alone is
    refused at the form, naming the files it lacks."""
    from bed_reader import to_bed

    from biolens.readers.variants import read_vcf
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=400, seed=4).write(tmp_path / "c")
    genotypes = read_vcf(paths["genotypes"])
    to_bed(tmp_path / "cohort.bed", genotypes.dosage, properties={
        "iid": genotypes.samples, "bp_position": genotypes.pos, "allele_1": genotypes.alt, "allele_2": genotypes.ref})

    def associate(name, *suffixes):
        files = [("files", (f"cohort{s}", (tmp_path / f"cohort{s}").read_bytes(), "application/octet-stream"))
                 for s in suffixes]
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield"},
                           files=files + [("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(),
                                                              "text/plain"))], follow_redirects=False)

    alone = associate("bed-alone", ".bed")
    assert alone.status_code == 400 and "without its cohort.bim and cohort.fam" in alert(alone)
    assert server.app.app.state.queue.latest_for("bed-alone") is None
    assert associate("plink", ".bed", ".bim", ".fam").status_code == 303
    params = json.loads(server.app.app.state.queue.latest_for("plink")["params"])
    assert params["genotypes"].endswith("cohort.bed") and "sequences" not in params


def test_a_plink2_fileset_uploaded_as_its_three_files_is_read_by_its_pgen_and_an_incomplete_one_refused(server,
                                                                                                       tmp_path):
    import pgenlib

    from biolens.readers.variants import read_vcf
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=400, seed=4).write(tmp_path / "c")
    genotypes = read_vcf(paths["genotypes"])
    writer = pgenlib.PgenWriter(str(tmp_path / "cohort.pgen").encode(), 60, variant_ct=genotypes.n_sites,
                                nonref_flags=False)
    for j in range(genotypes.n_sites):
        writer.append_biallelic(np.ascontiguousarray(genotypes.dosage[:, j].astype(np.int8)))
    writer.close()
    (tmp_path / "cohort.pvar").write_text("#CHROM\tPOS\tID\tREF\tALT\n" + "".join(
        f"1\t{p}\tv{j}\t{r}\t{a}\n" for j, (p, r, a) in enumerate(zip(genotypes.pos, genotypes.ref, genotypes.alt))))
    (tmp_path / "cohort.psam").write_text("#IID\n" + "".join(f"{s}\n" for s in genotypes.samples))

    def associate(name, *names):
        files = [("files", (n, (tmp_path / n).read_bytes(), "application/octet-stream")) for n in names]
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield"},
                           files=files + [("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(),
                                                              "text/plain"))], follow_redirects=False)

    alone = associate("pgen-alone", "cohort.pgen", "cohort.pvar")
    assert alone.status_code == 400 and "without its cohort.psam" in alert(alone)
    assert associate("pgen", "cohort.pgen", "cohort.pvar", "cohort.psam").status_code == 303
    params = json.loads(server.app.app.state.queue.latest_for("pgen")["params"])
    assert params["genotypes"].endswith("cohort.pgen")


def test_the_region_field_reaches_the_job_and_a_malformed_one_is_said_at_the_form(server, tmp_path):
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=400, seed=4).write(tmp_path)

    def associate(name, region):
        files = [("files", ("cohort.vcf.gz", paths["genotypes"].read_bytes(), "application/gzip")),
                 ("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(), "text/plain"))]
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield",
                                         "region": region}, files=files, follow_redirects=False)

    bad = associate("bad-region", "1:900-100")
    assert bad.status_code == 400 and "the end (100) is before the start (900)" in alert(bad)
    assert associate("region", " 1:1-1,000 ").status_code == 303
    assert json.loads(server.app.app.state.queue.latest_for("region")["params"])["region"] == "1:1-1,000"


def test_genome_wide_markers_and_the_frequency_bar_reach_the_job_and_a_wrong_marker_file_is_said_at_the_form(
        server, tmp_path):
    """The CLI's --structure-genotypes, --structure-pcs and --min-maf from the form: uploaded markers (or a path
    under a root) become the job's structure_genotypes; a table given as markers is refused in one line naming it."""
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=400, seed=4).write(tmp_path)
    markers = simulate_cohort("null", trait="quantitative", n_individuals=60, length=400, seed=5).write(
        tmp_path / "genome")["genotypes"]
    (tmp_path / "data" / "genome.vcf.gz").write_bytes(markers.read_bytes())

    def associate(name, structure=None, **fields):
        files = [("files", ("cohort.vcf.gz", paths["genotypes"].read_bytes(), "application/gzip")),
                 ("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(), "text/plain"))]
        if structure:
            files.append(("structure_file", (structure.name, structure.read_bytes(), "application/octet-stream")))
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield",
                                         **fields}, files=files, follow_redirects=False)

    def params(name):
        return json.loads(server.app.app.state.queue.latest_for(name)["params"])

    assert associate("plain").status_code == 303
    assert params("plain")["structure_genotypes"] is None and params("plain")["min_maf"] == 0.01
    assert associate("uploaded", markers, structure_pcs="3", min_maf="0.05").status_code == 303
    given = params("uploaded")
    assert Path(given["structure_genotypes"]).read_bytes() == markers.read_bytes()
    assert given["structure_pcs"] == 3 and given["min_maf"] == 0.05
    assert associate("by-path", structure_path=str(tmp_path / "data" / "genome.vcf.gz")).status_code == 303
    assert params("by-path")["structure_genotypes"] == str((tmp_path / "data" / "genome.vcf.gz").resolve())
    table = associate("table-as-markers", paths["phenotypes"])
    assert table.status_code == 400
    assert "traits.tsv (the structure markers) is not a VCF/BCF" in alert(table)
    assert 'id="kept-files"' in table.text  # the genotypes and traits are kept for the corrected form
    alone = associate("components-alone", structure_pcs="3")  # a count of components without their markers
    assert alone.status_code == 400 and "the Principal components field 3 counts principal components" in alert(alone)
    assert "give them with the Genome-wide markers field" in alert(alone)
    too_rare = associate("bad-maf", min_maf="0.7")
    assert too_rare.status_code == 400 and "min maf must be between 0 and 0.49" in alert(too_rare)


def test_a_bed_file_of_regions_from_the_form_runs_each_region_and_the_run_page_shows_their_table(server, tmp_path):
    """The CLI's --regions from the form: the job runs the regions runner in the run's folder (a run per region and
    regions.tsv / regions.html over them); the Run page and Home show the table's headline and page, each region's
    report is served from the run's files, and an interrupted list is resumed with the same settings. A BED beside a
    Region, or with a bad line, is said at the form."""
    from biolens.runs import read_json
    from biolens.simulate import simulate_cohort
    from biolens.web.jobs import execute

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=1500, seed=8).write(tmp_path)
    bed = tmp_path / "genes.bed"
    bed.write_text("1\t0\t700\tgeneA\n1\t700\t1500\tgeneB\n")
    queue = server.app.app.state.queue

    def associate(name, regions_text=None, **fields):
        files = [("files", ("cohort.vcf.gz", paths["genotypes"].read_bytes(), "application/gzip")),
                 ("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(), "text/plain"))]
        if regions_text is not None:
            files.append(("regions_file", ("genes.bed", regions_text.encode(), "text/plain")))
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield",
                                         **fields}, files=files, follow_redirects=False)

    both = associate("both", bed.read_text(), region="1:1-700")
    assert both.status_code == 400 and "leave the Region field empty" in alert(both)
    backwards = associate("backwards", "1\t50\t10\tgeneA\n")
    assert backwards.status_code == 400 and "genes.bed, line 1: the end (10) must be after the start (50)" in \
        alert(backwards)
    assert associate("genes", bed.read_text()).status_code == 303
    job = queue.latest_for("genes")
    params = json.loads(job["params"])
    assert Path(params["regions"]).read_text() == bed.read_text() and params["region"] is None
    params.update(permutations=2, folds=2)  # the form's least is 5 permutations; a smaller run for the test
    execute("associate", str(tmp_path / "runs" / "genes"), params, str(tmp_path / "job.log"), str(tmp_path / "out"))
    assert read_json(tmp_path / "out")["status"] == "complete", (tmp_path / "job.log").read_text()[-2000:]
    queue._update(job["id"], status="complete")  # what the dispatcher records when the job's process ends
    page = server.get("/runs/genes").text
    assert "2 of 2 regions run" in page and 'src="/runs/genes/files/regions.html"' in page
    assert 'href="/runs/genes/files/regions.tsv"' in page
    assert '<a href="geneA/report.html">geneA</a>' in server.get("/runs/genes/files/regions.html").text
    assert server.get("/runs/genes/files/geneB/report.html").status_code == 200  # the link, as the frame resolves it
    assert "2 of 2 regions run" in server.get("/").text
    queue._update(job["id"], status="interrupted")
    assert 'id="resume"' in server.get("/runs/genes").text
    assert server.post("/runs/genes/resume", data={"csrf": server.csrf}, follow_redirects=False).status_code == 303
    again = queue.latest_for("genes")
    assert again["id"] != job["id"] and again["status"] == "queued"
    assert json.loads(again["params"])["regions"] == json.loads(job["params"])["regions"]


def test_a_bgen_uploaded_with_its_sample_file_is_read_by_its_bgen(server, tmp_path):
    """A .bgen and the .sample naming its individuals, uploaded together, are one genotype input (the job gets the
    .bgen); a file named .bgen that is none is refused at the form."""
    import bgen

    from biolens.readers.variants import read_vcf
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("additive", trait="quantitative", n_individuals=60, length=400, seed=4).write(tmp_path / "c")
    genotypes = read_vcf(paths["genotypes"])
    with bgen.BgenWriter(str(tmp_path / "cohort.bgen"), n_samples=60) as writer:
        for j in range(genotypes.n_sites):
            writer.add_variant(varid=f"v{j}", rsid=f"v{j}", chrom="1", pos=int(genotypes.pos[j]),
                               alleles=[genotypes.ref[j], genotypes.alt[j]],
                               genotypes=np.eye(3)[genotypes.dosage[:, j].astype(int)])
    (tmp_path / "cohort.sample").write_text("ID_1 ID_2 missing\n0 0 0\n" + "".join(f"{s} {s} 0\n"
                                                                                  for s in genotypes.samples))
    (tmp_path / "fake.bgen").write_bytes(b"##fileformat=VCFv4.2 but not really\n" * 3)

    def associate(name, *names):
        files = [("files", (n, (tmp_path / n).read_bytes(), "application/octet-stream")) for n in names]
        return server.post("/new", data={"csrf": server.csrf, "task": "associate", "name": name, "trait": "yield"},
                           files=files + [("phenotype_file", ("traits.tsv", paths["phenotypes"].read_bytes(),
                                                              "text/plain"))], follow_redirects=False)

    assert associate("bgen", "cohort.bgen", "cohort.sample").status_code == 303
    params = json.loads(server.app.app.state.queue.latest_for("bgen")["params"])
    assert params["genotypes"].endswith("cohort.bgen") and Path(params["genotypes"]).with_suffix(".sample").is_file()
    fake = associate("fake-bgen", "fake.bgen")
    assert fake.status_code == 400 and "fake.bgen is named .bgen but holds no BGEN header" in alert(fake)


def test_an_association_run_page_says_what_the_cohort_can_detect(server, tmp_path):
    import biolens
    from biolens.simulate import simulate_cohort

    paths = simulate_cohort("null", trait="binary", seed=3, n_individuals=80, length=600).write(tmp_path / "cohort")
    biolens.associate(paths["phenotypes"], "status", tmp_path / "runs" / "assoc", genotypes=paths["genotypes"],
                      permutations=2, folds=2)
    metrics = json.loads((tmp_path / "runs" / "assoc" / "metrics.json").read_text())
    page = server.get("/runs/assoc").text
    assert 'id="detectable-reading"' in page and metrics["detectable_reading"] in html.unescape(page)
    assert "80 individuals" in metrics["detectable_reading"]
