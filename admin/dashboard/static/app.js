// The Tidings dashboard: plain JavaScript over the admin JSON API, no build step.
//
// Routes live in the URL's hash (#/, #/new, #/streams/<id>, #/streams/<id>/edit, #/tail). The admin
// token is asked for once and kept in sessionStorage (gone when the tab closes); every
// request sends it as a bearer token. Everything shown comes from the API, and every value is
// put into the page as text (never as HTML), so data cannot become markup or script.
"use strict";

const TOKEN_KEY = "tidings.admin.token";
const STATUSES = ["success", "retrying", "failed", "parked"];
const RANGES = { "15m": [15 * 60, 15], "1h": [3600, 60], "6h": [6 * 3600, 300], "24h": [86400, 1800], "7d": [7 * 86400, 3 * 3600] };
const REFRESH_MS = 3000;

const view = document.getElementById("view");
let generation = 0; // bumped on every navigation: late answers for an old page are dropped
let timer = null;
let tail = null; // the live tail's EventSource, closed on every navigation
const TAIL_ROWS = 200;

// --- the API -------------------------------------------------------------------------------
class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `HTTP ${status}`);
    this.status = status;
    this.code = (body && body.code) || "http_error";
    this.field = (body && body.field) || null;
  }
}

class NeedToken extends Error {}

async function api(method, path, { query, body } = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (!token) throw new NeedToken("enter the admin token");
  // Relative to the page, so a reverse proxy may mount the admin API under a prefix.
  const url = new URL(`../${path}`, document.baseURI);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const init = { method, headers: { Authorization: `Bearer ${token}` } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (response.status === 401 || response.status === 403) {
    sessionStorage.removeItem(TOKEN_KEY);
    throw new NeedToken(response.status === 403 ? "that token is not valid" : "enter the admin token");
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return data;
}

const streamPath = (id, rest = "") => `v1/event-streams/${encodeURIComponent(id)}${rest}`;

async function allStreams() {
  const streams = [];
  let from = null;
  do {
    const page = await api("GET", "v1/event-streams", { query: { take: 100, from } });
    streams.push(...page.event_streams);
    from = page.next;
  } while (from);
  return streams;
}

let eventTypes = null;
async function knownEventTypes() {
  // One home for the list: the API's own schema of a test event.
  if (!eventTypes) {
    const doc = await api("GET", "openapi.json");
    const schema = doc.components.schemas.TestEventRequest;
    eventTypes = (schema && schema.properties.event_type.enum) || [];
  }
  return eventTypes;
}

// --- DOM -----------------------------------------------------------------------------------
function build(element, attrs, children) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "value") element.value = value;
    else if (key === "checked") element.checked = value;
    else element.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child)); // strings become text nodes
  }
  return element;
}
const h = (tag, attrs, ...children) => build(document.createElement(tag), attrs, children);
const svg = (tag, attrs, ...children) =>
  build(document.createElementNS("http://www.w3.org/2000/svg", tag), attrs, children);

function when(iso) {
  if (!iso) return "";
  return new Date(iso).toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit", hourCycle: "h23",
  });
}

function destinationText(stream) {
  const { type, configuration } = stream.destination;
  if (type === "webhook") return configuration.webhook_endpoint;
  return `EventBridge ${configuration.event_bus_name} (${configuration.aws_region})`;
}

function authText(stream) {
  if (stream.destination.type !== "webhook") return "AWS credentials chain";
  const auth = stream.destination.configuration.webhook_authorization;
  if (!auth) return "none";
  if (auth.method === "basic") return `basic (user ${auth.username})`;
  if (auth.method === "custom_header") return `header ${auth.header_key}`;
  return "bearer token";
}

const badge = (status) => h("span", { class: `badge ${status}` }, status);

function notice(box, text, kind = "ok") {
  box.replaceChildren(h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, text));
}

function errorText(error) {
  return error instanceof ApiError ? `${error.code}: ${error.message}` : String(error.message || error);
}

