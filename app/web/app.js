// whisper-service web page: plain ES module, no build step. Talks to the same API as every other client.

const $ = (selector) => document.querySelector(selector);
const KEY_STORAGE = "whisper-service.api-key";
const FINISHED = ["completed", "failed", "cancelled"];

const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  tasks: new Map(), // id -> task as listed
  localAudio: new Map(), // id -> object URL of a file uploaded from this page
  open: null, // the task whose transcript is shown
  segments: [], // [{start, end, element}]
  events: null, // AbortController of the live stream
};

// ---- API ------------------------------------------------------------------------------------------------------

class ApiError extends Error {}

function headers(extra = {}) {
  return state.key ? { ...extra, Authorization: `Bearer ${state.key}` } : extra;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: headers(options.headers) });
  } catch (error) {
    throw new ApiError(`The server could not be reached (${error.message}).`);
  }
  if (!response.ok) throw new ApiError(await describeError(response));
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  return type.includes("json") ? response.json() : response;
}

async function describeError(response) {
  // problem+json from the task API; OpenAI's shape from /v1/models.
  try {
    const body = await response.json();
    const detail = body.detail || body.error?.message || body.title;
    const fields = (body.errors || []).map((e) => `${e.field}: ${e.message}`).join("; ");
    if (response.status === 401) return `${detail} Enter a valid API key above.`;
    return [detail, fields].filter(Boolean).join(" — ") || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

function show(element, message) {
  element.textContent = message || "";
  element.hidden = !message;
}

// ---- Key and setup -------------------------------------------------------------------------------------------

function setupKey() {
  const input = $("#api-key");
  input.value = state.key;
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = input.value.trim();
    if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
    else localStorage.removeItem(KEY_STORAGE);
    start();
  });
}

async function loadOptions() {
  const caps = await api("/v1/capabilities");
  const scripts = $("#chinese-script");
  scripts.length = 1;
  for (const script of caps.chinese_scripts) scripts.add(new Option(script[0].toUpperCase() + script.slice(1), script));
  $("#summarize").dataset.available = caps.summaries ? "yes" : "";
  try {
    const models = await api("/v1/models");
    const select = $("#model");
    select.length = 1;
    for (const model of models.data) {
      if (model.id !== "whisper-1") select.add(new Option(model.id === caps.default_model ? `${model.id} (default)` : model.id, model.id));
    }
  } catch (error) {
    show($("#list-error"), error.message);
  }
}

// ---- Creating tasks ------------------------------------------------------------------------------------------

function options() {
  const values = {
    task_type: $("#task-type").value,
    priority: $("#priority").value,
    model: $("#model").value,
    language: $("#language").value.trim(),
    chinese_script: $("#chinese-script").value,
    word_timestamps: $("#word-timestamps").checked ? "true" : "",
    diarize: $("#diarize").checked ? "true" : "",
    min_speakers: $("#diarize").checked ? $("#min-speakers").value : "",
    max_speakers: $("#diarize").checked ? $("#max-speakers").value : "",
  };
  return Object.fromEntries(Object.entries(values).filter(([, value]) => value));
}

function setupCreate() {
  const form = $("#create-form");
  const fileInput = $("#file");
  const zone = $("#drop-zone");
  fileInput.addEventListener("change", () => {
    $("#file-name").textContent = fileInput.files[0] ? `Selected: ${fileInput.files[0].name}` : "";
  });
  for (const name of ["dragenter", "dragover"]) {
    zone.addEventListener(name, (event) => {
      event.preventDefault();
      zone.classList.add("over");
    });
  }
  for (const name of ["dragleave", "drop"]) zone.addEventListener(name, () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    if (event.dataTransfer.files.length) {
      fileInput.files = event.dataTransfer.files;
      fileInput.dispatchEvent(new Event("change"));
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    show($("#create-error"), "");
    const file = fileInput.files[0];
    const url = $("#file-url").value.trim();
    if (!file && !url) return show($("#create-error"), "Choose a file or paste a link first.");
    const submit = $("#submit");
    submit.disabled = true;
    $("#create-status").textContent = file ? `Uploading ${file.name}…` : "Creating the task…";
    try {
      let task;
      if (file) {
        const body = new FormData();
        body.append("file", file, file.name);
        for (const [name, value] of Object.entries(options())) body.append(name, value);
        task = await api("/v1/tasks", { method: "POST", body });
        state.localAudio.set(task.id, URL.createObjectURL(file));
      } else {
        task = await api("/v1/tasks", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ ...options(), file_url: url }),
        });
      }
      $("#create-status").textContent = `Task created: ${task.filename || task.source_url || task.id}.`;
      form.reset();
      $("#file-name").textContent = "";
      upsertTask(task);
    } catch (error) {
      $("#create-status").textContent = "";
      show($("#create-error"), error.message);
    } finally {
      submit.disabled = false;
    }
  });
}

