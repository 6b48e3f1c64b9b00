// whisper-service web page: plain ES modules, no build step. Talks to the same API as every other client.

import { LANGUAGES, detectLanguage, translate } from "./i18n.js";

const $ = (selector) => document.querySelector(selector);
const KEY_STORAGE = "whisper-service.api-key";
const LANGUAGE_STORAGE = "whisper-service.page-language";
const CHOICES_STORAGE = "whisper-service.choices";
const FINISHED = ["completed", "failed", "cancelled"];
const PAGE_SIZE = 20;
// The choices the page remembers between visits (ids of their form elements), in localStorage.
const REMEMBERED = ["task-type", "model", "language", "priority", "chinese-script", "word-timestamps", "diarize",
  "min-speakers", "max-speakers", "format"];

const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  language: "en",
  tasks: new Map(), // id -> task as listed
  cursor: null, // next_cursor of the last page loaded; null once every page is shown
  localAudio: new Map(), // id -> object URL of a file uploaded from this page
  open: null, // the task whose transcript is shown
  segments: [], // [{start, end, element}]
  events: null, // AbortController of the live stream
};

// ---- Words: every visible text comes from i18n.js ---------------------------------------------------------------

function t(key, values) {
  return translate(state.language, key, values);
}

/** Show a translatable message in `element`; it follows later language switches. */
function say(element, key, values = {}) {
  element.dataset.i18n = key;
  element.dataset.i18nValues = JSON.stringify(values);
  element.textContent = t(key, values);
  element.hidden = false;
}

/** Show a message as it is (the server's own words), or clear the element and hide it when there is none. */
function show(element, message) {
  delete element.dataset.i18n;
  element.textContent = message || "";
  element.hidden = !message;
}

function translatePage(root = document) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n, JSON.parse(element.dataset.i18nValues || "{}"));
  }
  for (const attribute of ["placeholder", "aria-label"]) {
    for (const element of root.querySelectorAll(`[data-i18n-${attribute}]`)) {
      element.setAttribute(attribute, t(element.getAttribute(`data-i18n-${attribute}`)));
    }
  }
}

function setLanguage(language) {
  state.language = language in LANGUAGES ? language : "en";
  document.documentElement.lang = state.language;
  $("#page-language").value = state.language;
  translatePage();
  for (const task of state.tasks.values()) upsertTask(task);
  renderMeta();
  search();
}

function setupLanguage() {
  const select = $("#page-language");
  for (const [code, name] of Object.entries(LANGUAGES)) {
    const option = new Option(name, code);
    option.lang = code; // each language's name in its own script and font
    select.add(option);
  }
  select.addEventListener("change", () => {
    localStorage.setItem(LANGUAGE_STORAGE, select.value);
    setLanguage(select.value);
  });
  setLanguage(localStorage.getItem(LANGUAGE_STORAGE) || detectLanguage(navigator.languages || [navigator.language]));
}

// ---- Remembered choices ------------------------------------------------------------------------------------------

function readChoice(element) {
  return element.type === "checkbox" ? element.checked : element.value;
}

function writeChoice(element, value) {
  if (element.type === "checkbox") element.checked = Boolean(value);
  else if (element.tagName !== "SELECT" || [...element.options].some((option) => option.value === value)) {
    element.value = value;
  }
}

function remembered() {
  try {
    return JSON.parse(localStorage.getItem(CHOICES_STORAGE)) || {};
  } catch {
    return {};
  }
}

/** Put the remembered choices back; selects filled from the server call it again once their options exist. */
function restoreChoices() {
  const choices = remembered();
  for (const id of REMEMBERED) if (id in choices) writeChoice(document.getElementById(id), choices[id]);
}

function setupChoices() {
  restoreChoices();
  for (const id of REMEMBERED) {
    const element = document.getElementById(id);
    const save = () => {
      localStorage.setItem(CHOICES_STORAGE, JSON.stringify({ ...remembered(), [id]: readChoice(element) }));
    };
    element.addEventListener("input", save);
    element.addEventListener("change", save);
  }
}

// ---- API ---------------------------------------------------------------------------------------------------------

class ApiError extends Error {}

function headers(extra = {}) {
  return state.key ? { ...extra, Authorization: `Bearer ${state.key}` } : extra;
}

async function api(path, options = {}) {
  let response;
  try {
    response = await fetch(path, { ...options, headers: headers(options.headers) });
  } catch (error) {
    throw new ApiError(t("error.unreachable", { error: error.message }));
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
    if (response.status === 401) return `${detail} ${t("error.key")}`;
    return [detail, fields].filter(Boolean).join(" — ") || `HTTP ${response.status}`;
  } catch {
    return `HTTP ${response.status} ${response.statusText}`;
  }
}

