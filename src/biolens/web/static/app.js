// The little script the pages need: show the settings of the chosen task, and follow a run live (Server-Sent Events).
"use strict";

function showTaskFields() {
  const form = document.getElementById("new-run");
  if (!form) return;
  const update = () => {
    const task = form.querySelector("input[name=task]:checked").value;
    for (const name of ["classify", "sequence_classify", "cluster", "associate", "detect", "pretrain"]) {
      for (const el of form.querySelectorAll(".task-" + name)) el.hidden = name !== task;
    }
  };
  form.addEventListener("change", update);
  update();
}

function drawCurves(canvas, history) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height, pad = 34;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui"; ctx.fillStyle = "#1b1f24";
  if (!history.length) { ctx.fillText("Curves appear after the first epoch.", pad, h / 2); return; }
  // only the curves this run records (object finding and pretraining have no accuracy): no legend for a missing line
  const series = [
    {key: "loss", label: "training loss", color: "#0b5cad", right: false},
    {key: "val_loss", label: "validation loss", color: "#d1495b", right: false},
    {key: "val_balanced_accuracy", label: "validation balanced accuracy (right axis, 0-1)", color: "#1e6b35", right: true},
  ].filter(s => history.some(r => typeof r[s.key] === "number" && isFinite(r[s.key])));
  const losses = history.flatMap(r => [r.loss, r.val_loss]).filter(v => typeof v === "number" && isFinite(v));
  const maxLoss = Math.max(1e-6, ...losses);
  const n = Math.max(history.length, 2);
  const x = i => pad + (w - 2 * pad) * i / (n - 1);
  ctx.strokeStyle = "#c9d1d9"; ctx.strokeRect(pad, 8, w - 2 * pad, h - pad - 8);
  series.forEach((s, k) => {
    ctx.strokeStyle = s.color; ctx.lineWidth = 2; ctx.beginPath();
    let started = false;
    history.forEach((row, i) => {
      const v = row[s.key];
      if (typeof v !== "number" || !isFinite(v)) return;
      const y = 8 + (h - pad - 8) * (1 - (s.right ? v : v / maxLoss));
      if (started) ctx.lineTo(x(i), y); else { ctx.moveTo(x(i), y); started = true; }
    });
    ctx.stroke();
    history.forEach((row, i) => {  // a dot per epoch, so that one epoch shows too
      const v = row[s.key];
      if (typeof v !== "number" || !isFinite(v)) return;
      ctx.fillStyle = s.color; ctx.beginPath();
      ctx.arc(x(i), 8 + (h - pad - 8) * (1 - (s.right ? v : v / maxLoss)), 3, 0, 2 * Math.PI); ctx.fill();
    });
    ctx.fillStyle = s.color; ctx.fillText(s.label, pad + 4 + k * 150, h - 6);
  });
  // axis numbers: loss on the left (0 to the largest loss), balanced accuracy on the right (0 to 1)
  ctx.fillStyle = "#4a5560";
  const top = 8, bottom = h - pad;
  for (const f of [0, 0.5, 1]) {
    const y = bottom - (bottom - top) * f;
    ctx.textAlign = "right"; ctx.fillText((maxLoss * f).toPrecision(2), pad - 3, y + 4);
    if (history.some(r => typeof r.val_balanced_accuracy === "number")) {
      ctx.textAlign = "left"; ctx.fillText(f.toFixed(1), w - pad + 3, y + 4);
    }
  }
  ctx.textAlign = "left";
  ctx.fillStyle = "#4a5560"; ctx.fillText("epoch 1-" + history.length, w - pad - 70, h - pad + 14);
}

function showStages(stages) {
  // one line per stage under way (outermost first): its name, a bar with "done of total" and the time left
  const box = document.getElementById("stages");
  box.replaceChildren(...stages.map(stage => {
    const line = document.createElement("p");
    line.className = "stage";
    const name = document.createElement("span");
    name.className = "stage-name"; name.textContent = stage.name;
    line.append(name, " ");
    if (stage.fraction !== null) {
      const bar = document.createElement("progress");
      bar.max = 1; bar.value = stage.fraction; bar.textContent = Math.round(stage.fraction * 100) + "%";
      const count = document.createElement("span");
      count.className = "stage-count"; count.textContent = stage.count;
      line.append(bar, " ", count, " ");
    }
    const time = document.createElement("span");
    time.className = "stage-time";
    time.textContent = stage.eta_s !== null ? `about ${(stage.eta_s / 60).toFixed(1)} min left` : `${stage.elapsed_s} s so far`;
    line.append(time);
    return line;
  }));
}