// ---- Task list -----------------------------------------------------------------------------------------------

async function loadTasks() {
  const status = $("#status-filter").value;
  const query = new URLSearchParams({ limit: "50", ...(status ? { status } : {}) });
  try {
    const page = await api(`/v1/tasks?${query}`);
    state.tasks.clear();
    $("#task-list").replaceChildren();
    for (const task of page.items.reverse()) upsertTask(task);
    show($("#list-error"), "");
  } catch (error) {
    show($("#list-error"), error.message);
  }
}

function taskName(task) {
  return task.filename || task.source_url || task.id;
}

function upsertTask(task) {
  const filter = $("#status-filter").value;
  let item = document.getElementById(`task-${task.id}`);
  if (filter && task.status !== filter) {
    item?.remove();
    return;
  }
  state.tasks.set(task.id, task);
  if (!item) {
    item = document.createElement("li");
    item.id = `task-${task.id}`;
    item.innerHTML = `
      <div><div class="name"></div><div class="state"><span class="badge"></span> <span class="detail"></span></div></div>
      <div class="actions">
        <button type="button" class="secondary" data-action="open">Open</button>
        <button type="button" class="secondary" data-action="cancel">Cancel</button>
        <button type="button" class="secondary" data-action="delete">Delete</button>
      </div>
      <progress max="100" value="0"></progress>`;
    item.querySelector(".name").textContent = taskName(task);
    item.querySelector("progress").setAttribute("aria-label", `Progress of ${taskName(task)}`);
    item.addEventListener("click", (event) => {
      const action = event.target.dataset?.action;
      if (action) taskAction(action, task.id);
    });
    $("#task-list").prepend(item);
  }
  item.dataset.status = task.status;
  const badge = item.querySelector(".badge");
  badge.textContent = task.status;
  badge.className = `badge ${task.status}`;
  const details = [`${task.progress}%`, task.language, task.duration ? `${task.duration.toFixed(1)} s` : null];
  if (task.error) details.push(`${task.error.type}: ${task.error.message}`);
  item.querySelector(".detail").textContent = details.filter(Boolean).join(" · ");
  item.querySelector("progress").value = task.progress;
  item.querySelector('[data-action="open"]').disabled = task.status !== "completed";
  item.querySelector('[data-action="cancel"]').disabled = FINISHED.includes(task.status);
  if (state.open?.id === task.id && task.status === "completed" && !state.open.result) openTranscript(task.id);
}

async function taskAction(action, id) {
  try {
    if (action === "open") return await openTranscript(id);
    if (action === "cancel") return upsertTask(await api(`/v1/tasks/${id}/cancel`, { method: "POST" }));
    if (action === "delete") {
      if (!confirm("Delete this task and its transcript?")) return;
      await api(`/v1/tasks/${id}`, { method: "DELETE" });
      removeTask(id);
    }
  } catch (error) {
    show($("#list-error"), error.message);
  }
}

function removeTask(id) {
  state.tasks.delete(id);
  document.getElementById(`task-${id}`)?.remove();
  if (state.open?.id === id) $("#transcript").hidden = true;
}

// ---- Live updates: server-sent events read with fetch (EventSource cannot send the API key) -----------------