// ---- Key and setup -----------------------------------------------------------------------------------------------

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

function addOption(select, value, key, values) {
  const option = new Option("", value);
  option.dataset.i18n = key;
  option.dataset.i18nValues = JSON.stringify(values || {});
  option.textContent = t(key, values);
  select.add(option);
}

async function loadOptions() {
  const caps = await api("/v1/capabilities");
  // "Server default (X)" sends nothing (WHISPER_DEFAULT_CHINESE_SCRIPT applies); "As the model writes" sends `none`.
  const scripts = $("#chinese-script");
  scripts.length = 0;
  const fallback = caps.default_chinese_script || "none";
  if (fallback === "none") addOption(scripts, "", "script.defaultNone");
  else addOption(scripts, "", "script.defaultIs", { script: { key: `script.${fallback}` } });
  addOption(scripts, "none", "script.none");
  for (const script of caps.chinese_scripts) if (script !== "none") addOption(scripts, script, `script.${script}`);
  $("#summarize").dataset.available = caps.summaries ? "yes" : "";
  try {
    const models = await api("/v1/models");
    const select = $("#model");
    select.length = 1;
    for (const model of models.data) {
      if (model.id === "whisper-1") continue;
      if (model.id === caps.default_model) addOption(select, model.id, "model.isDefault", { model: model.id });
      else select.add(new Option(model.id, model.id));
    }
  } catch (error) {
    show($("#list-error"), error.message);
  }
  restoreChoices();
}

// ---- Creating tasks ----------------------------------------------------------------------------------------------

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
    const file = fileInput.files[0];
    if (file) say($("#file-name"), "file.selected", { name: file.name });
    else show($("#file-name"), "");
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
    if (!file && !url) return say($("#create-error"), "create.nothing");
    const submit = $("#submit");
    submit.disabled = true;
    if (file) say($("#create-status"), "create.uploading", { name: file.name });
    else say($("#create-status"), "create.creating");
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
      say($("#create-status"), "create.done", { name: taskName(task) });
      // The media goes; the options stay as the user chose them.
      fileInput.value = "";
      $("#file-url").value = "";
      show($("#file-name"), "");
      upsertTask(task);
    } catch (error) {
      show($("#create-status"), "");
      show($("#create-error"), error.message);
    } finally {
      submit.disabled = false;
    }
  });
}

// ---- Task list: newest first, a page at a time ----------------------------------------------------------------

async function loadTasks() {
  const status = $("#status-filter").value;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), ...(status ? { status } : {}) });
  try {
    const page = await api(`/v1/tasks?${query}`);
    closeTranscript();
    state.tasks.clear();
    $("#task-list").replaceChildren();
    state.cursor = null; // so that every task of this page is shown
    for (const task of page.items) upsertTask(task);
    state.cursor = page.next_cursor;
    showListEnd();
    show($("#list-error"), "");
  } catch (error) {
    show($("#list-error"), error.message);
  }
}

async function loadMore() {
  const button = $("#more");
  const status = $("#status-filter").value;
  const query = new URLSearchParams({ limit: String(PAGE_SIZE), cursor: state.cursor, ...(status ? { status } : {}) });
  button.disabled = true;
  try {
    const page = await api(`/v1/tasks?${query}`);
    const cursor = page.next_cursor;
    state.cursor = null;
    for (const task of page.items) upsertTask(task);
    state.cursor = cursor;
    showListEnd();
  } catch (error) {
    show($("#list-error"), error.message);
  } finally {
    button.disabled = false;
  }
}

function showListEnd() {
  $("#more").hidden = !state.cursor;
  $("#no-tasks").hidden = state.tasks.size > 0 || Boolean(state.cursor);
}

function taskName(task) {
  return task.filename || task.source_url || task.id;
}

function newerThan(a, b) {
  return Date.parse(a.created_at) > Date.parse(b.created_at) || (a.created_at === b.created_at && a.id > b.id);
}

/** Where a task not yet shown goes: before the first older one. Null when it belongs to a page not loaded yet. */
function placeFor(task) {
  for (const item of $("#task-list").children) {
    if (newerThan(task, state.tasks.get(item.dataset.id))) return { before: item };
  }
  return state.cursor ? null : { before: null };
}