function followRun() {
  const section = document.getElementById("progress");
  if (!section) return;
  const canvas = document.getElementById("curves");
  const initial = JSON.parse(document.getElementById("initial-state").textContent);
  drawCurves(canvas, initial.history);
  if (section.dataset.done === "true") return;
  const events = new EventSource("/runs/" + encodeURIComponent(section.dataset.run) + "/events");
  events.onmessage = (message) => {
    const state = JSON.parse(message.data);
    const status = document.getElementById("status");
    status.textContent = state.status; status.className = "status status-" + state.status;
    document.getElementById("epoch").textContent = state.epochs && state.history.length ? `epoch ${state.epoch} of at most ${state.epochs}` : "";
    document.getElementById("eta").textContent = state.eta_s ? `· training ends in about ${(state.eta_s / 60).toFixed(1)} min` : "";
    const log = document.getElementById("log");
    const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.textContent = state.log; if (atEnd) log.scrollTop = log.scrollHeight;
    const error = document.getElementById("error");
    error.textContent = state.error; error.hidden = !state.error;
    showStages(state.stages || []);
    canvas.hidden = !state.history.length;
    drawCurves(canvas, state.history);
    if (state.done) { events.close(); window.location.reload(); }
  };
}

function fillColumns(listId, columns) {
  const list = document.getElementById(listId);
  if (!list) return;
  list.replaceChildren(...columns.map(name => { const option = document.createElement("option"); option.value = name; return option; }));
  if (listId === "columns-labels" || listId === "columns-data") {
    // a sequence run's groups sit in its label table, or in the one table that holds sequences and labels
    const seen = id => [...document.querySelectorAll(`#${id} option`)].map(o => o.value);
    fillColumns("columns-sequence-groups", [...new Set([...seen("columns-labels"), ...seen("columns-data")])]);
  }
}

function headerOf(text) {
  // the first line of a CSV/TSV, split on the separator it uses most (tab, comma, semicolon)
  const line = text.replace(/^\uFEFF/, "").split(/\r?\n/)[0] || "";
  const separator = ["\t", ",", ";"].reduce((best, s) => line.split(s).length > line.split(best).length ? s : best, ",");
  return line.split(separator).map(c => c.trim().replace(/^"|"$/g, "")).filter(c => c);
}

function columnMenus() {
  // the menus of a table's columns for trait, covariates, group and known label: read from the chosen file in the
  // browser (its first line), or asked of the server for a path on this machine
  const fromFile = (inputId, listId) => {
    const input = document.getElementById(inputId);
    if (!input) return;
    input.addEventListener("change", async () => {
      const file = [...input.files].find(f => /\.(csv|tsv|txt|tab)$/i.test(f.name));
      if (file) fillColumns(listId, headerOf(await file.slice(0, 65536).text()));
    });
  };
  const fromPath = (inputId, listId) => {
    const input = document.getElementById(inputId);
    if (!input) return;
    input.addEventListener("change", async () => {
      if (!input.value.trim()) return;
      const answer = await fetch("/columns?path=" + encodeURIComponent(input.value.trim()));
      if (answer.ok) fillColumns(listId, (await answer.json()).columns);
    });
  };
  fromFile("phenotype_file", "columns-traits"); fromPath("phenotype_path", "columns-traits");
  fromFile("files", "columns-data"); fromPath("path", "columns-data");
  fromFile("annotation_file", "columns-annotations"); fromPath("annotation_path", "columns-annotations");
  fromFile("labels_file", "columns-labels"); fromPath("labels_path", "columns-labels");
}

function confirmForms() {
  // Cancel and Delete ask first (a script, not an inline handler, so the page's content policy can forbid those)
  for (const form of document.querySelectorAll("form.confirm")) {
    form.addEventListener("submit", (event) => { if (!window.confirm(form.dataset.confirm)) event.preventDefault(); });
  }
}

function timeEstimate() {
  // a measured estimate before the run is queued (GET /estimate: the probe of biolens doctor --estimate)
  const value = (id, fallback) => (document.getElementById(id) || {}).value || fallback;
  const forms = [
    {button: "estimate-button", out: "estimate", path: "path", what: "the data",
     query: () => ({epochs: value("epochs", "30"), image_size: value("image_size", "0"), backbone: value("backbone", "compact")})},
    {button: "estimate-detect-button", out: "estimate-detect", path: "annotation_path", what: "the annotations",
     query: () => ({task: "detect", epochs: value("detect_epochs", "0"), kind: value("detect_kind", "auto"),
                    object_size: value("object_size", "0"), group_column: value("detect_group_column", ""),
                    learning_curve: value("detect_learning_curve", "auto")})},
  ];
  for (const form of forms) {
    const button = document.getElementById(form.button);
    if (!button) continue;
    button.addEventListener("click", async () => {
      const out = document.getElementById(form.out);
      const path = value(form.path, "").trim();
      if (!path) { out.textContent = `Give ${form.what} as a path on this machine to estimate before starting; an uploaded run shows its time as it trains.`; return; }
      const query = new URLSearchParams({path, ...form.query()});
      button.disabled = true; out.textContent = "measuring a few training steps on this machine…";
      try {
        const answer = await fetch("/estimate?" + query);
        const body = await answer.json();
        out.textContent = answer.ok ? body.words : body.detail;
      } catch (error) { out.textContent = "The estimate failed: " + error; }
      button.disabled = false;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => { showTaskFields(); followRun(); confirmForms(); columnMenus(); timeEstimate(); });