// --- routing -------------------------------------------------------------------------------
const ROUTES = [
  [/^#?\/?$/, () => streamsPage()],
  [/^#\/new$/, () => formPage(null)],
  [/^#\/streams\/([\w-]+)$/, (id) => streamPage(id)],
  [/^#\/streams\/([\w-]+)\/edit$/, (id) => formPage(id)],
  [/^#\/tail$/, () => tailPage()],
];

function stopTail() {
  if (tail) tail.close();
  tail = null;
}

async function route() {
  generation += 1;
  clearInterval(timer);
  timer = null;
  stopTail();
  document.getElementById("forget").hidden = !sessionStorage.getItem(TOKEN_KEY);
  if (!sessionStorage.getItem(TOKEN_KEY)) return loginPage();
  const match = ROUTES.map(([pattern, page]) => [location.hash.match(pattern), page]).find(([m]) => m);
  if (!match) return show(h("p", { class: "notice error" }, "No such page."));
  const [found, page] = match;
  try {
    await page(...found.slice(1));
  } catch (error) {
    failed(error);
  }
}

function failed(error) {
  if (error instanceof NeedToken) return loginPage(error.message);
  show(h("p", { class: "notice error", role: "alert" }, errorText(error)));
}

function show(...nodes) {
  view.replaceChildren(...nodes);
}

function loginPage(message) {
  generation += 1;
  clearInterval(timer);
  document.getElementById("forget").hidden = true;
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
  const problem = h("p", { class: "field-error", role: "alert" }, message && message !== "enter the admin token" ? message : "");
  const form = h("form", { class: "card login", onsubmit: async (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, input.value.trim());
    try {
      await api("GET", "v1/event-streams", { query: { take: 1 } });
      route();
    } catch (error) {
      problem.textContent = error instanceof NeedToken ? error.message : errorText(error);
    }
  } },
  h("h1", {}, "Admin token"),
  h("p", {}, "The token the admin API was started with. It is kept in this tab only."),
  h("label", { for: "token" }, "Token"), input, problem,
  h("button", { type: "submit" }, "Continue"));
  show(form);
  input.focus();
}

// --- streams list --------------------------------------------------------------------------
async function streamsPage() {
  const mine = generation;
  const streams = await allStreams();
  const since = new Date(Date.now() - 3600 * 1000).toISOString();
  const stats = await Promise.all(streams.map((s) =>
    api("GET", streamPath(s.id, "/stats"), { query: { date_from: since } }).catch(() => null)));
  if (mine !== generation) return;
  const rows = streams.map((stream, i) => {
    const totals = stats[i] && stats[i].totals;
    return h("tr", { "data-stream": stream.id },
      h("td", {}, h("a", { href: `#/streams/${stream.id}` }, stream.name)),
      h("td", { class: "mono" }, destinationText(stream)),
      h("td", {}, badge(stream.status)),
      h("td", { class: "num", "data-col": "delivered" }, totals ? totals.successful : "?"),
      h("td", { class: `num${totals && totals.failed ? " bad" : ""}`, "data-col": "failed" }, totals ? totals.failed : "?"));
  });
  show(
    h("div", { class: "title" }, h("h1", {}, "Event streams"), h("a", { class: "button", href: "#/new" }, "New stream")),
    streams.length === 0
      ? h("p", {}, "No streams yet.")
      : h("table", { id: "streams" },
        h("thead", {}, h("tr", {}, h("th", {}, "Name"), h("th", {}, "Destination"), h("th", {}, "Status"),
          h("th", { class: "num" }, "Delivered (1h)"), h("th", { class: "num" }, "Failed (1h)"))),
        h("tbody", {}, rows)),
    h("p", { class: "hint" }, "Last hour's delivery attempts, from each stream's stats."));
}

// --- live tail -----------------------------------------------------------------------------
// The browser's own EventSource on GET /v1/events: it cannot send headers, so the token goes
// as access_token; it reconnects by itself with Last-Event-ID when the server closes.
async function tailPage() {
  const types = await knownEventTypes();
  const filter = h("input", { id: "tail-types", placeholder: "user.*, group.created", list: "tail-event-types" });
  const status = h("p", { class: "hint", id: "tail-status", role: "status" }, "Stopped.");
  const body = h("tbody", {});
  const toggle = h("button", { type: "submit", id: "tail-toggle" }, "Start");
  const form = h("form", { class: "filters", onsubmit: (event) => {
    event.preventDefault();
    if (tail) {
      stopTail();
      toggle.textContent = "Start";
      status.textContent = "Stopped.";
      return;
    }
    const url = new URL("../v1/events", document.baseURI);
    url.searchParams.set("access_token", sessionStorage.getItem(TOKEN_KEY) || "");
    for (const pattern of filter.value.split(/[\s,]+/).filter(Boolean)) url.searchParams.append("event_type", pattern);
    tail = new EventSource(url);
    toggle.textContent = "Stop";
    status.textContent = "Connecting…";
    tail.addEventListener("open", () => { status.textContent = "Live: new events appear at the top."; });
    tail.addEventListener("offset-only", () => { status.textContent = "Live: waiting for matching events."; });
    tail.addEventListener("error", (e) => {
      // A server's `event: error` carries data; the browser's own error event (a refused or
      // dropped connection, which EventSource retries) does not.
      const error = e.data ? JSON.parse(e.data).error : null;
      status.textContent = error ? `${error.message} (reconnecting)` : "Disconnected, reconnecting…";
    });
    for (const type of types) {
      tail.addEventListener(type, (e) => {
        const event = JSON.parse(e.data).event;
        body.prepend(h("tr", { "data-event": event.id },
          h("td", {}, when(event.time)),
          h("td", { class: "mono" }, event.type),
          h("td", { class: "mono" }, event.id),
          h("td", { class: "mono" }, JSON.stringify(event.data.object))));
        while (body.children.length > TAIL_ROWS) body.lastElementChild.remove();
      });
    }
  } },
  h("label", { for: "tail-types" }, "Event types"), filter,
  h("datalist", { id: "tail-event-types" }, types.map((t) => h("option", { value: t }))),
  toggle);
  show(
    h("div", { class: "title" }, h("h1", {}, "Live tail")),
    form, status,
    h("table", { id: "tail" },
      h("thead", {}, h("tr", {}, h("th", {}, "Time"), h("th", {}, "Type"), h("th", {}, "Event id"), h("th", {}, "Object"))),
      body),
    h("p", { class: "hint" }, `Newest first; the last ${TAIL_ROWS} events are kept.`));
}

// --- one stream ----------------------------------------------------------------------------
async function streamPage(id) {
  const mine = generation;
  const state = { id, range: "1h", filters: {}, cursors: [null], open: new Set(), busy: false };
  const [stream, types] = await Promise.all([api("GET", streamPath(id)), knownEventTypes()]);
  if (mine !== generation) return;

  const header = h("section", { id: "stream-header" });
  const messages = h("div", { id: "messages" });
  const chartBox = h("div", { id: "chart" });
  const history = h("div", { id: "history" });
  const pager = h("div", { class: "pager" });
  const typeSelect = h("select", { id: "test-type", "aria-label": "Test event type" },
    types.map((t) => h("option", { value: t }, t)));

  const act = async (label, call) => {
    try {
      notice(messages, await call());
      await refresh();
      setTimeout(refresh, 1000);
    } catch (error) {
      if (error instanceof NeedToken) return loginPage(error.message);
      notice(messages, `${label} failed: ${errorText(error)}`, "error");
    }
  };

  const testButton = h("button", { type: "button", id: "send-test", onclick: () => act("Test event", async () => {
    const sent = await api("POST", streamPath(id, "/test"), { body: { event_type: typeSelect.value } });
    return `Test event ${sent.event_id} queued.`;
  }) }, "Send test event");
  const redeliverAll = h("button", { type: "button", id: "redeliver-failed", onclick: () => act("Redelivery", async () => {
    const done = await api("POST", streamPath(id, "/redeliver"));
    return `${done.count} failed event(s) queued for redelivery` + (done.skipped ? `; ${done.skipped} no longer retained.` : ".");
  }) }, "Redeliver all failed");
  const toggle = h("button", { type: "button", id: "toggle", onclick: () => act("Status change", async () => {
    const status = state.stream.status === "enabled" ? "disabled" : "enabled";
    state.stream = await api("PATCH", streamPath(id), { body: { status } });
    return `Stream ${status}.`;
  }) });

  function renderHeader() {
    const s = state.stream;
    const enabled = s.status === "enabled";
    toggle.textContent = enabled ? "Disable" : "Enable";
    for (const button of [testButton, redeliverAll]) {
      button.disabled = !enabled;
      button.title = enabled ? "" : "Enable the stream first";
    }
    const d = s.delivery;
    header.replaceChildren(...[
      h("div", { class: "title" }, h("h1", {}, s.name), badge(s.status),
        h("a", { class: "button secondary", href: `#/streams/${id}/edit` }, "Edit")),
      s.status_reason ? h("p", { class: "notice error" }, s.status_reason) : null,
      h("dl", { class: "facts" },
        h("dt", {}, "Id"), h("dd", { class: "mono" }, s.id),
        h("dt", {}, "Destination"), h("dd", { class: "mono", id: "destination" }, destinationText(s)),
        h("dt", {}, "Authorization"), h("dd", {}, authText(s)),
        h("dt", {}, "Event types"), h("dd", { class: "mono" }, s.subscriptions.map((x) => x.event_type).join(", ")),
        h("dt", {}, "Signing secrets"), h("dd", {}, String(s.signing_secrets_count)),
        h("dt", {}, "Delivery"), h("dd", {}, `timeout ${d.timeout}, ${d.max_in_flight} in flight, ` +
          `${d.ordering === "subject" ? "in order per subject, " : ""}retries ` +
          `${d.retry_schedule ? d.retry_schedule.join(" → ") : "default tiers"}, ` +
          `${d.permanent_4xx ? "4xx are final" : "4xx retried"}, disables after ${d.auto_disable_after} failures`)),
      h("div", { class: "actions" }, typeSelect, testButton, redeliverAll, toggle),
    ].filter(Boolean));
  }

  // The chart's window.
  const rangeSelect = h("select", { id: "range", "aria-label": "Chart window", onchange: () => { state.range = rangeSelect.value; refresh(); } },
    Object.keys(RANGES).map((r) => h("option", { value: r, selected: r === state.range }, `last ${r}`)));

  // History filters.
  const statusBoxes = STATUSES.map((s) => h("input", { type: "checkbox", name: "status", value: s, id: `filter-${s}` }));
  const typeFilter = h("input", { id: "filter-types", placeholder: "user.*, organization.created", list: "event-types" });
  const fromFilter = h("input", { id: "filter-from", type: "datetime-local", step: 1 });
  const toFilter = h("input", { id: "filter-to", type: "datetime-local", step: 1 });
  const filterForm = h("form", { id: "filters", class: "filters", onsubmit: (event) => {
    event.preventDefault();
    const iso = (input) => (input.value ? new Date(input.value).toISOString() : null);
    state.filters = {
      statuses: statusBoxes.filter((b) => b.checked).map((b) => b.value).join(","),
      event_types: typeFilter.value.split(/[\s,]+/).filter(Boolean).join(","),
      date_from: iso(fromFilter),
      date_to: iso(toFilter),
    };
    state.cursors = [null];
    refresh();
  } },
  h("fieldset", {}, h("legend", {}, "Status"), statusBoxes.map((box) => h("label", { class: "inline" }, box, box.value))),
  h("label", {}, "Event types", typeFilter),
  h("datalist", { id: "event-types" }, types.map((t) => h("option", { value: t }))),
  h("label", {}, "First attempt from", fromFilter),
  h("label", {}, "to", toFilter),
  h("button", { type: "submit" }, "Apply"),
  h("button", { type: "reset", class: "secondary", onclick: () => setTimeout(() => filterForm.requestSubmit()) }, "Clear"));

  const autoRefresh = h("input", { type: "checkbox", id: "auto-refresh", checked: true });

  async function refresh() {
    if (state.busy || mine !== generation) return;
    state.busy = true;
    try {
      const [seconds, bucket] = RANGES[state.range];
      const cursor = state.cursors[state.cursors.length - 1];
      const [s, stats, page] = await Promise.all([
        api("GET", streamPath(id)),
        api("GET", streamPath(id, "/stats"), { query: { date_from: new Date(Date.now() - seconds * 1000).toISOString(), bucket: `${bucket}s` } }),
        api("GET", streamPath(id, "/deliveries"), { query: { ...state.filters, take: 20, from: cursor } }),
      ]);
      const details = await Promise.all(page.deliveries.filter((d) => state.open.has(d.event_id))
        .map((d) => api("GET", streamPath(id, `/deliveries/${encodeURIComponent(d.event_id)}`)).catch((e) => e)));
      if (mine !== generation) return;
      state.stream = s;
      renderHeader();
      chartBox.replaceChildren(chart(stats));
      history.replaceChildren(historyTable(page.deliveries, new Map(details.map((d) => [d.event_id, d]))));
      renderPager(page.next);
    } catch (error) {
      if (error instanceof NeedToken) return loginPage(error.message);
      if (mine === generation) notice(messages, errorText(error), "error");
    } finally {
      state.busy = false;
    }
  }

  function historyTable(deliveries, details) {
    if (deliveries.length === 0) return h("p", { class: "empty" }, "No deliveries match.");
    const enabled = state.stream.status === "enabled";
    const rows = [];
    for (const d of deliveries) {
      const open = state.open.has(d.event_id);
      rows.push(h("tr", { "data-event": d.event_id, class: `delivery ${d.status}` },
        h("td", { class: "mono" }, d.event_id, d.purpose === "test" ? h("span", { class: "tag" }, "test") : null),
        h("td", { class: "nowrap" }, d.event_type),
        h("td", {}, badge(d.status)),
        h("td", { class: "num" }, d.attempts),
        h("td", {}, when(d.first_attempt_at)),
        h("td", {}, when(d.last_attempt_at)),
        h("td", { class: "num" }, d.last_http_status ?? ""),
        h("td", { class: "error-text" }, d.last_error || (d.next_attempt_at ? `next attempt ${when(d.next_attempt_at)}` : "")),
        h("td", { class: "row-actions" },
          h("button", { type: "button", class: "secondary attempts", "aria-expanded": String(open), onclick: () => {
            if (open) state.open.delete(d.event_id); else state.open.add(d.event_id);
            refresh();
          } }, open ? "Hide attempts" : "Attempts"),
          h("button", { type: "button", class: "secondary redeliver", disabled: !enabled, onclick: () => act("Redelivery", async () => {
            await api("POST", streamPath(id, `/redeliver/${encodeURIComponent(d.event_id)}`));
            return `Event ${d.event_id} queued for redelivery.`;
          }) }, "Redeliver"))));
      if (open) rows.push(h("tr", { class: "detail", "data-detail": d.event_id }, h("td", { colspan: 9 }, attemptsTable(details.get(d.event_id)))));
    }
    return h("table", { id: "deliveries" },
      h("thead", {}, h("tr", {}, ["Event", "Type", "Status", "Attempts", "First attempt", "Last attempt", "HTTP", "Last error", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows));
  }

  function renderPager(next) {
    const depth = state.cursors.length;
    pager.replaceChildren(
      h("button", { type: "button", class: "secondary", id: "newer", disabled: depth === 1, onclick: () => { state.cursors.pop(); refresh(); } }, "← Newer"),
      h("span", {}, `page ${depth}`),
      h("button", { type: "button", class: "secondary", id: "older", disabled: !next, onclick: () => { state.cursors.push(next); refresh(); } }, "Older →"));
  }

  state.stream = stream;
  renderHeader();
  show(header, messages,
    h("section", {}, h("div", { class: "title" }, h("h2", {}, "Deliveries over time"), rangeSelect), chartBox),
    h("section", {},
      h("div", { class: "title" }, h("h2", {}, "Delivery history"),
        h("label", { class: "inline" }, autoRefresh, "auto-refresh"),
        h("button", { type: "button", id: "refresh", class: "secondary", onclick: refresh }, "Refresh")),
      filterForm, history, pager));
  await refresh();
  if (mine === generation) timer = setInterval(() => { if (autoRefresh.checked) refresh(); }, REFRESH_MS);
}

function attemptsTable(detail) {
  if (!detail) return h("p", {}, "Loading…");
  if (detail instanceof Error) return h("p", { class: "notice error" }, errorText(detail));
  return h("div", { class: "attempts-detail" },
    h("table", { class: "attempts" },
      h("thead", {}, h("tr", {}, ["Attempt", "Status", "At", "HTTP status", "Error", "Duration", "Next attempt"].map((t) => h("th", {}, t)))),
      // A redelivery is a new job, so its attempts count from 1 again; data-index is the order.
      h("tbody", {}, detail.attempts.map((a, i) => h("tr", { "data-index": i + 1 },
        h("td", { class: "num" }, a.attempt),
        h("td", {}, badge(a.status)),
        h("td", {}, when(a.at)),
        h("td", { class: "num", "data-col": "http" }, a.http_status ?? "—"),
        h("td", { class: "error-text", "data-col": "error" }, a.error || ""),
        h("td", { class: "num", "data-col": "duration" }, `${a.duration_ms.toFixed(1)} ms`),
        h("td", { "data-col": "next" }, a.next_attempt_at ? when(a.next_attempt_at) : "—"))))),
    detail.dead_letter
      ? h("p", { class: "dead-letter" }, `Dead-lettered ${when(detail.dead_letter.at)}: ${detail.dead_letter.reason || "no reason recorded"}`)
      : null,
    // What was sent and what the receiver answered: the questions asked when a receiver fails.
    ...detail.attempts.filter((a) => a.response_body).map((a) =>
      h("details", { class: "sent", "data-answer": a.attempt },
        h("summary", {}, `Receiver's answer to attempt ${a.attempt} (HTTP ${a.http_status ?? "—"})`),
        h("pre", {}, a.response_body))),
    detail.event
      ? h("details", { class: "sent", "data-sent": "event" },
        h("summary", {}, "Event as delivered"),
        h("pre", {}, JSON.stringify(detail.event, null, 2)))
      : h("p", { class: "hint" }, "The event itself is no longer retained by Kafka."));
}

// --- the chart: stacked bars of successful and failed attempts per bucket --------------------
function niceMax(value) {
  const power = 10 ** Math.floor(Math.log10(Math.max(value, 1)));
  return [1, 2, 5, 10].map((m) => m * power).find((m) => m >= value);
}

function chart(stats) {
  const width = 1000, height = 220, left = 40, right = 10, top = 10, bottom = 24;
  const buckets = stats.buckets;
  const max = niceMax(Math.max(1, ...buckets.map((b) => b.successful + b.failed)));
  const step = (width - left - right) / Math.max(buckets.length, 1);
  const y = (v) => top + (height - top - bottom) * (1 - v / max);
  const time = (iso) => new Date(iso).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" });
  const { successful, failed } = stats.totals;
  const root = svg("svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `${successful} successful and ${failed} failed attempts` });
  for (const tick of [0, max / 2, max]) {
    root.append(svg("line", { x1: left, x2: width - right, y1: y(tick), y2: y(tick), class: "grid" }),
      svg("text", { x: left - 6, y: y(tick) + 4, class: "axis", "text-anchor": "end" }, Number.isInteger(tick) ? tick : tick.toFixed(1)));
  }
  buckets.forEach((b, i) => {
    const x = left + i * step + step * 0.1;
    const w = Math.max(step * 0.8, 1);
    const group = svg("g", { class: "bucket" }, svg("title", {}, `${time(b.start)}: ${b.successful} successful, ${b.failed} failed`));
    if (b.successful) group.append(svg("rect", { x, width: w, y: y(b.successful), height: y(0) - y(b.successful), class: "ok" }));
    if (b.failed) group.append(svg("rect", { x, width: w, y: y(b.successful + b.failed), height: y(b.successful) - y(b.successful + b.failed), class: "bad" }));
    root.append(group);
  });
  const labels = buckets.length ? [[0, "start"], [Math.floor(buckets.length / 2), "middle"], [buckets.length - 1, "end"]] : [];
  for (const [i, anchor] of labels) {
    const x = { start: left + i * step, middle: left + (i + 0.5) * step, end: left + (i + 1) * step }[anchor];
    root.append(svg("text", { x, y: height - 6, class: "axis", "text-anchor": anchor }, time(buckets[i].start)));
  }
  return h("figure", {}, root, h("figcaption", {},
    h("span", { class: "key ok" }), ` ${successful} successful  `,
    h("span", { class: "key bad" }), ` ${failed} failed attempts (bucket ${stats.bucket})`));
}

// --- create and edit -----------------------------------------------------------------------
// Every field carries the API's dotted path (data-field), so the API's 400 error
// {code, message, field} is shown next to the input it names: the validation is the API's.
function field(label, path, input, hint) {
  input.setAttribute("data-field", path);
  if (!input.id) input.id = `f-${path.replace(/\W/g, "-")}`;
  return h("div", { class: "field", "data-for": path },
    input.type === "checkbox" ? h("label", { class: "inline" }, input, label) : [h("label", { for: input.id }, label), input],
    hint ? h("p", { class: "hint" }, hint) : null);
}

const text = (value = "", attrs = {}) => h("input", { type: "text", value, autocomplete: "off", ...attrs });
const secret = () => h("input", { type: "password", autocomplete: "new-password" });
const choice = (options, value) => h("select", {}, options.map(([v, label]) => h("option", { value: v, selected: v === value }, label)));

async function formPage(id) {
  const mine = generation;
  const stream = id ? await api("GET", streamPath(id)) : null;
  if (mine !== generation) return;
  const dest = stream ? stream.destination : { type: "webhook", configuration: { webhook_endpoint: "" } };
  const conf = dest.configuration;
  const auth = (dest.type === "webhook" && conf.webhook_authorization) || {};
  const delivery = stream ? stream.delivery : {};
  const W = "destination.configuration";
  const A = `${W}.webhook_authorization`;

  const f = {
    name: text(stream ? stream.name : ""),
    subscriptions: text(stream ? stream.subscriptions.map((s) => s.event_type).join(", ") : "*"),
    status: choice([["enabled", "enabled"], ["disabled", "disabled"]], stream ? stream.status : "enabled"),
    type: choice([["webhook", "Webhook"], ["eventbridge", "Amazon EventBridge"]], dest.type),
    endpoint: text(conf.webhook_endpoint || "", { inputmode: "url" }),
    method: choice([["", "none"], ["bearer", "bearer token"], ["basic", "basic"], ["custom_header", "custom header"]], auth.method || ""),
    token: secret(), username: text(auth.username || ""), password: secret(),
    header_key: text(auth.header_key || ""), header_value: secret(),
    aws_account_id: text(conf.aws_account_id || ""), aws_region: text(conf.aws_region || ""),
    event_bus_name: text(conf.event_bus_name || ""), source: text(conf.source || ""), endpoint_url: text(conf.endpoint_url || ""),
    timeout: text(delivery.timeout || "", { placeholder: "10s" }),
    max_in_flight: text(delivery.max_in_flight ?? "", { placeholder: "64", inputmode: "numeric" }),
    ordering: choice([["none", "none (fastest)"], ["subject", "per subject (user or organization)"]], delivery.ordering || "none"),
    retry_schedule: text((delivery.retry_schedule || []).join(", "), { placeholder: "the installation's tiers" }),
    start_position: text("", { placeholder: "now" }),
    permanent_4xx: h("input", { type: "checkbox", checked: stream ? delivery.permanent_4xx : true }),
    auto_disable_after: text(delivery.auto_disable_after ?? "", { placeholder: "500", inputmode: "numeric" }),
    secret0: secret(), secret1: secret(),
  };
  const keep = stream ? " (leave empty to keep the stored one)" : "";
  const webhook = h("fieldset", { class: "webhook" }, h("legend", {}, "Webhook"),
    field("Endpoint URL", `${W}.webhook_endpoint`, f.endpoint),
    field("Authorization", A, f.method),
    h("div", { class: "auth bearer" }, field("Bearer token", `${A}.token`, f.token, stream ? "Give it again when changing the destination." : null)),
    h("div", { class: "auth basic" }, field("Username", `${A}.username`, f.username), field("Password", `${A}.password`, f.password)),
    h("div", { class: "auth custom_header" }, field("Header name", `${A}.header_key`, f.header_key), field("Header value", `${A}.header_value`, f.header_value)));
  const eventbridge = h("fieldset", { class: "eventbridge" }, h("legend", {}, "Amazon EventBridge"),
    field("AWS account id", `${W}.aws_account_id`, f.aws_account_id),
    field("AWS region", `${W}.aws_region`, f.aws_region),
    field("Event bus name", `${W}.event_bus_name`, f.event_bus_name),
    field("Source (optional)", `${W}.source`, f.source),
    field("AWS endpoint override (optional)", `${W}.endpoint_url`, f.endpoint_url));
  const sync = () => {
    webhook.hidden = f.type.value !== "webhook";
    eventbridge.hidden = f.type.value !== "eventbridge";
    for (const div of webhook.querySelectorAll(".auth")) div.hidden = !div.classList.contains(f.method.value);
  };
  f.type.addEventListener("change", sync);
  f.method.addEventListener("change", sync);

  const formError = h("div", { id: "form-error" });
  const form = h("form", { id: "stream-form", class: "card", novalidate: true, onsubmit: (event) => {
    event.preventDefault();
    save();
  } },
  h("h1", {}, stream ? `Edit ${stream.name}` : "New event stream"),
  formError,
  field("Name", "name", f.name),
  field("Event types", "subscriptions", f.subscriptions, "Comma-separated; wildcards such as user.* or * allowed."),
  field("Status", "status", f.status),
  field("Destination", "destination", f.type),
  webhook, eventbridge,
  h("fieldset", {}, h("legend", {}, "Delivery"),
    field("Timeout per attempt", "delivery.timeout", f.timeout, "e.g. 500ms, 10s (100ms–60s)."),
    field("Deliveries in flight", "delivery.max_in_flight", f.max_in_flight),
    field("Ordering", "delivery.ordering", f.ordering, "Per subject: one user's events arrive in the order they happened; a failing event holds back only its subject (webhooks only)."),
    field("Retry schedule", "delivery.retry_schedule", f.retry_schedule, "Comma-separated delays, each one of the installation's retry tiers."),
    stream ? null : field("Start position", "delivery.start_position", f.start_position, "now, earliest, or an RFC 3339 time (backfill)."),
    field("4xx answers are final (no retry)", "delivery.permanent_4xx", f.permanent_4xx),
    field("Disable after consecutive failures", "delivery.auto_disable_after", f.auto_disable_after)),
  h("fieldset", { "data-field": "signing_secrets", class: "field" }, h("legend", {}, `Signing secrets${stream ? ` (${stream.signing_secrets_count} stored)` : ""}`),
    h("p", { class: "hint" }, `Standard Webhooks secrets (whsec_…); a second one for rotation.${stream ? " Giving any replaces all stored ones." : ""}`),
    field("Secret", "signing_secrets.0", f.secret0), field("Second secret", "signing_secrets.1", f.secret1)),
  h("div", { class: "actions" },
    h("button", { type: "submit", id: "save" }, stream ? "Save" : "Create stream"),
    h("a", { class: "button secondary", href: stream ? `#/streams/${stream.id}` : "#/" }, "Cancel")));
  sync();
  show(form);

  const list = (input) => input.value.split(/[\s,]+/).filter(Boolean);
  const number = (input) => (/^\d+$/.test(input.value.trim()) ? Number(input.value.trim()) : input.value.trim());

  function destination() {
    if (f.type.value === "eventbridge") {
      const configuration = { aws_account_id: f.aws_account_id.value.trim(), aws_region: f.aws_region.value.trim(), event_bus_name: f.event_bus_name.value.trim() };
      if (f.source.value.trim()) configuration.source = f.source.value.trim();
      if (f.endpoint_url.value.trim()) configuration.endpoint_url = f.endpoint_url.value.trim();
      return { type: "eventbridge", configuration };
    }
    const configuration = { webhook_endpoint: f.endpoint.value.trim() };
    const method = f.method.value;
    if (method === "bearer") configuration.webhook_authorization = { method, token: f.token.value };
    if (method === "basic") configuration.webhook_authorization = { method, username: f.username.value, password: f.password.value };
    if (method === "custom_header") configuration.webhook_authorization = { method, header_key: f.header_key.value, header_value: f.header_value.value };
    return { type: "webhook", configuration };
  }

  function deliverySettings() {
    const out = {};
    if (f.timeout.value.trim()) out.timeout = f.timeout.value.trim();
    if (f.max_in_flight.value.trim()) out.max_in_flight = number(f.max_in_flight);
    out.ordering = f.ordering.value;
    if (list(f.retry_schedule).length) out.retry_schedule = list(f.retry_schedule);
    else if (stream && stream.delivery.retry_schedule) out.retry_schedule = null;
    if (!stream && f.start_position.value.trim()) out.start_position = f.start_position.value.trim();
    out.permanent_4xx = f.permanent_4xx.checked;
    if (f.auto_disable_after.value.trim()) out.auto_disable_after = number(f.auto_disable_after);
    return out;
  }

  // Secrets are never shown, so a destination is sent only when it changed or a secret is given.
  function destinationChanged(next) {
    const shown = JSON.parse(JSON.stringify(next));
    const given = [f.token, f.password, f.header_value].some((input) => input.value);
    const auth = shown.configuration.webhook_authorization;
    if (auth) for (const key of ["token", "password", "header_value"]) delete auth[key];
    return given || JSON.stringify(sorted(shown)) !== JSON.stringify(sorted(stream.destination));
  }

  function body() {
    const out = {
      name: f.name.value,
      subscriptions: list(f.subscriptions).map((event_type) => ({ event_type })),
      status: f.status.value,
      destination: destination(),
      delivery: deliverySettings(),
    };
    const secrets = [f.secret0.value, f.secret1.value].filter(Boolean);
    if (secrets.length) out.signing_secrets = secrets;
    if (!stream) return out;
    // PATCH: send only what changed.
    const changes = {};
    if (out.name !== stream.name) changes.name = out.name;
    if (JSON.stringify(out.subscriptions) !== JSON.stringify(stream.subscriptions)) changes.subscriptions = out.subscriptions;
    if (out.status !== stream.status) changes.status = out.status;
    if (destinationChanged(out.destination)) changes.destination = out.destination;
    const delivery = Object.fromEntries(Object.entries(out.delivery)
      .filter(([key, value]) => JSON.stringify(value) !== JSON.stringify(stream.delivery[key])));
    if (Object.keys(delivery).length) changes.delivery = delivery;
    if (out.signing_secrets) changes.signing_secrets = out.signing_secrets;
    return changes;
  }

  async function save() {
    for (const old of form.querySelectorAll(".field-error")) old.remove();
    for (const old of form.querySelectorAll("[aria-invalid]")) old.removeAttribute("aria-invalid");
    formError.replaceChildren();
    const payload = body();
    if (stream && Object.keys(payload).length === 0) return notice(formError, "Nothing changed.", "ok");
    try {
      const saved = stream
        ? await api("PATCH", streamPath(stream.id), { body: payload })
        : await api("POST", "v1/event-streams", { body: payload });
      location.hash = `#/streams/${saved.id}`;
    } catch (error) {
      if (error instanceof NeedToken) return loginPage(error.message);
      showFieldError(form, formError, error);
    }
  }
}

function sorted(value) {
  if (Array.isArray(value)) return value.map(sorted);
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.keys(value).sort().filter((k) => value[k] !== null).map((k) => [k, sorted(value[k])]));
  }
  return value;
}

// The API names the offending field by dotted path (subscriptions.0.event_type); the error
// goes next to the most specific input the form has for it, or on top of the form.
function showFieldError(form, formError, error) {
  const path = error instanceof ApiError && error.field ? error.field.split(".") : [];
  for (let n = path.length; n > 0; n -= 1) {
    const target = [...form.querySelectorAll("[data-field]")].find((el) => el.dataset.field === path.slice(0, n).join("."));
    if (target && !target.closest("[hidden]")) {
      const message = h("p", { class: "field-error", role: "alert", "data-error-for": error.field }, error.message);
      if (target.matches("input, select")) {
        target.setAttribute("aria-invalid", "true");
        target.closest(".field").append(message);
      } else {
        target.append(message);
      }
      target.scrollIntoView({ block: "center" });
      if (target.focus) target.focus();
      return;
    }
  }
  notice(formError, errorText(error), "error");
}

// --- start ---------------------------------------------------------------------------------
document.getElementById("forget").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  route();
});
window.addEventListener("hashchange", route);
route();