function upsertTask(task) {
  const filter = $("#status-filter").value;
  let item = document.getElementById(`task-${task.id}`);
  if (filter && task.status !== filter) {
    if (item) removeTask(task.id);
    return;
  }
  if (!item) {
    const place = placeFor(task);
    if (!place) return;
    item = document.createElement("li");
    item.id = `task-${task.id}`;
    item.dataset.id = task.id;
    item.innerHTML = `
      <div class="about">
        <div class="name"></div>
        <div class="state"><span class="badge"></span> <span class="detail"></span></div>
      </div>
      <div class="actions">
        <button type="button" class="secondary" data-action="open" data-i18n="action.open"></button>
        <button type="button" class="secondary" data-action="cancel" data-i18n="action.cancel"></button>
        <button type="button" class="secondary" data-action="delete" data-i18n="action.delete"></button>
      </div>
      <progress max="100" value="0"></progress>`;
    item.querySelector(".actions").addEventListener("click", (event) => {
      const action = event.target.dataset?.action;
      if (action) taskAction(action, task.id);
    });
    $("#task-list").insertBefore(item, place.before);
  }
  state.tasks.set(task.id, task);
  showListEnd();
  item.dataset.status = task.status;
  item.querySelector(".name").textContent = taskName(task);
  item.querySelector("progress").setAttribute("aria-label", t("progress.of", { name: taskName(task) }));
  translatePage(item.querySelector(".actions"));
  const badge = item.querySelector(".badge");
  badge.textContent = t(`status.${task.status}`);
  badge.className = `badge ${task.status}`;
  const duration = task.duration ? t("seconds", { n: task.duration.toFixed(1) }) : null;
  const details = [`${task.progress}%`, task.language, duration];
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
      if (!confirm(t("confirm.delete"))) return;
      await api(`/v1/tasks/${id}`, { method: "DELETE" });
      removeTask(id);
    }
  } catch (error) {
    show($("#list-error"), error.message);
  }
}

function removeTask(id) {
  if (state.open?.id === id) closeTranscript();
  state.tasks.delete(id);
  document.getElementById(`task-${id}`)?.remove();
  showListEnd();
}

// ---- Live updates: server-sent events read with fetch (EventSource cannot send the API key) ---------------------

async function follow() {
  state.events?.abort();
  const controller = new AbortController();
  state.events = controller;
  while (!controller.signal.aborted) {
    try {
      const response = await fetch("/v1/tasks/events", { headers: headers(), signal: controller.signal });
      if (!response.ok) throw new ApiError(await describeError(response));
      say($("#live"), "live");
      await readEvents(response.body, (name, data) => {
        if (name === "task") upsertTask(data);
        if (name === "deleted") removeTask(data.id);
      });
    } catch (error) {
      if (controller.signal.aborted) return;
      if (error instanceof ApiError) show($("#live"), error.message);
      else say($("#live"), "reconnecting");
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

// ---- Transcript: opens inside its task's list item, where the user clicked --------------------------------------

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
    const item = document.getElementById(`task-${id}`);
    if (!item) return;
    const moved = section.parentElement !== item;
    state.open = task;
    item.append(section);
    section.hidden = false;
    renderMeta();
    const player = $("#player");
    const audio = state.localAudio.get(id) || (task.source === "url" ? task.source_url : null);
    player.hidden = !audio;
    $("#no-audio").hidden = Boolean(audio);
    if (audio && player.src !== audio) player.src = audio;
    renderSegments(task.result?.segments || []);
    $("#summarize").hidden = !$("#summarize").dataset.available;
    show($("#summary"), "");
    $("#search").value = "";
    show($("#search-count"), "");
    if (moved) item.scrollIntoView({ behavior: "smooth", block: "start" });
  } catch (error) {
    show($("#transcript-error"), error.message);
  }
}

function renderMeta() {
  const task = state.open;
  const duration = task?.result ? t("seconds", { n: task.result.duration.toFixed(1) }) : null;
  const parts = task ? [taskName(task), task.result?.language, duration] : [];
  $("#transcript-meta").textContent = parts.filter(Boolean).join(" · ");
}

function closeTranscript() {
  const section = $("#transcript");
  section.hidden = true;
  $("#player").pause();
  $("#transcript-home").append(section);
  state.open = null;
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
  if (query) say($("#search-count"), hits === 1 ? "search.one" : "search.many", { n: hits });
  else show($("#search-count"), "");
}

async function download() {
  const task = state.open;
  const format = $("#format").value;
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
  say($("#summary"), "summarizing");
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
  $("#download").addEventListener("click", download);
  $("#summarize").addEventListener("click", summarize);
  $("#close-transcript").addEventListener("click", () => {
    const item = document.getElementById(`task-${state.open?.id}`);
    closeTranscript();
    item?.querySelector('[data-action="open"]').focus();
  });
  $("#status-filter").addEventListener("change", loadTasks);
  $("#more").addEventListener("click", loadMore);
}

// ---- Start -------------------------------------------------------------------------------------------------------

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

setupLanguage();
setupChoices();
setupKey();
setupCreate();
setupTranscript();
start();
