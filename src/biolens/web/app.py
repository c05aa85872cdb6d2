"""The web app's routes: pages rendered on the server, one event stream for live progress, no analysis code.

Every page reads run folders (views.py); every action queues a job (jobs.py) or calls the engine in a worker
process (predict). Security is in security.py and applies to every route.
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from biolens import runs as runs_json
from biolens.config import STACK_CHOICES, TRAIT_TRANSFORMS
from biolens.engine import preflight, registry
from biolens.errors import InputError
from biolens.explain import known_motifs
from biolens.readers.genome import is_bed
from biolens.readers.sequences import class_files, is_fasta, sequence_table
from biolens.tasks.export import default_name
from biolens.web import security, views
from biolens.web.jobs import JobQueue

HERE = Path(__file__).parent
RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
UPLOAD_FIELDS = ("files", "labels_file", "phenotype_file", "annotation_file", "structure_file",
                 "regions_file")  # the New run form's file inputs
KEPT_UPLOADS = "kept"  # under the uploads folder: files of refused forms, one random token each
KEPT_TOKEN = re.compile(r"[A-Za-z0-9_-]{24}")


@dataclass
class Settings:
    runs_dir: Path
    roots: list[Path]
    token: str = field(default_factory=security.new_token)
    max_upload_bytes: int = 2 << 30
    allow_remote: bool = False
    start_jobs: bool = True

    def __post_init__(self):
        self.runs_dir = Path(self.runs_dir).resolve()
        self.roots = [Path(r).expanduser().resolve() for r in self.roots]
        self.state_dir = self.runs_dir / ".biolens-web"
        self.uploads_dir = self.state_dir / "uploads"


def create_app(settings: Settings) -> FastAPI:
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    queue = JobQueue(settings.runs_dir, settings.state_dir)
    engine_pool: dict[str, ProcessPoolExecutor] = {}  # created on the first predict or review

    @asynccontextmanager
    async def lifespan(app):
        if settings.start_jobs:
            queue.start()
        yield
        queue.stop()
        for pool in engine_pool.values():
            pool.shutdown(cancel_futures=True)

    app = FastAPI(title="biolens", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.queue, app.state.settings = queue, settings
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")

    def page(request: Request, template: str, status_code: int = 200, **context) -> HTMLResponse:
        return templates.TemplateResponse(request, f"{template}.html.j2", {"csrf": security.csrf_token(settings.token),
                                                                            "page": template, **context},
                                          status_code=status_code)

    async def checked_form(request: Request):
        """The form of a state-changing request, refused without the CSRF token or from another origin."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin.split("//", 1)[-1] != request.headers.get("host"):
            raise HTTPException(403, "This request came from another web site; it was refused (CSRF protection).")
        form = await request.form(max_files=200_000, max_fields=1_000)
        given = request.headers.get("x-csrf-token") or form.get("csrf")
        if not security.same_secret(given if isinstance(given, str) else None, security.csrf_token(settings.token)):
            raise HTTPException(403, "The form's security token is missing or stale; reload the page and try again.")
        return form

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        return page(request, "error", exc.status_code, message=exc.detail)

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception):  # a bug: one line to the user, details in the log
        import traceback

        traceback.print_exc()
        return page(request, "error", 500, message=f"Internal error ({type(exc).__name__}); the server's terminal "
                                                   "has the details.")

    # -- pages ----------------------------------------------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    async def home(request: Request):
        return page(request, "home", runs=views.list_runs(settings.runs_dir, queue.jobs()))

    @app.get("/new", response_class=HTMLResponse)
    async def new_run_form(request: Request):
        return page(request, "new", form={}, roots=settings.roots, error=None, kept={}, **_new_run_choices())

    @app.post("/new")
    async def new_run(request: Request):
        form = await checked_form(request)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            name, task, params = await _job_from_form(form, values)
            # the CLI's and the API's gate, before queueing (a list of regions is the regions runner's, whose runs
            # each get the rest: `tasks/associate_regions`)
            registry.get(task).config.build(**{k: v for k, v in params.items() if k != "regions"}).validate()
            await asyncio.to_thread(preflight.check, task, params)  # the inputs' own mistakes, said at the form
            queue.submit(task, name, params)
        except InputError as exc:
            return page(request, "new", 400, form=values, roots=settings.roots, kept=await _keep_uploads(form, values),
                        error=views.in_web_words(str(exc), settings.uploads_dir), **_new_run_choices())
        return RedirectResponse(f"/runs/{name}", status_code=303)

    @app.get("/runs/{name}", response_class=HTMLResponse)
    async def run_page(request: Request, name: str):
        folder = _run_folder(name)
        job = queue.latest_for(name)
        state = _progress(name, folder, job)
        info = views.run_info(folder)
        main, rest = views.downloads(folder)
        metrics = views.run_metrics(folder)
        return page(request, "run", name=name, info=info, state=state, main_files=main, other_files=rest,
                    report_page=views.report_page(folder),
                    regions="regions" in json.loads((job or {}).get("params") or "{}"),
                    task=views.TASK_NAMES.get(info.get("task") or (job or {}).get("task"), "-"),
                    headline=views.headline(info, metrics) or views.regions_headline(folder),
                    headline_label=views.headline_label(info),
                    curve_offer=views.learning_curve_offer(info, metrics), export_formats=views.EXPORT_FORMATS,
                    run_warnings=views.written_warnings(metrics), baseline_reading=metrics.get("baseline_reading"),
                    detectable_reading=metrics.get("detectable_reading"))

    @app.get("/runs/{name}/events")
    async def run_events(request: Request, name: str):
        folder = _run_folder(name)

        async def stream():
            last = None
            while not await request.is_disconnected():
                state = _progress(name, folder, queue.latest_for(name))
                text = json.dumps(state)
                if text != last:
                    yield f"data: {text}\n\n"
                    last = text
                if state["done"]:
                    return
                await asyncio.sleep(1.0)

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"cache-control": "no-store"})

    @app.get("/runs/{name}/files/{path:path}")
    async def run_file(name: str, path: str):
        folder = _run_folder(name)
        target = (folder / path).resolve()
        if not target.is_relative_to(folder.resolve()) or not target.is_file():
            raise HTTPException(404, f"{path} is not a file of run {name}.")
        inline = target.suffix in (".html", ".png", ".svg", ".txt", ".csv", ".tsv", ".json")
        return FileResponse(target, filename=None if inline else target.name,
                            media_type="text/plain" if target.suffix in (".csv", ".tsv") else None)

    async def _run_action(action, *args, then: str) -> RedirectResponse:
        """A queue action on a run (cancel, rename, delete, resume): its refusal is a 409 with the engine's line."""
        try:
            await asyncio.to_thread(action, *args)
        except InputError as exc:
            raise HTTPException(409, str(exc)) from None
        return RedirectResponse(then, status_code=303)

    @app.post("/runs/{name}/cancel")
    async def cancel(request: Request, name: str):
        await checked_form(request)
        _run_folder(name)
        return await _run_action(queue.cancel, name, then=f"/runs/{name}")

    @app.post("/runs/{name}/rename")
    async def rename(request: Request, name: str):
        form = await checked_form(request)
        _run_folder(name)
        new = str(form.get("new_name", "")).strip()
        if not RUN_NAME.match(new):
            raise HTTPException(400, "A run name uses letters, digits, '-', '_' or '.', starts with a letter or digit "
                                     f"and has at most 64 characters; got {new!r}.")
        return await _run_action(queue.rename, name, new, then=f"/runs/{new}")

    @app.post("/runs/{name}/delete")
    async def delete(request: Request, name: str):
        await checked_form(request)
        _run_folder(name)
        return await _run_action(queue.delete, name, then="/")

    @app.post("/runs/{name}/resume")
    async def resume(request: Request, name: str):
        await checked_form(request)
        _run_folder(name)
        return await _run_action(queue.resume, name, then=f"/runs/{name}")

    @app.post("/runs/{name}/learning-curve")
    async def learning_curve(request: Request, name: str):
        await checked_form(request)
        _run_folder(name)
        return await _run_action(queue.add_learning_curve, name, then=f"/runs/{name}")

    @app.post("/runs/{name}/export")
    async def export_model(request: Request, name: str):
        """The run's model for use outside biolens (the engine's `export`, in the worker process), as one zip: the
        model with its class list and description, the files `biolens export` writes."""
        form = await checked_form(request)
        folder = _finished_classifier(name, needs="exporting a model", tasks=("classify", "sequence_classify"))
        fmt = str(form.get("format", ""))
        if fmt not in views.EXPORT_FORMATS:
            raise HTTPException(400, f"Choose how to export the model: {', '.join(views.EXPORT_FORMATS.values())}.")
        work = settings.state_dir / "exports" / uuid.uuid4().hex[:12]
        bundle = work / f"{name}-{fmt}"
        bundle.mkdir(parents=True)
        try:
            await engine_call("export", str(folder), str(bundle / default_name(fmt)), format=fmt)
            archive = await asyncio.to_thread(shutil.make_archive, str(bundle), "zip", root_dir=work,
                                              base_dir=bundle.name)
        except InputError as exc:
            shutil.rmtree(work, ignore_errors=True)
            raise HTTPException(409, views.in_web_words(str(exc), settings.uploads_dir)) from None
        return FileResponse(archive, filename=f"{name}-{fmt}.zip", media_type="application/zip",
                            background=BackgroundTask(shutil.rmtree, work, ignore_errors=True))

    @app.get("/predict", response_class=HTMLResponse)
    async def predict_form(request: Request, run: str = ""):
        return page(request, "predict", runs=_finished_classifiers(), selected=run, table=None, error=None)

    @app.post("/predict", response_class=HTMLResponse)
    async def predict(request: Request):
        form = await checked_form(request)
        name = str(form.get("run", ""))
        batch = uuid.uuid4().hex[:12]
        target = settings.uploads_dir / f"predict-{batch}"
        try:
            folder = _run_folder(name)
            objects = views.run_info(folder).get("task") == "detect"
            inputs = await _data_from_form(form, "files", "path", target)
            # a detection run writes objects.csv and counts.csv beside it: each batch gets its own folder
            out = settings.state_dir / "predictions" / batch / ("objects.csv" if objects else "predictions.csv")
            out.parent.mkdir(parents=True, exist_ok=True)
            overlays = out.parent / "overlays"
            await engine_call("predict", str(folder), str(inputs), out=str(out),
                              **({"overlays": str(overlays)} if objects else {}))
        except (InputError, HTTPException) as exc:
            message = exc.detail if isinstance(exc, HTTPException) else str(exc)
            return page(request, "predict", 400, runs=_finished_classifiers(), selected=name, table=None, error=message)
        table = pd.read_csv(out.parent / "counts.csv" if objects else out)
        sequences = "id" in table  # a sequence model: rows are FASTA records, nothing to draw
        if sequences:
            table["thumb"] = ""
        else:
            column = "image" if objects else "file"
            sources = [Path(str(f)) for f in table[column]]
            if objects:  # the overlays drawn by predict, one per image
                sources = [overlays / f"{p.stem}.png" for p in sources]
            table["thumb"] = await asyncio.to_thread(views.thumbnails, sources, out.parent / "thumbs")
            table[column] = [_shown_name(f, target) for f in table[column]]  # the uploaded names, not the server's
        columns = [c for c in table.columns if c != "thumb"]
        per_class = (table.groupby("label")["count"].sum() if objects else table["predicted"].value_counts())
        return page(request, "predict", runs=_finished_classifiers(), selected=name, error=None, batch=batch,
                    caution=views.at_chance_note(views.run_metrics(folder)),
                    table=table.fillna("").to_dict("records"), columns=columns, objects=objects, sequences=sequences,
                    per_class={str(k): int(v) for k, v in per_class.sort_index().items()},
                    n_objects=int(table["count"].fillna(0).sum()) if objects else 0,
                    n_unsure=int(table["unsure"].astype(bool).sum()) if "unsure" in table else 0,
                    motif_sites=(out.parent / "predictions_motif_sites.tsv").is_file())

    @app.get("/predictions/{batch}/thumbs/{image}")
    async def prediction_thumbnail(batch: str, image: str):
        file = settings.state_dir / "predictions" / batch / "thumbs" / image
        if not re.fullmatch(r"[0-9a-f]{12}", batch) or not re.fullmatch(r"[0-9]{1,6}\.png", image) or not file.is_file():
            raise HTTPException(404, "This thumbnail is no longer on the server; predict again.")
        return FileResponse(file, media_type="image/png")

    @app.get("/predictions/{batch}/{name}")
    async def prediction_csv(batch: str, name: str):
        file = settings.state_dir / "predictions" / batch / name
        if (not re.fullmatch(r"[0-9a-f]{12}", batch) or name not in ("predictions.csv", "objects.csv", "counts.csv",
                                                                     "predictions_motif_sites.tsv")
                or not file.is_file()):
            raise HTTPException(404, "These predictions are no longer on the server; predict again.")
        return FileResponse(file, filename=name,
                            media_type="text/tab-separated-values" if name.endswith(".tsv") else "text/csv")

    @app.get("/runs/{name}/review", response_class=HTMLResponse)
    async def review_form(request: Request, name: str):
        _finished_classifier(name)
        return page(request, "review", name=name, table=None, error=None)

    @app.post("/runs/{name}/review")
    async def review_pick(request: Request, name: str):
        """The images of an unlabelled pool worth labelling next (the engine's `review`, in the worker process)."""
        form = await checked_form(request)
        folder = _finished_classifier(name)
        batch = uuid.uuid4().hex[:12]
        out = settings.state_dir / "reviews" / batch
        try:
            pool_folder = await _data_from_form(form, "files", "path", settings.uploads_dir / f"review-{batch}")
            n = _integer({k: v for k, v in form.items() if isinstance(v, str)}, "n", 50, 1, 5000)
            await engine_call("review", str(folder), str(pool_folder), out=str(out), n=n)
        except InputError as exc:
            return page(request, "review", 400, name=name, table=None, error=str(exc))
        runs_json.write_json(out / "source.json", {"run": name})
        return RedirectResponse(f"/reviews/{batch}", status_code=303)

    @app.get("/reviews/{batch}", response_class=HTMLResponse)
    async def review_sheet(request: Request, batch: str):
        table, source = _review(batch)
        classes = views.run_info(settings.runs_dir / source)["class_names"]
        return page(request, "review", name=source, batch=batch, classes=classes, error=None,
                    table=table.fillna("").to_dict("records"), suggested_name=f"{source}-more-labels")

    @app.get("/reviews/{batch}/images/{row}")
    async def review_image(batch: str, row: int):
        table, _ = _review(batch)
        if not 0 <= row < len(table):
            raise HTTPException(404, "No such image in this review.")
        file = Path(str(table.file[row])).resolve()
        allowed = [settings.uploads_dir.resolve(), *settings.roots]
        if not any(file.is_relative_to(root) for root in allowed) or not file.is_file():
            raise HTTPException(404, "This image is no longer available.")
        return FileResponse(file)

    @app.post("/reviews/{batch}")
    async def review_retrain(request: Request, batch: str):
        """Save the biologist's labels as review.csv and queue a new run with them added (same test set)."""
        form = await checked_form(request)
        table, source = _review(batch)
        info = views.run_info(settings.runs_dir / source)
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        table["label"] = [values.get(f"label_{k}", "") for k in range(len(table))]
        new_name = values.get("name", "").strip()
        try:
            bad = sorted(set(table.label) - set(info["class_names"]) - {""})
            if bad:
                raise InputError(f"{bad[0]!r} is not one of the classes ({', '.join(info['class_names'])}).")
            if not (table.label != "").any():
                raise InputError("choose a label for at least one image (leave the ones you are unsure of empty).")
            if not RUN_NAME.match(new_name):
                raise InputError("give the new run a name of letters, digits, '-', '_' or '.' (at most 64).")
            if (settings.runs_dir / new_name).exists() or queue.latest_for(new_name):
                raise InputError(f"a run called {new_name} exists already; choose another name.")
            labels_file = settings.state_dir / "reviews" / batch / "review.csv"
            runs_json.write_text(labels_file, table.to_csv(index=False))
            config = {k: v for k, v in info["config"].items()}
            config["add_labels"] = str(labels_file)
            queue.submit("classify", new_name, config)
        except InputError as exc:
            classes = info["class_names"]
            return page(request, "review", 400, name=source, batch=batch, classes=classes, error=str(exc),
                        table=table.fillna("").to_dict("records"), suggested_name=new_name)
        return RedirectResponse(f"/runs/{new_name}", status_code=303)

    @app.get("/compare", response_class=HTMLResponse)
    async def compare(request: Request):
        names = [n for n in request.query_params.getlist("runs") if n]
        for name in names:
            _run_folder(name)
        if len(names) < 2:
            return page(request, "compare", table=None, runs=views.list_runs(settings.runs_dir, queue.jobs()),
                        error="Choose two or more runs to compare." if names else None)
        return page(request, "compare", table=views.compare(settings.runs_dir, names),
                    runs=views.list_runs(settings.runs_dir, queue.jobs()), error=None)

    @app.get("/columns")
    async def columns(path: str = ""):
        """The columns of a table on this machine (under a root), for the New run form's menus."""
        try:
            table = security.inside_roots(path, settings.roots, what="table path")
            return {"columns": await asyncio.to_thread(views.table_columns, table)}
        except InputError as exc:
            raise HTTPException(400, str(exc)) from None

    @app.get("/estimate")
    async def estimate_time(path: str = "", epochs: int | None = None, image_size: int = 0, backbone: str = "compact",
                            task: str = "classify", kind: str = "auto", object_size: float = 0.0,
                            group_column: str = "", learning_curve: str = "auto"):
        """How long a classification run on labelled images, or an object-finding run on annotations, on this
        machine would take, before it is queued: the measured probe of `biolens doctor --estimate` (real training
        steps timed), in the engine's worker process."""
        try:
            if task == "detect":
                annotations = security.inside_roots(path, settings.roots, what="annotation path")
                options = {"epochs": min(max(epochs or 0, 0), 1000), "kind": kind, "object_size": max(object_size, 0.0),
                           "group_column": group_column.strip() or None, "learning_curve": learning_curve}
                facts, error = await asyncio.wrap_future(worker_pool().submit(
                    estimate_in_worker, str(annotations), "detect", **options))
            else:
                data = _image_data_root(security.inside_roots(path, settings.roots, what="data path"))
                backbone = backbone if backbone in dict(views.BACKBONE_CHOICES) else "compact"
                facts, error = await asyncio.wrap_future(worker_pool().submit(
                    estimate_in_worker, str(data), "classify", epochs=min(max(epochs, 1), 1000) if epochs is not None else None,
                    image_size=min(max(image_size, 0), 1024), backbone=backbone))
            if error:
                raise InputError(error)
        except InputError as exc:  # said beside the button, so as data rather than an error page
            return JSONResponse({"detail": views.in_web_words(str(exc), settings.uploads_dir)}, status_code=400)
        return {"minutes": facts["total_minutes_at_most"], "epoch_seconds": facts["epoch_seconds"],
                "words": views.estimate_words(facts)}

    @app.get("/health", response_class=PlainTextResponse)
    async def health():
        return "ok"

    # -- helpers that need the settings --------------------------------------------------------------------------
    def worker_pool() -> ProcessPoolExecutor:
        """The engine's worker process, started on first use, so the server itself never loads TensorFlow."""
        if "pool" not in engine_pool:
            engine_pool["pool"] = ProcessPoolExecutor(1, mp_context=get_context("spawn"))
        return engine_pool["pool"]

    async def engine_call(function: str, *args, **kwargs) -> None:
        """A quick engine call (predict, review) in the worker process, beside the training queue, so a long
        training job never blocks it and the server never loads TensorFlow."""
        error = await asyncio.wrap_future(worker_pool().submit(call_in_worker, function, *args, **kwargs))
        if error:
            raise InputError(error)

    def _run_folder(name: str) -> Path:
        if not RUN_NAME.match(name):
            raise HTTPException(404, f"There is no run called {name!r}.")
        folder = settings.runs_dir / name
        if not folder.is_dir() and queue.latest_for(name) is None:
            raise HTTPException(404, f"There is no run called {name!r}.")
        return folder

    def _finished_classifier(name: str, needs: str = "review", tasks: tuple[str, ...] = ("classify",)) -> Path:
        folder = _run_folder(name)
        info = views.run_info(folder)
        if info.get("task") not in tasks or info.get("status") != "complete":
            kinds = " or ".join(("image", "sequence")[t == "sequence_classify"] for t in tasks)
            raise HTTPException(409, f"{name} is not a finished {kinds} classification run; {needs} needs one.")
        return folder

    def _review(batch: str):
        folder = settings.state_dir / "reviews" / batch
        if not re.fullmatch(r"[0-9a-f]{12}", batch) or not (folder / "source.json").is_file():
            raise HTTPException(404, "This review is no longer on the server; pick images again.")
        table = pd.read_csv(folder / "review.csv", dtype={"label": str}, keep_default_na=False)
        return table, runs_json.read_json(folder / "source.json")["run"]

    def _progress(name: str, folder: Path, job: dict | None) -> dict:
        """The Run page's state, its error line in the form's words (the engine names the CLI's flags)."""
        state = views.progress(folder, job, queue.log_path(name))
        state["error"] = views.in_web_words(state["error"], settings.uploads_dir)
        return state

    def _new_run_choices() -> dict:
        """The New run form's menus: backbones and image sizes, and the finished pretraining runs whose encoder a
        classification or an image clustering may start from (`--init-from`)."""
        return {**views.NEW_RUN_CHOICES, "pretrain_runs": _finished_pretraining()}

    def _finished_pretraining() -> list[str]:
        title = registry.get("pretrain").title
        return [r["name"] for r in views.list_runs(settings.runs_dir, queue.jobs())
                if r["task"] == title and r["status"] == "complete"]

    def _pretraining_run(values: dict, key: str) -> str:
        """The run folder of the pretraining run chosen in the menu `key` ("" for none), checked to be one."""
        chosen = str(values.get(key, "") or "").strip()
        if not chosen:
            return ""
        if chosen not in _finished_pretraining():
            raise InputError(f"there is no finished pretraining run called {chosen!r}; choose one from the menu, or "
                             "none.")
        return str(settings.runs_dir / chosen)

    def _finished_classifiers() -> list[dict]:
        """Finished runs whose model predicts new data (image and sequence classification, objects in images),
        newest first, each with its task and headline figure for the model menu."""
        predictors = {registry.get(name).title for name in ("classify", "sequence_classify", "detect")}
        return [r for r in views.list_runs(settings.runs_dir, queue.jobs()) if r["task"] in predictors
                and r["status"] == "complete"]

    async def _job_from_form(form, values: dict) -> tuple[str, str, dict]:
        """The run name, task and engine options of the New run form, with the data uploaded or resolved."""
        task = values.get("task", "classify")
        name = values.get("name", "").strip()
        if not RUN_NAME.match(name):
            raise InputError("give the run a name of letters, digits, '-', '_' or '.' (at most 64), e.g. cells-1.")
        if (settings.runs_dir / name).exists() or queue.latest_for(name):
            raise InputError(f"a run called {name} exists already; choose another name.")
        seed = _integer(values, "seed", 0, 0, 2**31 - 1)
        target = settings.uploads_dir / name
        if task == "classify":
            data = await _data_from_form(form, "files", "path", target / "data")
            return name, task, {"data": str(_image_data_root(data)), "seed": seed,
                                "epochs": _integer(values, "epochs", 30, 1, 1000),
                                "time_budget": 60.0 * _number(values, "time_budget_min", 0.0, 0.0, 7 * 24 * 60),
                                "group_column": values.get("group_column", "").strip() or None,
                                "learning_curve": _choice(values, "learning_curve", ("auto", "on", "off")),
                                "pretrain": _choice(values, "pretrain", ("auto", "on", "off")),
                                "init_from": _pretraining_run(values, "init_from"),
                                "stack": _choice(values, "stack", STACK_CHOICES),
                                "backbone": values.get("backbone") if values.get("backbone") in dict(views.BACKBONE_CHOICES)
                                else "compact",
                                "image_size": _integer(values, "image_size", 0, 0, 1024)}
        if task == "sequence_classify":
            sequences = _single_input(await _data_from_form(form, "files", "path", target / "sequences"))
            genome = str(values.get("genome_path", "") or "").strip()
            if genome:
                genome = str(security.inside_roots(genome, settings.roots, what="genome path"))
                if not Path(genome).is_file():
                    raise InputError(f"the genome {genome} is a folder; give the path of its FASTA file.")
            # one FASTA (or with a genome, BED) per class: the file names label them; or one table of sequences
            # and labels
            by_file = class_files(sequences, bed=bool(genome)) is not None or sequence_table(sequences) is not None
            if genome and not by_file and not is_bed(sequences):
                raise InputError(f"{sequences.name} is not a BED or narrowPeak file; the genome is for peaks given as "
                                 "BED files (one per class, or one with a label table). Leave the genome empty for "
                                 "FASTA.")
            if not genome and not by_file and not is_fasta(sequences):
                raise InputError(f"{sequences.name} is neither FASTA nor a table with a sequence column; give the "
                                 "sequences as FASTA (.fa, .fasta, optionally .gz) and their labels as a table below, "
                                 "one FASTA file per class, or one table with the columns sequence and label.")
            given = _data_given(form, "labels_file", "labels_path")
            if not by_file and not given:
                raise InputError(f"{sequences.name} needs its label table (columns id and label); or give one FASTA "
                                 "file per class, named by the class (e.g. GATA1.fa and TAL1.fa), without a table.")
            labels = None
            if given:
                labels = _single_input(await _data_from_form(form, "labels_file", "labels_path", target / "labels"))
            return name, task, {"data": str(sequences), "labels": str(labels) if labels else None, "seed": seed,
                                "genome": genome,
                                "epochs": _integer(values, "sequence_epochs", 30, 1, 1000),
                                "group_column": values.get("sequence_group_column", "").strip() or None,
                                "length": _integer(values, "length", 0, 0, 1_000_000),
                                "known_motifs": _choice(values, "known_motifs", known_motifs.CHOICES),
                                "learning_curve": _choice(values, "sequence_learning_curve", ("auto", "on", "off")),
                                "both_strands": _choice(values, "strands", ("both", "single")) == "both"}
        if task == "pretrain":
            data = await _data_from_form(form, "files", "path", target / "data")
            root = _image_data_root(data)  # a folder of images (class sub-folders welcome), never its manifest
            root = root.parent if root.is_file() and root.suffix.lower() == ".csv" else root
            return name, task, {"images": [str(root)], "seed": seed,
                                "epochs": _integer(values, "pretrain_epochs", 0, 0, 1000),
                                "stack": _choice(values, "pretrain_stack", STACK_CHOICES)}
        if task == "cluster":
            data = await _data_from_form(form, "files", "path", target / "data")
            method = values.get("method", "leiden")
            if method not in ("leiden", "kmeans", "hdbscan"):
                raise InputError("choose leiden, kmeans or hdbscan as the clustering method.")
            rows = _choice(values, "rows_are", ("auto", "samples", "features"))
            k, resolution = _integer(values, "k", 0, 0, 200), _number(values, "resolution", 0.0, 0.0, 50.0)
            if k and method != "kmeans":  # the engine refuses it too, in the CLI's words
                raise InputError("the number of clusters is k-means': choose k-means as the method, or leave the "
                                 "number at 0 (Leiden and HDBSCAN find their own).")
            if resolution and method != "leiden":
                raise InputError("the resolution is Leiden's: choose Leiden as the method, or leave the resolution "
                                 "at 0.")
            return name, task, {"data": str(_single_input(data)), "seed": seed, "method": method,
                                "compare_with": values.get("compare_with", "").strip() or None,
                                "k": k, "resolution": resolution,
                                "data_type": _choice(values, "data_type", ("auto", "counts", "continuous")),
                                "transpose": None if rows == "auto" else rows == "features",
                                "init_from": _pretraining_run(values, "cluster_init_from"),
                                "stack": _choice(values, "cluster_stack", STACK_CHOICES)}
        if task == "associate":
            variants = _single_input(await _data_from_form(form, "files", "path", target / "variants"))
            phenotypes = _single_input(await _data_from_form(form, "phenotype_file", "phenotype_path", target / "traits"))
            trait = values.get("trait", "").strip()
            if not trait:
                raise InputError("give the trait column of the phenotype table.")
            kind = "sequences" if is_fasta(variants) else "genotypes"
            structure = None  # genome-wide markers for principal components against stratification (optional)
            if _data_given(form, "structure_file", "structure_path"):
                structure = _single_input(await _data_from_form(form, "structure_file", "structure_path",
                                                                target / "structure"))
            region = values.get("region", "").strip() or None
            regions = None  # a BED file of regions, each its own run in the run's folder (the CLI's --regions)
            if _data_given(form, "regions_file", "regions_path"):
                if region or kind == "sequences":
                    raise InputError("a BED file of regions reads several regions of one genotype file: leave the "
                                     "Region field empty" + (" and give a VCF, PLINK or BGEN file, not an aligned "
                                                             "FASTA." if kind == "sequences" else "."))
                regions = _single_input(await _data_from_form(form, "regions_file", "regions_path", target / "regions"))
            return name, task, {"phenotypes": str(phenotypes), "trait": trait, kind: str(variants), "seed": seed,
                                "covariates": values.get("covariates", "").strip(),
                                "trait_transform": _choice(values, "trait_transform", TRAIT_TRANSFORMS),
                                "region": region, **({"regions": str(regions)} if regions else {}),
                                "structure_genotypes": str(structure) if structure else None,
                                "structure_pcs": _integer(values, "structure_pcs", 5, 1, 50),
                                "min_maf": _number(values, "min_maf", 0.01, 0.0, 0.49),
                                "permutations": _integer(values, "permutations", 20, 5, 1000)}
        if task == "detect":
            images = await _data_from_form(form, "files", "path", target / "images")
            if _data_given(form, "annotation_file", "annotation_path"):
                annotations = _single_input(await _data_from_form(form, "annotation_file", "annotation_path",
                                                                  target / "annotations"))
                params = {"annotations": str(annotations), "images": str(images if images.is_dir() else images.parent)}
            else:
                params = {"annotations": str(images)}
            return name, task, {**params, "seed": seed, "epochs": _integer(values, "detect_epochs", 0, 0, 1000),
                                "kind": _choice(values, "detect_kind", ("auto", "points", "boxes", "masks")),
                                "group_column": values.get("detect_group_column", "").strip() or None,
                                "time_budget": 60.0 * _number(values, "detect_time_budget_min", 0.0, 0.0, 7 * 24 * 60),
                                "object_size": _number(values, "object_size", 0.0, 0.0, 2000.0),
                                "learning_curve": _choice(values, "detect_learning_curve", ("auto", "on", "off")),
                                "stack": _choice(values, "detect_stack", STACK_CHOICES)}
        raise InputError("choose a task: classify images or DNA sequences, cluster, associate, detect objects or "
                         "learn image features (pretrain).")

    async def _data_from_form(form, files_field: str, path_field: str, target: Path) -> Path:
        """Uploaded files (zips unpacked safely, folder uploads keep their sub-folders), files kept from a refused
        try of the same form, or a path under a root."""
        uploads = _chosen_files(form, files_field)
        typed = str(form.get(path_field, "") or "").strip()
        if uploads and typed:
            raise InputError("give either files to upload or a path on this machine, not both.")
        if typed:
            return security.inside_roots(typed, settings.roots, what="data path")
        kept = _kept_folder(str(form.get(f"kept_{files_field}", "") or ""))
        if not uploads and kept is None:
            raise InputError("choose the data: upload files (or a zip), or type a path on this machine.")
        if target.exists():
            shutil.rmtree(target)
        if not uploads:  # linked, not moved: a later mistake in the same form keeps them kept
            await asyncio.to_thread(shutil.copytree, kept, target, copy_function=_link_or_copy)
            return _entry_or_folder(target)
        await _save_uploads(uploads, target)
        return _entry_or_folder(target)

    def _data_given(form, files_field: str, path_field: str) -> bool:
        """Whether an optional input of the form was given: uploaded now, typed as a path, or kept from a refused try
        of the same form (`_data_from_form` then reads it)."""
        return bool(_chosen_files(form, files_field) or str(form.get(path_field, "") or "").strip()
                    or _kept_folder(str(form.get(f"kept_{files_field}", "") or "")))

    def _kept_folder(token: str) -> Path | None:
        folder = settings.uploads_dir / KEPT_UPLOADS / token
        return folder if KEPT_TOKEN.fullmatch(token) and folder.is_dir() else None

    async def _keep_uploads(form, values: dict) -> dict[str, dict]:
        """The files of a refused New run form, kept on the server under a random token so that the corrected form
        need not send them again (issue 18: every file had to be chosen again after a form error). Files that were
        themselves the refusal (a bad zip, a wrong type) are not kept. Kept files older than a day are removed."""
        kept_root = settings.uploads_dir / KEPT_UPLOADS
        kept_root.mkdir(parents=True, exist_ok=True)
        for old in kept_root.iterdir():
            if time.time() - old.stat().st_mtime > 86_400:
                shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        kept = {}
        for upload_field in UPLOAD_FIELDS:
            uploads = _chosen_files(form, upload_field)
            token = str(values.get(f"kept_{upload_field}", "") or "")
            if uploads:
                token = secrets.token_urlsafe(18)
                try:
                    await _save_uploads(uploads, kept_root / token)
                except InputError:
                    shutil.rmtree(kept_root / token, ignore_errors=True)
                    continue
                names = [f.filename for f in uploads]
                (kept_root / f"{token}.json").write_text(json.dumps(names))
            elif _kept_folder(token) is not None:
                names = json.loads((kept_root / f"{token}.json").read_text())
            else:
                continue
            shown = ", ".join(Path(n).name if len(names) > 3 else n for n in names[:3])
            try:  # a kept table still fills its column menus (trait, covariates, group, known label)
                columns = await asyncio.to_thread(views.table_columns, _single_input(kept_root / token))
            except InputError:
                columns = []
            kept[upload_field] = {"token": token, "names": shown + (f" and {len(names) - 3} more" if len(names) > 3 else ""),
                           "columns": columns}
        return kept

    async def _save_uploads(uploads: list, target: Path) -> None:
        target.mkdir(parents=True)
        budget = settings.max_upload_bytes
        for upload in uploads:
            relative = security.safe_relative(upload.filename)
            await upload.seek(0)  # a refused form's files are read a second time to be kept
            head = await upload.read(4096)
            security.check_upload_type(relative.name, head)
            destination = target / relative
            destination.parent.mkdir(parents=True, exist_ok=True)
            await upload.seek(0)
            await asyncio.to_thread(_copy_upload, upload.file, destination)
            if relative.suffix.lower() == ".zip":
                unpacked = destination.with_suffix("")
                await asyncio.to_thread(security.extract_zip, destination, unpacked, max_bytes=budget * 4)
                destination.unlink()

    return app


