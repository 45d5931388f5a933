/* sweepq dashboard: a small single-page app over /api (no framework, no build step).
 *
 * Safety rule: user-controlled strings (sweep names, params, worker names, log output, config
 * errors) only ever reach the page through textContent / setAttribute; no HTML string is ever parsed.
 * Plotly is the one exception it cannot enforce: it reads a subset of HTML (<b>, <i>, <a href>,
 * <br>, <span style>, entities) in titles, axis and dimension labels, legend entries and hover
 * text, so every label handed to Plotly goes through plotText() first (metric keys come from
 * training programs and can be anything). Parcoords tick labels are the exception: Plotly draws
 * them as plain text, so they are passed as they are (tests/integration/test_browser.py checks both).
 * Everything is loaded from this server (Plotly comes from /vendor/plotly.min.js).
 *
 * A multi-objective sweep (status has `objectives`) gets a Pareto panel (a scatter for two
 * objectives, a pairs plot for three or four), one runs-table column per objective and its front
 * in place of the best run; a sweep of one metric shows none of these.
 */
"use strict";

(function () {
  const body = document.body;
  const FLOWER = safeUrl(body.dataset.flowerUrl || "");
  const POLL_MS = Math.max(500, parseInt(body.dataset.pollMs || "2000", 10) || 2000);
  const TOKEN_KEY = "sweepq.token";
  const STATES = ["queued", "running", "finished", "failed", "crashed", "stopped", "canceled"];
  const DONE = ["finished", "failed", "crashed", "stopped", "canceled"];
  const PAGE = 50;
  const app = document.getElementById("app");

  let view = null; // the current page controller: {poll(), stop()}
  let timer = null;
  let generation = 0;

  // -- DOM helpers --------------------------------------------------------------------------------
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    if (attrs) {
      for (const [k, v] of Object.entries(attrs)) {
        if (v === null || v === undefined || v === false) continue;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = String(v);
        else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.assign(node.dataset, v);
        else node.setAttribute(k, v === true ? "" : String(v));
      }
    }
    for (const c of children.flat(Infinity)) {
      if (c === null || c === undefined || c === false) continue;
      node.appendChild(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return node;
  }
  function plotText(s) {
    // Plotly decodes &amp; &lt; &gt; back to the characters, so the label shows literally
    return String(s).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }
  function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
  function safeUrl(u) {
    try {
      const url = new URL(u, window.location.href);
      return (url.protocol === "http:" || url.protocol === "https:") ? url.href.replace(/\/$/, "") : "";
    } catch (e) { return ""; }
  }
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "number") {
      if (Number.isInteger(v)) return String(v);
      const a = Math.abs(v);
      return (a !== 0 && (a < 1e-3 || a >= 1e5)) ? v.toExponential(3) : String(+v.toPrecision(5));
    }
    if (typeof v === "object") return JSON.stringify(v);
    return String(v);
  }
  function fmtTime(t) {
    if (!t) return "–";
    const d = new Date(t * 1000);
    return d.toLocaleString();
  }
  function fmtDur(s) {
    if (s === null || s === undefined) return "–";
    if (s < 60) return s.toFixed(1) + " s";
    if (s < 3600) return Math.floor(s / 60) + " m " + Math.round(s % 60) + " s";
    return Math.floor(s / 3600) + " h " + Math.round((s % 3600) / 60) + " m";
  }
  function badge(state) { return el("span", {class: "badge " + state, text: state}); }
  function objectivesText(objs) { return objs.map((o) => o.name + " (" + o.goal + ")").join(", "); }
  function flatten(obj, prefix, out) {
    out = out || {};
    if (obj === null || typeof obj !== "object" || Array.isArray(obj)) { out[prefix || "value"] = obj; return out; }
    for (const [k, v] of Object.entries(obj)) {
      const key = prefix ? prefix + "." + k : k;
      if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(v, key, out);
      else out[key] = v;
    }
    return out;
  }
  let plotlyPromise = null;
  function loadPlotly() {
    // Plotly is big: fetched (from this server) only when a page draws plots, then cached
    if (window.Plotly) return Promise.resolve(window.Plotly);
    if (!plotlyPromise) {
      plotlyPromise = new Promise((resolve, reject) => {
        const s = el("script", {src: body.dataset.plotlySrc || "/vendor/plotly.min.js"});
        s.addEventListener("load", () => resolve(window.Plotly));
        s.addEventListener("error", () => { plotlyPromise = null; reject(new Error("could not load Plotly")); });
        document.head.appendChild(s);
      });
    }
    return plotlyPromise;
  }
  function toast(msg) {
    const t = el("div", {class: "toast", role: "status", text: msg});
    document.body.appendChild(t);
    setTimeout(() => t.remove(), 3500);
  }
  function setLive(ok) {
    const live = document.getElementById("live");
    live.classList.toggle("stale", !ok);
    live.textContent = ok ? "● live" : "● offline";
  }

  // -- API ------------------------------------------------------------------------------------------
  class HttpError extends Error {
    constructor(status, data) { super((data && data.error) || ("HTTP " + status)); this.status = status; this.data = data; }
  }
  let tokenWaiters = null;
  async function api(path, opts) {
    opts = opts || {};
    const headers = Object.assign({}, opts.headers || {});
    const token = localStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = "Bearer " + token;
    const resp = await fetch(path, {method: opts.method || "GET", headers, body: opts.body, cache: "no-store"});
    if (resp.status === 401) {
      await askToken(token ? "That token was refused." : "");
      return api(path, opts);
    }
    let data = null;
    const ctype = resp.headers.get("Content-Type") || "";
    if (ctype.includes("json")) data = await resp.json();
    if (!resp.ok) throw new HttpError(resp.status, data);
    return {data, headers: resp.headers, status: resp.status};
  }
  function askToken(message) {
    if (tokenWaiters) return new Promise((res) => tokenWaiters.push(res));
    tokenWaiters = [];
    const overlay = document.getElementById("token-overlay");
    const err = document.getElementById("token-error");
    err.hidden = !message;
    err.textContent = message || "";
    overlay.hidden = false;
    const input = document.getElementById("token-input");
    input.value = "";
    input.focus();
    return new Promise((resolve) => {
      const form = document.getElementById("token-form");
      const onSubmit = (ev) => {
        ev.preventDefault();
        localStorage.setItem(TOKEN_KEY, input.value.trim());
        overlay.hidden = true;
        form.removeEventListener("submit", onSubmit);
        const waiting = tokenWaiters;
        tokenWaiters = null;
        resolve();
        waiting.forEach((w) => w());
      };
      form.addEventListener("submit", onSubmit);
    });
  }
  if (body.dataset.auth) {
    const b = document.getElementById("btn-token");
    b.hidden = false;
    b.addEventListener("click", () => { localStorage.removeItem(TOKEN_KEY); askToken(""); });
  }

  // -- routing and polling ------------------------------------------------------------------------
  function route() {
    if (view && view.stop) view.stop();
    if (timer) clearTimeout(timer);
    generation += 1;
    clear(app);
    const hash = window.location.hash || "#/";
    let m;
    if ((m = hash.match(/^#\/sweep\/([^/?#]+)/))) view = sweepPage(decodeURIComponent(m[1]));
    else if (hash.startsWith("#/new")) view = newPage();
    else view = listPage();
    loop(generation);
  }
  async function loop(gen) {
    if (gen !== generation || !view || !view.poll) return;
    try {
      await view.poll();
      setLive(true);
    } catch (e) {
      if (gen !== generation) return;
      // 400: the address holds no possible sweep id (the API checks ids before looking them up)
      if (e instanceof HttpError && (e.status === 404 || e.status === 400) && view.notFound) view.notFound(e);
      else setLive(false);
    }
    if (gen !== generation) return;
    timer = setTimeout(() => loop(gen), POLL_MS);
  }
  window.addEventListener("hashchange", route);

  // -- sweeps list ----------------------------------------------------------------------------------
  function listPage() {
    const tbody = el("tbody");
    const empty = el("div", {class: "empty", hidden: true},
      "No sweeps yet. ", el("a", {href: "#/new", text: "Create one"}), " or run ",
      el("code", {text: "sweepq sweep config.yaml"}), ".");
    app.append(
      el("div", {class: "row"}, el("h1", {text: "Sweeps"}), el("span", {class: "spacer"})),
      el("div", {class: "card"},
        el("div", {class: "table-wrap"},
          el("table", {id: "sweeps-table"},
            el("thead", null, el("tr", null, ["Sweep", "Name", "State", "Method", "Metric", "Progress", "Best", "Created"]
              .map((h) => el("th", {text: h})))),
            tbody)),
        empty));
    return {
      async poll() {
        const {data} = await api("/api/sweeps");
        clear(tbody);
        empty.hidden = data.length > 0;
        for (const s of data.slice().reverse()) {
          const done = DONE.reduce((a, k) => a + (s.counts[k] || 0), 0);
          const total = Math.max(s.trials || 0, done);
          const pct = total ? Math.round(100 * done / total) : 0;
          tbody.appendChild(el("tr", {class: "clickable", dataset: {id: s.id},
            onclick: () => { window.location.hash = "#/sweep/" + encodeURIComponent(s.id); }},
            el("td", null, el("a", {href: "#/sweep/" + encodeURIComponent(s.id), text: s.id})),
            el("td", {text: s.name || ""}),
            el("td", null, badge(s.state)),
            el("td", {text: s.method}),
            el("td", {text: s.objectives ? objectivesText(s.objectives)
              : (s.metric && s.metric.name ? s.metric.name + " (" + s.metric.goal + ")" : "–")}),
            el("td", null, el("span", {class: "progress", title: done + " of " + total + " trials done"},
              el("span", {style: "width:" + pct + "%"})), " ", done + "/" + total),
            el("td", {class: "num", text: s.objectives ? (s.pareto_size || 0) + " on front"
              : (s.best ? fmt(s.best.value) : "–")}),
            el("td", {text: fmtTime(s.created_at)})));
        }
      },
    };
  }

  // -- new sweep --------------------------------------------------------------------------------------
  const EXAMPLE = [
    "method: bayes",
    "metric:",
    "  name: loss",
    "  goal: minimize",
    "parameters:",
    "  lr:",
    "    distribution: log_uniform_values",
    "    min: 0.0001",
    "    max: 0.1",
    "  layers:",
    "    values: [2, 3, 4]",
    "program: train.py",
    "run_cap: 20",
    "",
  ].join("\n");

  function newPage() {
    const input = el("textarea", {id: "yaml-input", spellcheck: "false", "aria-label": "Sweep config (YAML)"});
    input.value = sessionStorage.getItem("sweepq.draft") || EXAMPLE;
    const errors = el("ul", {id: "yaml-errors", class: "errors error"});
    const warnings = el("ul", {id: "yaml-warnings", class: "errors warning"});
    const status = el("span", {id: "yaml-status", class: "muted"});
    const createBtn = el("button", {id: "btn-create", class: "primary", type: "button", text: "Create sweep"});
    const validateBtn = el("button", {id: "btn-validate", type: "button", text: "Validate"});
    function show(errs, warns) {
      clear(errors); clear(warnings);
      (errs || []).forEach((e) => errors.appendChild(el("li", {text: e})));
      (warns || []).forEach((w) => warnings.appendChild(el("li", {text: "warning: " + w})));
    }
    async function validate() {
      const {data} = await api("/api/validate", {method: "POST", body: input.value,
        headers: {"Content-Type": "application/yaml"}});
      show(data.errors, data.warnings);
      status.textContent = data.ok ? "valid" : data.errors.length + " problem(s)";
      return data.ok;
    }
    let debounce = null;
    input.addEventListener("input", () => {
      sessionStorage.setItem("sweepq.draft", input.value);
      clearTimeout(debounce);
      debounce = setTimeout(() => validate().catch(() => {}), 500);
    });
    validateBtn.addEventListener("click", () => validate().catch((e) => show([e.message], [])));
    createBtn.addEventListener("click", async () => {
      createBtn.disabled = true;
      try {
        const {data} = await api("/api/sweeps", {method: "POST", body: input.value,
          headers: {"Content-Type": "application/yaml"}});
        sessionStorage.removeItem("sweepq.draft");
        toast("Created sweep " + data.id);
        window.location.hash = "#/sweep/" + encodeURIComponent(data.id);
      } catch (e) {
        if (e instanceof HttpError && e.status === 400 && e.data) {
          show(e.data.errors, e.data.warnings);
          status.textContent = (e.data.errors || []).length + " problem(s): not created";
        } else show([e.message], []);
      } finally { createBtn.disabled = false; }
    });
    app.append(
      el("h1", {text: "New sweep"}),
      el("p", {class: "muted"}, "Paste a W&B-compatible sweep config (YAML or JSON). The controller starts it; run trials with ",
        el("code", {text: "sweepq agent <id>"}), " or any ", el("code", {text: "celery -A sweepq.worker worker"}), "."),
      el("div", {class: "card"}, input,
        el("div", {class: "row", style: "margin-top:8px"}, createBtn, validateBtn, status),
        errors, warnings));
    return {poll: null};
  }

  // -- one sweep --------------------------------------------------------------------------------------
  function sweepPage(sid) {
    const st = {
      status: null, sort: "-id", states: new Set(), offset: 0, total: 0, selected: null,
      chosen: new Set(), autoChosen: true, lastScored: -1, slowAt: 0, slowBusy: false, curveKey: "",
      rowsSig: "", headSig: undefined, paretoSig: "",
    };
    const enc = encodeURIComponent(sid);
    const title = el("h1", {id: "sweep-title", text: "Sweep " + sid});
    const sub = el("div", {class: "muted", id: "sweep-sub"});
    const warnBox = el("ul", {class: "errors warning", id: "sweep-warnings"});
    const stateBadge = el("span", {id: "sweep-state"});
    const counts = el("div", {class: "row", id: "state-filter"});
    const buttons = {};
    for (const [a, label, cls] of [["pause", "Pause", ""], ["resume", "Resume", ""], ["stop", "Stop", ""],
      ["cancel", "Cancel", "danger"]]) {
      buttons[a] = el("button", {id: "btn-" + a, type: "button", class: cls, text: label,
        onclick: () => action(a)});
    }
    const bestBox = el("div", {id: "best-run"});
    const bestTitle = el("h2", {text: "Best run"});
    const curves = el("div", {id: "curves", class: "plot"});
    const curvesNote = el("div", {class: "muted", id: "curves-note"});
    const keySelect = el("select", {id: "curve-key", "aria-label": "Metric to plot"});
    keySelect.addEventListener("change", () => { st.curveKey = keySelect.value; pollCurves(); });
    const par = el("div", {id: "parallel", class: "plot"});
    const parNote = el("div", {class: "muted", id: "parallel-note"});
    const imp = el("div", {id: "importance"});
    const thead = el("thead");
    const tbody = el("tbody");
    const pagerInfo = el("span", {class: "muted", id: "runs-count"});
    const prev = el("button", {type: "button", text: "‹ Prev", onclick: () => { st.offset = Math.max(0, st.offset - PAGE); pollRuns(); }});
    const next = el("button", {type: "button", text: "Next ›", onclick: () => { st.offset += PAGE; pollRuns(); }});
    const detail = el("div", {id: "run-detail", class: "card", hidden: true});
    // the Pareto panel: put on the page once the status says the sweep has several objectives
    const pareto = el("div", {id: "pareto", class: "plot"});
    const paretoNote = el("div", {class: "muted", id: "pareto-note"});
    const paretoCard = el("div", {class: "card", id: "pareto-card"}, el("h2", {text: "Pareto front"}), pareto, paretoNote);
    const plotsGrid = el("div", {class: "grid2"},
        el("div", {class: "card"}, el("div", {class: "row"}, el("h2", {text: "Metric vs step"}), keySelect), curves, curvesNote),
        el("div", {class: "card"}, el("h2", {text: "Parallel coordinates"}), par, parNote));

    app.append(
      el("div", {class: "row"}, title, stateBadge, el("span", {class: "spacer", style: "flex:1"}),
        buttons.pause, buttons.resume, buttons.stop, buttons.cancel),
      sub, warnBox,
      el("div", {class: "grid2", style: "margin-top:12px"},
        el("div", {class: "card"}, bestTitle, bestBox),
        el("div", {class: "card"}, el("h2", {text: "Parameter importance"}), imp)),
      plotsGrid,
      el("div", {class: "card"},
        el("div", {class: "row"}, el("h2", {text: "Runs"}), counts),
        el("div", {class: "table-wrap"}, el("table", {id: "runs-table"}, thead, tbody)),
        el("div", {class: "pager"}, prev, next, pagerInfo)),
      detail);

    async function action(a) {
      try {
        const {data} = await api("/api/sweeps/" + enc + "/" + a, {method: "POST"});
        toast("Sweep " + sid + ": " + data.state);
        await pollStatus();
      } catch (e) { toast(e.message); }
    }

    async function pollStatus() {
      const {data} = await api("/api/sweeps/" + enc);
      st.status = data;
      const multi = isMulti();
      if (multi && !paretoCard.isConnected) {
        app.insertBefore(paretoCard, plotsGrid);
        bestTitle.textContent = "Pareto front runs";
      }
      title.textContent = "Sweep " + sid + (data.name ? " · " + data.name : "");
      clear(stateBadge).appendChild(badge(data.state));
      stateBadge.dataset.state = data.state;
      const done = DONE.reduce((a, k) => a + (data.counts[k] || 0), 0);
      sub.textContent = data.method + " search · " + (multi ? "objectives " + objectivesText(data.objectives)
        : "metric " + (data.metric.name || "–") + " (" + data.metric.goal + ")") + " · "
        + done + "/" + data.trials + " trials done" + (data.end_reason ? " · " + data.end_reason : "");
      // why a sweep failed, why nothing moves (Redis full), what to check (a metric never logged)
      clear(warnBox);
      (data.warnings || []).forEach((w) => warnBox.appendChild(el("li", {text: "warning: " + w})));
      buttons.pause.disabled = data.state !== "running";
      buttons.resume.disabled = !["paused", "stopped"].includes(data.state);
      buttons.stop.disabled = ["stopped", "canceled", "finished", "failed"].includes(data.state);
      buttons.cancel.disabled = ["canceled", "finished", "failed"].includes(data.state);
      clear(counts);
      counts.appendChild(el("button", {type: "button", class: "chip" + (st.states.size ? "" : " on"), dataset: {state: ""},
        onclick: () => { st.states.clear(); st.offset = 0; pollStatus(); pollRuns(); }}, "all", el("span", {class: "n", text: data.trials})));
      for (const s of STATES) {
        const n = data.counts[s] || 0;
        counts.appendChild(el("button", {type: "button", class: "chip" + (st.states.has(s) ? " on" : ""), dataset: {state: s},
          onclick: () => {
            if (st.states.has(s)) st.states.delete(s); else st.states.add(s);
            st.offset = 0; pollStatus(); pollRuns();
          }}, s, el("span", {class: "n", text: n})));
      }
      if (multi) return data;  // the front is drawn in the best box by pollPareto
      clear(bestBox);
      if (data.best) {
        const b = data.best;
        bestBox.appendChild(el("dl", {class: "kv"},
          el("dt", {text: "run"}), el("dd", null, el("a", {href: "#", onclick: (ev) => { ev.preventDefault(); showRun(b.run_id); }, text: b.run_id})),
          el("dt", {text: data.metric.name || "metric"}), el("dd", {id: "best-value", text: fmt(b.value)}),
          Object.entries(flatten(b.params)).map(([k, v]) => [el("dt", {text: k}), el("dd", {text: fmt(v)})])));
      } else bestBox.appendChild(el("div", {class: "muted", text: "No finished run has reported " + (data.metric.name || "the metric") + " yet."}));
      return data;
    }

    const COLS = [
      ["", null], ["id", "id"], ["state", "state"], ["params", null], ["metric", "metric"], ["steps", "steps"],
      ["duration", "duration"], ["worker", "worker"], ["exit", "exit_code"], ["started", "started_at"],
    ];
    function isMulti() { return !!(st.status && st.status.objectives && st.status.objectives.length); }
    function columns() {
      // [label, sort key, title]: a multi-objective sweep has one column per objective for "metric"
      const metricName = st.status && st.status.metric.name;
      return COLS.flatMap(([label, key]) => {
        if (key !== "metric") return [[label, key, null]];
        if (isMulti()) return st.status.objectives.map((o) => [o.name, "objectives." + o.name, o.goal]);
        return [[metricName || label, key, null]];
      });
    }
    function renderHead() {
      clear(thead);
      const tr = el("tr");
      for (const [label, key, goal] of columns()) {
        const th = el("th", {class: key ? "sortable" : "", dataset: {sort: key || ""}, title: goal}, label);
        if (key) {
          const cur = st.sort.replace(/^-/, "");
          if (cur === key) th.appendChild(el("span", {class: "arrow", text: st.sort.startsWith("-") ? "▼" : "▲"}));
          th.addEventListener("click", () => {
            st.sort = (st.sort === key) ? "-" + key : key;
            st.offset = 0;
            renderHead();
            pollRuns();
          });
        }
        tr.appendChild(th);
      }
      thead.appendChild(tr);
    }

    async function pollRuns() {
      const q = new URLSearchParams({offset: st.offset, limit: PAGE, sort: st.sort});
      if (st.states.size) q.set("state", Array.from(st.states).join(","));
      const {data, headers} = await api("/api/sweeps/" + enc + "/runs?" + q.toString());
      st.total = parseInt(headers.get("X-Total-Count") || "0", 10);
      if (st.offset >= st.total && st.offset > 0) { st.offset = Math.max(0, st.total - PAGE); return pollRuns(); }
      // rebuild the rows only when something changed (or a running run's duration ticks), so
      // a click or a hover is not lost to a redraw every 2 s
      const sig = st.sort + "|" + st.offset + "|" + st.total + "|" + Array.from(st.chosen).join(",") + "|" + JSON.stringify(data);
      if (sig === st.rowsSig && !data.some((r) => r.state === "running")) return;
      st.rowsSig = sig;
      const headSig = JSON.stringify(columns());
      if (headSig !== st.headSig) { st.headSig = headSig; renderHead(); }
      const objs = isMulti() ? st.status.objectives : null;
      clear(tbody);
      if (!data.length) {
        tbody.appendChild(el("tr", null, el("td", {colspan: columns().length, class: "empty", text: "No runs yet."})));
      }
      for (const r of data) {
        const dur = (r.started_at && r.ended_at) ? r.ended_at - r.started_at
          : (r.started_at && r.state === "running" ? Date.now() / 1000 - r.started_at : null);
        const box = el("input", {type: "checkbox", title: "Plot this run's curve", "aria-label": "plot " + r.id});
        box.checked = st.chosen.has(r.id);
        box.addEventListener("click", (ev) => {
          ev.stopPropagation();
          if (st.autoChosen) { st.autoChosen = false; st.chosen.clear(); }
          if (box.checked) st.chosen.add(r.id); else st.chosen.delete(r.id);
          pollCurves();
        });
        const workerCell = el("td");
        if (r.worker) {
          if (FLOWER) workerCell.appendChild(el("a", {href: FLOWER + "/worker/" + encodeURIComponent(r.worker),
            target: "_blank", rel: "noopener noreferrer", text: r.worker, onclick: (ev) => ev.stopPropagation()}));
          else workerCell.textContent = r.worker;
        } else workerCell.textContent = "–";
        const flat = flatten(r.params);
        tbody.appendChild(el("tr", {class: "clickable" + (st.selected === r.id ? " selected" : ""), dataset: {id: r.id, state: r.state},
          onclick: () => showRun(r.id)},
          el("td", null, box),
          el("td", {text: r.id}),
          el("td", null, badge(r.state)),
          el("td", {class: "params", text: Object.entries(flat).map(([k, v]) => k + "=" + fmt(v)).join("  ")}),
          objs ? objs.map((o) => el("td", {class: "num objective", dataset: {objective: o.name},
            text: fmt(r.objectives ? r.objectives[o.name] : null)}))
            : el("td", {class: "num metric", text: fmt(r.metric)}),
          el("td", {class: "num", text: r.steps}),
          el("td", {class: "num", text: fmtDur(dur)}),
          workerCell,
          el("td", {class: "num", text: r.exit_code === null ? "–" : r.exit_code}),
          el("td", {text: fmtTime(r.started_at)})));
      }
      pagerInfo.textContent = st.total ? (st.offset + 1) + "–" + Math.min(st.offset + PAGE, st.total) + " of " + st.total : "0 runs";
      prev.disabled = st.offset === 0;
      next.disabled = st.offset + PAGE >= st.total;
    }

    async function showRun(rid) {
      st.selected = rid;
      const {data} = await api("/api/sweeps/" + enc + "/runs/" + encodeURIComponent(rid) + "?rows=0");
      detail.hidden = false;
      clear(detail);
      detail.append(
        el("div", {class: "row"}, el("h2", {text: "Run " + data.id}), badge(data.state),
          el("span", {style: "flex:1"}), el("button", {type: "button", text: "Close", onclick: () => { detail.hidden = true; st.selected = null; }})),
        el("dl", {class: "kv"},
          data.objectives && isMulti()
            ? st.status.objectives.map((o) => [el("dt", {text: o.name + " (" + o.goal + ")"}),
              el("dd", {class: "objective", dataset: {objective: o.name}, text: fmt(data.objectives[o.name])})])
            : [el("dt", {text: "metric"}), el("dd", {text: fmt(data.metric)})],
          el("dt", {text: "steps"}), el("dd", {text: data.steps}),
          el("dt", {text: "worker"}), el("dd", {text: data.worker || "–"}),
          el("dt", {text: "exit code"}), el("dd", {text: data.exit_code === null ? "–" : data.exit_code}),
          el("dt", {text: "attempt"}), el("dd", {text: data.attempt}),
          el("dt", {text: "started"}), el("dd", {text: fmtTime(data.started_at)}),
          el("dt", {text: "ended"}), el("dd", {text: fmtTime(data.ended_at)}),
          el("dt", {text: "reason"}), el("dd", {text: data.reason || "–"}),
          el("dt", {text: "params"}), el("dd", null, el("code", {text: JSON.stringify(data.params)}))),
        el("h2", {text: "Log tail", style: "margin-top:12px"}),
        el("pre", {class: "log", id: "log-tail", text: data.log_tail || "(no output kept: the log tail is stored when a run ends)"}));
      detail.scrollIntoView({behavior: "smooth", block: "nearest"});
      for (const tr of tbody.querySelectorAll("tr")) tr.classList.toggle("selected", tr.dataset.id === rid);
    }

    function plotly() { return window.Plotly; }
    const plotlyReady = loadPlotly();
    plotlyReady.catch(() => {});  // reported by the polls that await it
    const PLOT_CFG = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["sendDataToCloud"]};

    async function pollCurves() {
      await plotlyReady;
      const q = new URLSearchParams();
      if (!st.autoChosen && st.chosen.size) q.set("runs", Array.from(st.chosen).join(","));
      if (st.curveKey) q.set("key", st.curveKey);
      const {data} = await api("/api/sweeps/" + enc + "/curves?" + q.toString());
      if (st.autoChosen) st.chosen = new Set(data.runs.map((r) => r.id));
      if (!keySelect.options.length && data.key) keySelect.appendChild(el("option", {value: data.key, text: data.key}));
      const traces = data.runs.map((r) => ({x: r.steps, y: r.values, name: plotText(r.id), type: "scatter",
        mode: "lines+markers", marker: {size: 4}}));
      curvesNote.textContent = traces.length ? (st.autoChosen ? "the 5 best runs; tick runs in the table to choose" : "")
        : "No logged values yet.";
      plotly().react(curves, traces, {margin: {l: 50, r: 10, t: 10, b: 80}, xaxis: {title: {text: "step"}},
        yaxis: {title: {text: plotText(data.key)}}, showlegend: true, legend: {orientation: "h", y: -0.3}}, PLOT_CFG);
    }

    async function loadKeys() {
      // the keys of the best run, for the curve picker (once there is a run with rows)
      if (keySelect.options.length > 1 || !st.status || !st.status.best) return;
      const {data} = await api("/api/sweeps/" + enc + "/runs/" + encodeURIComponent(st.status.best.run_id) + "?rows=0");
      const cur = keySelect.value;
      clear(keySelect);
      const keys = data.keys.length ? data.keys : [st.status.metric.name || ""];
      if (st.status.metric.name && !keys.includes(st.status.metric.name)) keys.unshift(st.status.metric.name);
      for (const k of keys) keySelect.appendChild(el("option", {value: k, text: k}));
      keySelect.value = cur || st.status.metric.name || keys[0];
    }

    // A run that lacks a parameter (its `when` did not hold) has null on that axis: it is drawn
    // at an "(absent)" tick below the axis's values. Handed a null, Plotly's parcoords bends the
    // line towards the bottom halfway to that axis and draws none of it beyond.
    const ABSENT = "(absent)";
    function niceTicks(lo, hi) {
      if (!(hi > lo)) return [lo];
      const raw = (hi - lo) / 4;
      const mag = Math.pow(10, Math.floor(Math.log10(raw)));
      const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
      const out = [];
      for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
      return out;
    }
    function parDimension(d) {
      const dim = {label: plotText(d.name), values: d.values};
      if (d.type === "categorical") { dim.tickvals = d.ticktext.map((_, i) => i); dim.ticktext = d.ticktext; }
      if (!d.values.some((v) => v === null)) return dim;
      const present = d.values.filter((v) => v !== null);
      let at;
      if (d.type === "categorical") {
        at = -1;
        dim.tickvals = [at].concat(dim.tickvals);
        dim.ticktext = [ABSENT].concat(dim.ticktext);
        dim.range = [at, Math.max(0, d.ticktext.length - 1)];
      } else {
        const lo = Math.min(...present), hi = Math.max(...present);
        const ticks = niceTicks(lo, hi);
        at = lo - ((hi - lo) || Math.abs(lo) || 1) * 0.15;
        dim.tickvals = [at].concat(ticks);
        dim.ticktext = [ABSENT].concat(ticks.map(fmt));
        dim.range = [at, hi];
      }
      dim.values = d.values.map((v) => (v === null ? at : v));
      return dim;
    }

    async function pollParallel() {
      await plotlyReady;
      const {data} = await api("/api/sweeps/" + enc + "/parallel?limit=1000");
      if (!data.ids.length) { parNote.textContent = "No run has a metric yet."; return; }
      const dims = data.dimensions.map(parDimension);
      dims.push({label: plotText(data.metric_name || "metric"), values: data.metric});
      parNote.textContent = data.ids.length + " of " + data.total_scored + " runs with a metric (the best ones)";
      try {
        plotly().react(par, [{type: "parcoords", dimensions: dims,
          line: {color: data.metric, colorscale: "Viridis", reversescale: st.status && st.status.metric.goal === "maximize",
            showscale: true, colorbar: {x: 1.08, thickness: 14}}}], {margin: {l: 60, r: 110, t: 40, b: 20}}, PLOT_CFG);
      } catch (e) {
        parNote.textContent = "Parallel coordinates need WebGL, which this browser does not offer.";
      }
    }

    async function pollImportance() {
      const {data} = await api("/api/sweeps/" + enc + "/importance");
      clear(imp);
      if (!data.params.length) { imp.appendChild(el("div", {class: "muted", text: data.note || "Not enough data."})); return; }
      const max = Math.max(...data.params.map((p) => p.importance), 1e-9);
      imp.appendChild(el("table", {id: "importance-table"},
        el("thead", null, el("tr", null, el("th", {text: "parameter"}), el("th", {text: "importance"}), el("th", {text: "correlation"}))),
        el("tbody", null, data.params.map((p) => el("tr", {dataset: {param: p.param}},
          el("td", null, p.param, p.n !== undefined && p.n < data.n
            ? el("span", {class: "muted", title: "judged on the runs that have this parameter", text: " (" + p.n + " runs)"}) : null),
          el("td", null, el("span", {class: "imp-bar", style: "width:" + Math.round(120 * p.importance / max) + "px"}), " " + p.importance.toFixed(3)),
          el("td", {class: p.correlation === null ? "muted" : (p.correlation > 0 ? "corr-pos" : "corr-neg"),
            text: p.correlation === null ? "–" : p.correlation.toFixed(3)}))))));
      imp.appendChild(el("div", {class: "muted", text: "random forest on " + data.n + " finished runs"
        + (data.params.some((p) => p.n < data.n) ? "; a conditional parameter only on the runs that have it" : "")}));
      if (data.too_few && data.too_few.length) {
        imp.appendChild(el("div", {class: "muted", id: "importance-too-few",
          text: "present in too few finished runs yet: " + data.too_few.join(", ")}));
      }
    }

    // -- the Pareto panel (multi-objective sweeps) ----------------------------------------------------
    // Two objectives: a scatter, the front in the accent colour joined by its staircase (the edge of
    // the region it dominates), dominated runs dimmed. Three or four: a pairs plot (every pair of
    // objectives, lower triangle), the front highlighted in each. Each point carries its run id
    // (Plotly's `ids` and `customdata`; after each draw also `data-run-id`/`data-front` on its SVG
    // node, for tests); a click opens the run. Labels go through plotText (names are the user's).
    const FRONT_COLOR = "#2b59c3";
    const DOMINATED_COLOR = "#8a94a6";
    let paretoWired = false;
    let paretoFront = new Set();
    function axisTitle(o) { return {text: plotText(o.name + " (" + o.goal + ")")}; }
    function pointText(p, objs) {
      return [p.id].concat(objs.map((o, k) => plotText(o.name) + " = " + fmt(p.values[k]))).join("<br>");
    }
    function pointTraces(pts, objs, i, j, axes, legend) {
      // the dominated and the front points of the objective pair (i, j) on axes ("", "2", ...)
      const dom = pts.filter((p) => !p.front), fr = pts.filter((p) => p.front);
      const trace = (list, name, marker) => ({
        type: "scatter", mode: "markers", name, showlegend: legend, legendgroup: name,
        x: list.map((p) => p.values[i]), y: list.map((p) => p.values[j]),
        ids: list.map((p) => p.id), customdata: list.map((p) => p.id),
        text: list.map((p) => pointText(p, objs)), hoverinfo: "text", marker,
        xaxis: "x" + axes, yaxis: "y" + axes,
      });
      return [
        trace(dom, "dominated", {color: DOMINATED_COLOR, size: 6, opacity: 0.5}),
        trace(fr, "Pareto front", {color: FRONT_COLOR, size: 9, line: {color: "#1d2330", width: 1}}),
      ];
    }
    function markPoints() {
      // Plotly keeps each point's datum (with its `ids` entry) on the point's SVG node
      for (const node of pareto.querySelectorAll(".scatterlayer .trace path.point")) {
        const d = node.__data__;
        if (!d || d.id === undefined) continue;
        node.setAttribute("data-run-id", d.id);
        node.setAttribute("data-front", paretoFront.has(d.id) ? "true" : "false");
      }
    }
    function paretoFigure(data) {
      const objs = data.objectives, pts = data.points;
      const layout = {margin: {l: 70, r: 20, t: 10, b: 60}, hovermode: "closest", showlegend: true,
        legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"}};
      if (objs.length === 2) {
        const fr = pts.filter((p) => p.front).sort((a, b) => a.values[0] - b.values[0] || a.values[1] - b.values[1]);
        // the staircase's corners are the worse value of each neighbour: with x ascending, a
        // minimised x steps right then up/down ("hv"), a maximised one the other way round
        const line = {type: "scatter", mode: "lines", name: "front", showlegend: false, hoverinfo: "skip",
          x: fr.map((p) => p.values[0]), y: fr.map((p) => p.values[1]),
          line: {shape: objs[0].goal === "maximize" ? "vh" : "hv", color: FRONT_COLOR, width: 1.5}};
        layout.xaxis = {title: axisTitle(objs[0]), zeroline: false};
        layout.yaxis = {title: axisTitle(objs[1]), zeroline: false};
        layout.margin.t = 30;
        return {traces: [line].concat(pointTraces(pts, objs, 0, 1, "", true)), layout, height: 420};
      }
      const n = objs.length - 1, gap = 0.07, size = (1 - gap * (n - 1)) / n;
      const traces = [];
      let k = 0;
      for (let r = 0; r < n; r++) {
        for (let c = 0; c <= r; c++) {
          k += 1;
          const ax = k === 1 ? "" : String(k);
          const x0 = c * (size + gap), top = 1 - r * (size + gap);
          layout["xaxis" + ax] = {domain: [x0, x0 + size], anchor: "y" + ax, zeroline: false,
            title: r === n - 1 ? axisTitle(objs[c]) : undefined};
          layout["yaxis" + ax] = {domain: [Math.max(0, top - size), top], anchor: "x" + ax, zeroline: false,
            title: c === 0 ? axisTitle(objs[r + 1]) : undefined};
          traces.push(...pointTraces(pts, objs, c, r + 1, ax, k === 1));
        }
      }
      layout.margin.t = 30;
      return {traces, layout, height: 260 * n + 90};
    }
    async function pollPareto() {
      await plotlyReady;
      const {data} = await api("/api/sweeps/" + enc + "/pareto");
      const sig = JSON.stringify(data);
      if (sig === st.paretoSig) return;
      st.paretoSig = sig;
      paretoFront = new Set(data.front);
      const objs = data.objectives;
      const byId = new Map(data.points.map((p) => [p.id, p]));
      pareto.dataset.objectives = objs.length;
      pareto.dataset.points = data.points.length;
      pareto.dataset.front = data.front.length;
      // the best box: the front, best first on the first objective
      clear(bestBox);
      if (data.front.length) {
        const shown = data.front.slice(0, 10);
        bestBox.appendChild(el("table", {id: "pareto-front-table"},
          el("thead", null, el("tr", null, el("th", {text: "run"}),
            objs.map((o) => el("th", {class: "num", title: o.goal, text: o.name})))),
          el("tbody", null, shown.map((id) => el("tr", {class: "clickable", dataset: {id}, onclick: () => showRun(id)},
            el("td", null, el("a", {href: "#", text: id, onclick: (ev) => { ev.preventDefault(); }})),
            byId.get(id).values.map((v) => el("td", {class: "num", text: fmt(v)})))))));
        if (data.front.length > shown.length) {
          bestBox.appendChild(el("div", {class: "muted", text: "and " + (data.front.length - shown.length) + " more on the front"}));
        }
      } else bestBox.appendChild(el("div", {class: "muted", text: "No finished run has reported every objective yet."}));
      if (!data.points.length) {
        paretoNote.textContent = "No finished run has reported every objective yet"
          + (data.incomplete ? " (" + data.incomplete + " finished without every value)." : ".");
        plotly().purge(pareto);  // drops the plot's listeners too
        paretoWired = false;
        return;
      }
      const fig = paretoFigure(data);
      pareto.style.height = fig.height + "px";
      await plotly().react(pareto, fig.traces, fig.layout, PLOT_CFG);
      if (!paretoWired) {
        paretoWired = true;
        pareto.on("plotly_click", (ev) => {
          const p = ev && ev.points && ev.points[0];
          if (p && p.customdata !== undefined) showRun(String(p.customdata)).catch((e) => toast(e.message));
        });
        pareto.on("plotly_afterplot", markPoints);
      }
      markPoints();
      paretoNote.textContent = data.total + " finished runs with every objective, " + data.front.length + " on the front"
        + (data.points.length < data.total ? " (" + data.points.length + " drawn)" : "")
        + (data.incomplete ? "; " + data.incomplete + " finished without every value" : "")
        + ". Click a point to open its run.";
    }

    renderHead();
    return {
      async poll() {
        const status = await pollStatus();
        await pollRuns();
        const scored = status.counts.finished;
        const slowDue = Date.now() - st.slowAt > 6000 || scored !== st.lastScored;
        await pollCurves();
        if (slowDue && !st.slowBusy) {
          // the heavier panels refresh on their own: a slow importance fit never delays the table
          st.slowAt = Date.now();
          st.lastScored = scored;
          st.slowBusy = true;
          Promise.all([pollParallel(), pollImportance(), loadKeys(), isMulti() ? pollPareto() : null])
            .catch(() => setLive(false))
            .finally(() => { st.slowBusy = false; });
        }
      },
      notFound() {
        clear(app).appendChild(el("div", {class: "card empty"}, "Unknown sweep ", el("code", {text: sid}), ". ",
          el("a", {href: "#/", text: "All sweeps"})));
        generation += 1;
      },
    };
  }

  route();
})();