async function follow() {
  state.events?.abort();
  const controller = new AbortController();
  state.events = controller;
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/v1/tasks/events", { headers: headers(), signal: controller.signal });
      if (!response.ok) throw new ApiError(await describeError(response));
      $("#live").textContent = "Live";
      await readEvents(response.body, (name, data) => {
        if (name === "task") upsertTask(data);
        if (name === "deleted") removeTask(data.id);
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      $("#live").textContent = error instanceof ApiError ? error.message : "Reconnecting…";
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function readEvents(body, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ---- Transcript ----------------------------------------------------------------------------------------------

function clock(seconds) {
  const whole = Math.floor(seconds);
  const h = Math.floor(whole / 3600);
  const m = Math.floor((whole % 3600) / 60);
  const s = String(whole % 60).padStart(2, "0");
  return h ? `${h}:${String(m).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

async function openTranscript(id) {
  const section = $("#transcript");
  show($("#transcript-error"), "");
  try {
    const task = await api(`/v1/tasks/${id}`);
    state.open = task;
    section.hidden = false;
    $("#transcript-meta").textContent = [taskName(task), task.result?.language, task.result ? `${task.result.duration.toFixed(1)} s` : null]
      .filter(Boolean)
      .join(" · ");
    const player = $("#player");
    const audio = state.localAudio.get(id) || (task.source === "url" ? task.source_url : null);
    player.hidden = !audio;
    $("#no-audio").hidden = Boolean(audio);
    if (audio && player.src !== audio) player.src = audio;
    renderSegments(task.result?.segments || []);
    $("#summarize").hidden = !$("#summarize").dataset.available;
    show($("#summary"), "");
    $("#search").value = "";
    $("#search-count").textContent = "";
    section.scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (error) {
    show($("#transcript-error"), error.message);
  }
}

function renderSegments(segments) {
  const list = $("#segments");
  list.replaceChildren();
  state.segments = segments.map((segment) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.start = segment.start;
    const time = document.createElement("time");
    time.textContent = clock(segment.start);
    button.append(time);
    if (segment.speaker) {
      const speaker = document.createElement("span");
      speaker.className = "speaker";
      speaker.textContent = segment.speaker;
      button.append(speaker);
    }
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = segment.text.trim();
    button.append(text);
    button.addEventListener("click", () => seek(segment.start));
    item.append(button);
    list.append(item);
    return { start: segment.start, end: segment.end, element: item, text: segment.text.trim() };
  });
}

function seek(seconds) {
  const player = $("#player");
  if (player.hidden) return;
  player.currentTime = seconds;
  player.play().catch(() => {}); // autoplay may be refused; the position still moved
}

function followPlayback() {
  const now = $("#player").currentTime;
  for (const segment of state.segments) {
    const current = segment.start <= now && now < segment.end;
    if (current !== segment.element.classList.contains("current")) {
      segment.element.classList.toggle("current", current);
      if (current) {
        segment.element.setAttribute("aria-current", "true");
        segment.element.scrollIntoView({ block: "nearest" });
      } else {
        segment.element.removeAttribute("aria-current");
      }
    }
  }
}

function search() {
  const query = $("#search").value.trim().toLowerCase();
  let hits = 0;
  for (const segment of state.segments) {
    const span = segment.element.querySelector(".text");
    span.textContent = segment.text;
    const at = query ? segment.text.toLowerCase().indexOf(query) : -1;
    segment.element.hidden = Boolean(query) && at < 0;
    if (at >= 0) {
      hits += 1;
      const mark = document.createElement("mark");
      mark.textContent = segment.text.slice(at, at + query.length);
      span.replaceChildren(segment.text.slice(0, at), mark, segment.text.slice(at + query.length));
    }
  }
  $("#search-count").textContent = query ? `${hits} matching segment${hits === 1 ? "" : "s"}` : "";
}

async function download(format) {
  const task = state.open;
  try {
    const response = await api(`/v1/tasks/${task.id}/subtitles?format=${format}`);
    const blob = await response.blob();
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `${(task.filename || task.id).replace(/\.[^.]+$/, "")}.${format}`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
  } catch (error) {
    show($("#transcript-error"), error.message);
  }
}

async function summarize() {
  const button = $("#summarize");
  button.disabled = true;
  show($("#summary"), "Summarizing…");
  try {
    const summary = await api(`/v1/tasks/${state.open.id}/summaries`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: "{}",
    });
    show($("#summary"), summary.text);
  } catch (error) {
    show($("#summary"), "");
    show($("#transcript-error"), error.message);
  } finally {
    button.disabled = false;
  }
}

function setupTranscript() {
  $("#player").addEventListener("timeupdate", followPlayback);
  $("#player").addEventListener("seeked", followPlayback);
  $("#search").addEventListener("input", search);
  for (const button of document.querySelectorAll(".downloads [data-format]")) {
    button.addEventListener("click", () => download(button.dataset.format));
  }
  $("#summarize").addEventListener("click", summarize);
  $("#status-filter").addEventListener("change", loadTasks);
}

// ---- Start ---------------------------------------------------------------------------------------------------

async function start() {
  show($("#list-error"), "");
  try {
    await loadOptions();
  } catch (error) {
    show($("#list-error"), error.message);
  }
  await loadTasks();
  follow();
}

setupKey();
setupCreate();
setupTranscript();
start();