def _chosen_files(form, field: str) -> list[UploadFile]:
    """The files chosen in one file input of a form (an input left empty sends one nameless part)."""
    return [f for f in form.getlist(field) if isinstance(f, UploadFile) and f.filename]


def _link_or_copy(source: str, destination: str) -> None:
    try:
        os.link(source, destination)
    except OSError:  # a file system without hard links
        shutil.copy2(source, destination)


def _entry_or_folder(target: Path) -> Path:
    entries = [p for p in target.iterdir()]
    return entries[0] if len(entries) == 1 else target


def _copy_upload(source, destination: Path) -> None:
    with open(destination, "wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)


def _image_data_root(data: Path) -> Path:
    """A folder whose only content is one folder (as zips of a folder are) is that folder; a folder with a manifest
    CSV and no class sub-folders is that manifest."""
    while data.is_dir():
        entries = [p for p in data.iterdir() if not p.name.startswith(".")]
        if len(entries) == 1 and entries[0].is_dir():
            data = entries[0]
            continue
        tables = [p for p in entries if p.suffix.lower() == ".csv"]
        if len(tables) == 1 and not any(p.is_dir() for p in entries):
            return tables[0]
        break
    return data


def _single_input(data: Path) -> Path:
    """A table, FASTA or VCF upload is one file; a zip or folder upload may hold one folder (images, 10x), a
    PLINK fileset (.bed, .bim, .fam or .pgen, .pvar, .psam), which the genotype reader opens by its .bed or .pgen,
    or a .bgen with its .sample."""
    while data.is_dir():
        entries = [p for p in data.iterdir() if not p.name.startswith(".")]
        suffixes = {p.suffix.lower() for p in entries}
        for main, companions in ((".bed", {".bim", ".fam"}), (".pgen", {".pvar", ".psam"}),
                                 (".bgen", {".sample", ".bgi"})):
            mains = [p for p in entries if p.suffix.lower() == main]
            if len(mains) == 1 and suffixes <= {main} | companions:
                return mains[0]
        if len(entries) != 1:
            break
        data = entries[0]
    return data


def _choice(values: dict, key: str, choices: tuple[str, ...]) -> str:
    """A menu's value, or its first choice (the default) when the form sent none or something else."""
    return values.get(key) if values.get(key) in choices else choices[0]


def _integer(values: dict, key: str, default: int, low: int, high: int) -> int:
    return int(_number(values, key, default, low, high))


def _number(values: dict, key: str, default: float, low: float, high: float) -> float:
    text = (values.get(key) or "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{key.replace('_', ' ')} must be a number, not {text!r}.") from None
    if not low <= value <= high:
        raise InputError(f"{key.replace('_', ' ')} must be between {low:g} and {high:g}.")
    return value


def _shown_name(file: str, uploads: Path) -> str:
    path = Path(str(file))
    try:
        return str(path.resolve().relative_to(uploads.resolve()))
    except ValueError:
        return str(file)


def estimate_in_worker(data: str, task: str, **options) -> tuple[dict | None, str | None]:
    """In the worker process: the measured estimate of a classification or detection run, or its one-line error."""
    from biolens.estimate import estimate

    try:
        return estimate(data, task, **options), None
    except InputError as exc:
        return None, str(exc).splitlines()[0]


def call_in_worker(function: str, *args, **kwargs) -> str | None:
    """In the worker process: a function of the public API (biolens.predict, review, export), or its one-line error."""
    import biolens

    try:
        getattr(biolens, function)(*args, **kwargs)
    except InputError as exc:
        return str(exc).splitlines()[0]
    return None
