/*
 * gpudoc chat page.
 *
 * Streams one turn at a time from LangServe's /agent/stream (POST, server-sent events) and
 * renders each AIMessageChunk as it arrives:
 *   content                              -> the answer (markdown, sanitised)
 *   additional_kwargs.reasoning_content  -> the model's thinking (collapsible)
 *   additional_kwargs.gpudoc_events      -> tool calls and results (collapsible panels),
 *                                           progress, errors; get_gpu_history gets a chart
 *   response_metadata.gpudoc_turn        -> the finished turn: findings, degraded, notes
 * The conversation lives on the server under a thread id kept per browser tab.
 */
(function () {
  "use strict";

  const THREAD_KEY = "gpudoc.threadId";
  const TOKEN_KEY = "gpudoc.apiToken";
  const TRANSCRIPT_KEY = "gpudoc.transcript";
  const SERIES_COLOURS = ["#1f77b4", "#e8710a", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf"];

  const $ = (id) => document.getElementById(id);
  const conversation = $("conversation");
  const form = $("ask-form");
  const question = $("question");
  const sendButton = $("send");
  const stopButton = $("stop");

  let controller = null; // AbortController of the turn being streamed

  // ---------------------------------------------------------------------------------------
  // Session state: thread id, token, transcript (this tab only)
  // ---------------------------------------------------------------------------------------

  function randomId() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID().replace(/-/g, "");
    const bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function threadId() {
    let id = sessionStorage.getItem(THREAD_KEY);
    if (!id) {
      id = "web-" + randomId();
      sessionStorage.setItem(THREAD_KEY, id);
    }
    return id;
  }

  function transcript() {
    try { return JSON.parse(sessionStorage.getItem(TRANSCRIPT_KEY) || "[]"); } catch (e) { return []; }
  }

  function remember(entry) {
    const entries = transcript();
    entries.push(entry);
    sessionStorage.setItem(TRANSCRIPT_KEY, JSON.stringify(entries.slice(-40)));
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: "Bearer " + token } : {};
  }

  /** Ask for the API token (the server answered 401); resolves when the user submitted one. */
  function askForToken(rejected) {
    const dialog = $("token-dialog");
    $("token-error").hidden = !rejected;
    $("token-input").value = "";
    return new Promise((resolve) => {
      dialog.addEventListener("close", function onClose() {
        dialog.removeEventListener("close", onClose);
        const value = $("token-input").value.trim();
        if (value) sessionStorage.setItem(TOKEN_KEY, value);
        resolve(Boolean(value));
      });
      dialog.showModal();
    });
  }

  /** fetch() with the token; on 401 asks for a token once per attempt and retries. */
  async function authorisedFetch(url, options) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const response = await fetch(url, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
      if (response.status !== 401) return response;
      sessionStorage.removeItem(TOKEN_KEY);
      if (!(await askForToken(attempt > 0))) return response;
    }
    return fetch(url, { ...options, headers: { ...(options.headers || {}), ...authHeaders() } });
  }

  // ---------------------------------------------------------------------------------------
  // Small DOM helpers
  // ---------------------------------------------------------------------------------------

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = text;
    return node;
  }

  function renderMarkdown(target, markdown) {
    const html = window.marked.parse(markdown || "", { gfm: true, breaks: false });
    target.innerHTML = window.DOMPurify.sanitize(html);
  }

  function prettyJson(text) {
    try { return JSON.stringify(JSON.parse(text), null, 2); } catch (e) { return text; }
  }

  function scrollToEnd() {
    const nearBottom = conversation.scrollHeight - conversation.scrollTop - conversation.clientHeight < 160;
    if (nearBottom) conversation.scrollTop = conversation.scrollHeight;
  }

  function compactArguments(args) {
    const parts = Object.entries(args || {}).map(([k, v]) => k + "=" + (typeof v === "string" ? v : JSON.stringify(v)));
    return parts.join(", ");
  }

  // ---------------------------------------------------------------------------------------
  // The temperature chart of get_gpu_history
  // ---------------------------------------------------------------------------------------

  const SVG_NS = "http://www.w3.org/2000/svg";

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  /** An SVG line chart of each GPU's temperature, or null when the result has no points. */
  function temperatureChart(result) {
    if (!result || !Array.isArray(result.gpus)) return null;
    const fields = result.point_fields || ["time", "temp_c", "util_pct", "power_w"];
    const timeAt = fields.indexOf("time");
    const tempAt = fields.indexOf("temp_c");
    const series = result.gpus
      .filter((gpu) => Array.isArray(gpu.points) && gpu.points.length > 1)
      .map((gpu) => ({ gpu: gpu.gpu, points: gpu.points, temp: gpu.temp_c || {} }));
    if (!series.length || tempAt < 0) return null;

    const width = 640, height = 210, left = 34, right = 112, top = 10, bottom = 26;
    const plotW = width - left - right, plotH = height - top - bottom;
    const temps = series.flatMap((s) => s.points.map((p) => Number(p[tempAt]))).filter(Number.isFinite);
    let low = Math.min(...temps), high = Math.max(...temps);
    const limits = result.limits_c || {};
    const shownLimits = [];
    if (Number.isFinite(limits.max_operating) && high >= limits.max_operating - 12) shownLimits.push(["max operating", limits.max_operating, "#a15c00"]);
    if (Number.isFinite(limits.slowdown) && high >= limits.slowdown - 6) shownLimits.push(["slowdown", limits.slowdown, "#c62828"]);
    if (Number.isFinite(limits.shutdown) && high >= limits.shutdown - 3) shownLimits.push(["shutdown", limits.shutdown, "#7f0000"]);
    for (const [, value] of shownLimits) high = Math.max(high, value);
    low = Math.floor((low - 2) / 5) * 5;
    high = Math.ceil((high + 2) / 5) * 5;
    const count = Math.max(...series.map((s) => s.points.length));
    const x = (i) => left + (count === 1 ? 0 : (i * plotW) / (count - 1));
    const y = (t) => top + plotH - ((t - low) * plotH) / (high - low || 1);

    const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": `GPU temperature on ${result.node || "the node"}` });
    const step = Math.max(5, Math.ceil((high - low) / 5 / 5) * 5);
    for (let t = low; t <= high; t += step) {
      root.appendChild(svg("line", { class: "grid", x1: left, x2: left + plotW, y1: y(t), y2: y(t) }));
      root.appendChild(svg("text", { class: "tick", x: left - 6, y: y(t) + 4, "text-anchor": "end" }, String(t)));
    }
    root.appendChild(svg("line", { class: "axis", x1: left, x2: left + plotW, y1: top + plotH, y2: top + plotH }));
    const labelled = [0, Math.floor((count - 1) / 2), count - 1];
    const longest = series.reduce((a, b) => (b.points.length > a.points.length ? b : a));
    for (const i of new Set(labelled)) {
      const label = timeAt >= 0 && longest.points[i] ? String(longest.points[i][timeAt]) : String(i);
      root.appendChild(svg("text", { class: "tick", x: x(i), y: height - 8, "text-anchor": i === 0 ? "start" : i === count - 1 ? "end" : "middle" }, label));
    }
    let previousLabelY = Infinity; // limits ascend, so labels go upwards: keep them 12 px apart
    for (const [name, value, colour] of shownLimits) {
      root.appendChild(svg("line", { class: "limit", stroke: colour, x1: left, x2: left + plotW, y1: y(value), y2: y(value) }));
      const labelY = Math.min(y(value) + 4, previousLabelY - 12);
      previousLabelY = labelY;
      root.appendChild(svg("text", { class: "limit-label", fill: colour, x: left + plotW + 6, y: labelY }, `${name} ${value} °C`));
    }
    series.forEach((s, index) => {
      const colour = SERIES_COLOURS[index % SERIES_COLOURS.length];
      const path = s.points
        .map((p, i) => [x(i), y(Number(p[tempAt]))])
        .filter(([, py]) => Number.isFinite(py))
        .map(([px, py]) => `${px.toFixed(1)},${py.toFixed(1)}`).join(" ");
      const line = svg("polyline", { class: "series", points: path, stroke: colour, "data-gpu": s.gpu });
      const last = s.points[s.points.length - 1][tempAt];
      line.appendChild(svg("title", {}, `GPU ${s.gpu}: last ${last} °C` + (s.temp.max !== undefined ? `, max ${s.temp.max} °C` : "")));
      root.appendChild(line);
    });

    const figure = el("figure", "chart");
    const range = result.range ? ` · ${timeLabel(result.range.start)}–${timeLabel(result.range.end)} UTC` : "";
    figure.appendChild(el("figcaption", "chart-title", `${result.node || "GPU"} temperature (°C)${range}`));
    figure.appendChild(root);
    const legend = el("div", "legend");
    series.forEach((s, index) => {
      const item = el("span", null, `GPU ${s.gpu}`);
      item.style.setProperty("--swatch", SERIES_COLOURS[index % SERIES_COLOURS.length]);
      legend.appendChild(item);
    });
    figure.appendChild(legend);
    return figure;
  }

  function timeLabel(iso) {
    const match = /T(\d\d:\d\d)/.exec(String(iso));
    return match ? match[1] : String(iso);
  }

  // ---------------------------------------------------------------------------------------
  // One turn on the page
  // ---------------------------------------------------------------------------------------

  class TurnView {
    constructor(text) {
      this.root = el("section", "turn");
      this.root.appendChild(el("div", "question", text));
      this.card = el("article", "answer-card");
      this.working = el("div", "working");
      this.working.appendChild(el("span", "spinner"));
      this.workingText = el("span", null, "Looking at the cluster…");
      this.working.appendChild(this.workingText);
      this.steps = el("div", "steps");
      this.charts = el("div", "charts");
      this.answer = el("div", "answer cursor");
      this.card.append(this.working, this.steps, this.charts, this.answer);
      this.root.appendChild(this.card);
      this.text = "";
      this.thinking = null;
      this.tools = new Map();
      this.renderPending = false;
      $("empty-state")?.remove();
      conversation.appendChild(this.root);
      conversation.scrollTop = conversation.scrollHeight;
    }

    status(stage, detail) {
      const label = { planning: "Planning which tools to use…", tools: "Calling tools…", answering: "Writing the answer…" }[stage];
      this.workingText.textContent = label || [stage, detail].filter(Boolean).join(": ");
    }

    appendThinking(text) {
      if (!this.thinking) {
        const details = el("details", "step thinking");
        const summary = el("summary");
        summary.appendChild(el("span", "step-name", "Thinking"));
        details.appendChild(summary);
        this.thinkingText = el("div", "thinking-text");
        details.appendChild(this.thinkingText);
        this.steps.prepend(details);
        this.thinking = "";
      }
      this.thinking += text;
      this.thinkingText.textContent = this.thinking;
    }

    toolStarted(event) {
      const details = el("details", "step tool");
      details.dataset.tool = event.name;
      const summary = el("summary");
      summary.appendChild(el("span", "step-name", event.name));
      summary.appendChild(el("span", "step-args", compactArguments(event.arguments)));
      const state = el("span", "step-state running", "running");
      summary.appendChild(state);
      const meta = el("span", "step-meta");
      summary.appendChild(meta);
      details.appendChild(summary);
      const body = el("div", "step-body");
      body.appendChild(el("h4", null, "Arguments"));
      body.appendChild(el("pre", null, JSON.stringify(event.arguments || {}, null, 2)));
      details.appendChild(body);
      this.steps.appendChild(details);
      this.tools.set(event.id, { details, state, meta, body });
      this.workingText.textContent = `Calling ${event.name}…`;
      scrollToEnd();
    }

    toolEnded(event) {
      let view = this.tools.get(event.id);
      if (!view) {
        this.toolStarted({ id: event.id, name: event.name, arguments: {} });
        view = this.tools.get(event.id);
      }
      view.state.className = "step-state " + (event.error ? "error" : "ok");
      view.state.textContent = event.error ? "error" : "ok";
      view.meta.textContent = event.duration_ms ? `${Math.round(event.duration_ms)} ms` : "";
      view.body.appendChild(el("h4", null, event.error ? "Error" : "Result"));
      view.body.appendChild(el("pre", null, prettyJson(event.result)));
      if (event.name === "get_gpu_history" && !event.error) {
        let parsed = null;
        try { parsed = JSON.parse(event.result); } catch (e) { parsed = null; }
        const chart = temperatureChart(parsed);
        if (chart) this.charts.appendChild(chart);
      }
      scrollToEnd();
    }

    appendToken(text) {
      this.text += text;
      this.workingText.textContent = "Writing the answer…";
      if (!this.renderPending) {
        this.renderPending = true;
        requestAnimationFrame(() => {
          this.renderPending = false;
          renderMarkdown(this.answer, this.text);
          scrollToEnd();
        });
      }
    }

    error(message) {
      this.card.appendChild(el("div", "error-box", message));
    }

    finish(turn) {
      this.root.dataset.state = "done";
      this.working.remove();
      this.answer.classList.remove("cursor");
      if (turn) {
        // The streamed tokens are the answer (the server guarantees it): nothing to replace here.
        if (turn.degraded) {
          this.card.classList.add("degraded");
          this.card.prepend(el("div", "degraded-label", "Without the language model"));
          showDegraded(turn.degraded_reason);
        }
        if (Array.isArray(turn.findings) && turn.findings.length) this.card.appendChild(findingsList(turn.findings));
        const notes = [];
        if (turn.tool_calls && turn.tool_calls.length) notes.push(`${turn.tool_calls.length} tool call${turn.tool_calls.length > 1 ? "s" : ""}`);
        if (turn.llm_round_trips) notes.push(`${turn.llm_round_trips} model round trip${turn.llm_round_trips > 1 ? "s" : ""}`);
        const footer = el("div", "turn-notes", notes.join(" · "));
        if (turn.unverified_numbers && turn.unverified_numbers.length) {
          footer.appendChild(el("span", "unverified",
            `${notes.length ? " · " : ""}numbers not found in any tool result: ${turn.unverified_numbers.join(", ")}`));
        }
        if (footer.textContent) this.card.appendChild(footer);
      }
      renderMarkdown(this.answer, this.text);
      if (!this.text.trim()) this.answer.remove();
      scrollToEnd();
    }
  }

  function findingsList(findings) {
    const box = el("section", "findings");
    box.appendChild(el("h3", null, "Findings"));
    for (const finding of findings) {
      const row = el("div", "finding");
      row.dataset.severity = finding.severity;
      row.appendChild(el("span", "severity " + finding.severity, finding.severity));
      const title = el("div", "finding-title", finding.title || finding.rule);
      title.appendChild(el("span", "finding-subject", finding.subject));
      row.appendChild(title);
      if (finding.evidence && finding.evidence.length) row.appendChild(el("div", "finding-evidence", finding.evidence.join("; ")));
      if (finding.action) row.appendChild(el("div", "finding-action", "→ " + finding.action));
      box.appendChild(row);
    }
    return box;
  }

  function showDegraded(reason) {
    $("degraded-banner").hidden = false;
    if (reason) $("degraded-reason").textContent =
      "Answers come from gpudoc's deterministic diagnosis and the evidence behind it, not from the model. " + reason;
  }

  // ---------------------------------------------------------------------------------------
  // Streaming from /agent/stream
  // ---------------------------------------------------------------------------------------

  /** Parses a server-sent-events byte stream into {event, data} records. */
  async function* serverSentEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true }).replace(/\r\n/g, "\n");
      let boundary;
      while ((boundary = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, boundary);
        buffer = buffer.slice(boundary + 2);
        let event = "message";
        const data = [];
        for (const line of block.split("\n")) {
          if (line.startsWith("event:")) event = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length || event !== "message") yield { event, data: data.join("\n") };
      }
    }
  }

  function applyChunk(view, chunk) {
    if (typeof chunk.content === "string" && chunk.content) view.appendToken(chunk.content);
    const extra = chunk.additional_kwargs || {};
    if (extra.reasoning_content) view.appendThinking(extra.reasoning_content);
    for (const event of extra.gpudoc_events || []) {
      if (event.type === "tool_start") view.toolStarted(event);
      else if (event.type === "tool_end") view.toolEnded(event);
      else if (event.type === "status") view.status(event.stage, event.detail);
      else if (event.type === "error") view.error(event.message);
    }
    const turn = (chunk.response_metadata || {}).gpudoc_turn;
    return turn || null;
  }

  async function ask(text) {
    const view = new TurnView(text);
    remember({ role: "user", content: text });
    setBusy(true);
    controller = new AbortController();
    let turn = null;
    try {
      const response = await authorisedFetch("agent/stream", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
        body: JSON.stringify({
          input: { messages: [{ type: "human", content: text }] },
          config: { configurable: { thread_id: threadId() } },
        }),
        signal: controller.signal,
      });
      if (!response.ok) {
        view.error(await describeFailure(response));
      } else {
        for await (const record of serverSentEvents(response.body)) {
          if (record.event === "data") {
            turn = applyChunk(view, JSON.parse(record.data)) || turn;
          } else if (record.event === "error") {
            let message = record.data;
            try { message = JSON.parse(record.data).message || message; } catch (e) { /* keep the raw text */ }
            view.error("The server failed while answering: " + message);
          }
        }
      }
    } catch (error) {
      if (error.name === "AbortError") view.error("Stopped.");
      else view.error("Connection to the gpudoc server failed: " + error.message);
    } finally {
      view.finish(turn);
      remember({ role: "assistant", content: view.text, degraded: Boolean(turn && turn.degraded) });
      controller = null;
      setBusy(false);
    }
  }

  async function describeFailure(response) {
    let detail = "";
    try {
      const body = await response.json();
      detail = body.details || body.detail || body.error || "";
      if (Array.isArray(detail)) detail = detail.map((d) => (d.msg || JSON.stringify(d)).replace(/^Value error, /, "")).join("; ");
    } catch (e) { /* not JSON */ }
    return `The server answered ${response.status}${detail ? ": " + detail : ""}`;
  }

  function setBusy(busy) {
    sendButton.disabled = busy;
    question.disabled = busy;
    stopButton.hidden = !busy;
    if (!busy) question.focus();
  }

  // ---------------------------------------------------------------------------------------
  // Page wiring
  // ---------------------------------------------------------------------------------------

  async function checkModel() {
    const pill = $("llm-status");
    try {
      const response = await authorisedFetch("api/agent/health", { method: "GET" });
      const health = await response.json();
      // `available` says whether the chat answers (it does without a model too); `llmAvailable`
      // whether the language model does.
      if (health.llmAvailable ?? health.available) {
        pill.className = "pill pill-ok";
        pill.textContent = health.model || "model ready";
        pill.title = "Language model: " + (health.model || "available");
      } else {
        pill.className = "pill pill-down";
        pill.textContent = "no language model";
        pill.title = health.error || "The language model is not reachable";
        showDegraded(health.error);
      }
    } catch (e) {
      pill.className = "pill pill-down";
      pill.textContent = "status unknown";
    }
  }

  function restoreTranscript() {
    const entries = transcript();
    for (let i = 0; i < entries.length; i++) {
      if (entries[i].role !== "user") continue;
      const view = new TurnView(entries[i].content);
      const reply = entries[i + 1] && entries[i + 1].role === "assistant" ? entries[i + 1] : null;
      view.text = reply ? reply.content : "";
      view.finish(reply && reply.degraded ? { degraded: true, answer: reply.content } : null);
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = question.value.trim();
    if (!text || controller) return;
    question.value = "";
    question.style.height = "";
    ask(text);
  });
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  question.addEventListener("input", () => {
    question.style.height = "auto";
    question.style.height = Math.min(question.scrollHeight, 200) + "px";
  });
  stopButton.addEventListener("click", () => controller && controller.abort());
  $("new-chat").addEventListener("click", () => {
    if (controller) controller.abort();
    sessionStorage.removeItem(THREAD_KEY);
    sessionStorage.removeItem(TRANSCRIPT_KEY);
    window.location.reload();
  });
  for (const chip of document.querySelectorAll(".chip")) {
    chip.addEventListener("click", () => { if (!controller) ask(chip.textContent); });
  }

  restoreTranscript();
  checkModel();
  question.focus();
})();
