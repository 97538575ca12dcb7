// registryd's operator console. No server-side session: the operator pastes a connection
// string, this page signs SAS tokens with WebCrypto (the key stays in this closure's memory,
// never in storage) and calls the same API as every client, so the policy's rights apply.
// Every piece of data reaches the page through textContent, never as markup.
"use strict";
(() => {
  const API = "api-version=2021-04-12";
  let credentials = null; // {hostName, keyName, key: CryptoKey}
  let token = null;       // {header, expiry}
  const $ = (id) => document.getElementById(id);

  // ---- connection string and SAS ----

  function parseConnectionString(text) {
    const fields = {};
    for (const part of text.trim().split(";")) {
      const at = part.indexOf("=");
      if (at > 0) fields[part.slice(0, at).trim().toLowerCase()] = part.slice(at + 1).trim();
    }
    if (!fields.hostname || !fields.sharedaccesskeyname || !fields.sharedaccesskey) {
      throw new Error("A connection string needs HostName, SharedAccessKeyName and SharedAccessKey.");
    }
    return { hostName: fields.hostname, keyName: fields.sharedaccesskeyname, key: fields.sharedaccesskey };
  }

  const base64ToBytes = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const bytesToBase64 = (bytes) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

  async function authorization() {
    const now = Math.floor(Date.now() / 1000);
    if (token && token.expiry - now > 300) return token.header;
    const expiry = now + 3600;
    const resource = encodeURIComponent(credentials.hostName);
    const signature = await crypto.subtle.sign("HMAC", credentials.key, new TextEncoder().encode(`${resource}\n${expiry}`));
    const header = `SharedAccessSignature sr=${resource}&sig=${encodeURIComponent(bytesToBase64(signature))}` +
      `&se=${expiry}&skn=${encodeURIComponent(credentials.keyName)}`;
    token = { header, expiry };
    return header;
  }

  // ---- the API ----

  class APIError extends Error {
    constructor(status, message) { super(`${status}: ${message}`); this.status = status; }
  }

  async function api(method, path, { body, ifMatch, raw, extra } = {}) {
    const headers = { Authorization: await authorization(), ...(extra || {}) };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (ifMatch) headers["If-Match"] = ifMatch;
    const url = path + (path.includes("?") ? "&" : "?") + API;
    const response = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    if (!response.ok) {
      // The API's own message (Azure's format: {"Message": "ErrorCode:…;…"}).
      let message = response.statusText;
      try { message = (await response.json()).Message || message; } catch (_) { /* not JSON */ }
      if (response.status === 412) message = `Conflict: it changed since it was read (${message}). Reload and try again.`;
      throw new APIError(response.status, message);
    }
    if (raw) return response;
    const text = await response.text();
    return text ? JSON.parse(text) : null;
  }

  function showError(error) {
    const box = $("error");
    box.textContent = error instanceof Error ? error.message : String(error);
    box.hidden = false;
  }
  function clearError() { $("error").hidden = true; $("error").textContent = ""; }

  // Runs an action, showing its failure as the API's message.
  const guarded = (action) => async (...args) => {
    clearError();
    try { await action(...args); } catch (error) { showError(error); }
  };

  // ---- small DOM helpers ----

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attributes)) {
      if (name === "onclick") node.addEventListener("click", guarded(value));
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child ?? "")));
    return node;
  }
  const tile = (term, value) => el("div", {}, el("dt", {}, term), el("dd", {}, value));
  const time = (text) => (!text || text.startsWith("0001-")) ? "never" : new Date(text).toLocaleString();

  // ---- views ----

  const views = ["connect", "overview", "devices", "device", "live", "routes"];
  let timer = null;

  function show(view) {
    for (const name of views) $(name).hidden = name !== view;
    for (const button of document.querySelectorAll("nav button[data-view]")) {
      if (button.dataset.view === view) button.setAttribute("aria-current", "page"); else button.removeAttribute("aria-current");
    }
    clearInterval(timer);
    timer = null;
    const heading = $(view).querySelector("h2");
    if (heading) { heading.tabIndex = -1; heading.focus(); }
  }

  async function open(view) {
    clearError();
    show(view);
    try {
      if (view === "overview") { await overview(); timer = setInterval(guarded(overview), 5000); }
      if (view === "devices") await listDevices();
      if (view === "live") startLive();
      if (view === "routes") { await routes(); timer = setInterval(guarded(routes), 5000); }
    } catch (error) { showError(error); }
  }

  // Overview: counts, rates from the metrics, the chain head and a verify.
  let lastMetrics = null;
  async function overview() {
    const [stats, service] = await Promise.all([api("GET", "/statistics/devices"), api("GET", "/statistics/service")]);
    $("counts").replaceChildren(tile("Total", stats.totalDeviceCount), tile("Enabled", stats.enabledDeviceCount),
      tile("Disabled", stats.disabledDeviceCount), tile("Connected", service.connectedDeviceCount));
    const metrics = await (await api("GET", "/metrics", { raw: true })).text();
    const sum = (name) => metrics.split("\n").filter((l) => l.startsWith(name)).reduce((t, l) => t + Number(l.split(" ").pop()), 0);
    const now = { at: Date.now(), writes: sum("registryd_events_appended_total"), auth: sum("registryd_device_auth_decisions_total") };
    const rate = (key) => lastMetrics ? ((now[key] - lastMetrics[key]) / ((now.at - lastMetrics.at) / 1000)).toFixed(1) : "…";
    $("rates").replaceChildren(tile("Writes per second", rate("writes")), tile("Auth checks per second", rate("auth")));
    lastMetrics = now;
    const head = await api("GET", "/registry/log/head");
    $("head").replaceChildren(tile("Head seq", head.seq), tile("Head hash", head.hash), tile("Last event", time(head.time)));
  }

  async function verify() {
    const progress = $("verify-progress");
    progress.hidden = false;
    progress.value = 0;
    $("verify-result").textContent = "Verifying…";
    const response = await api("POST", "/registry/audit/verify", { raw: true });
    await records(response, "\n", (text) => {
      const line = JSON.parse(text);
      if (line.total) progress.value = line.verified / line.total;
      if (line.result) {
        progress.value = 1;
        $("verify-result").textContent = `${line.result}: ${line.events} events, hash chain and projections checked${line.detail ? " — " + line.detail : ""}`;
      }
    });
  }

  // Reads a streamed response to its end, handing over each record (text up to `separator`).
  async function records(response, separator, handle) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let end;
      while ((end = buffer.indexOf(separator)) >= 0) {
        const record = buffer.slice(0, end);
        buffer = buffer.slice(end + separator.length);
        if (record) handle(record);
      }
    }
  }

  // Devices: a page of identities, or a query's results; actions with If-Match.
  // Pages of the query `SELECT * FROM devices [WHERE …]` (50 at a time; More follows the
  // registry's continuation token).
  let lastQuery = "";
  let continuation = null;
  async function listDevices(more = false) {
    const query = "SELECT * FROM devices" + (lastQuery ? ` WHERE ${lastQuery}` : "");
    const extra = { "x-ms-max-item-count": "50" };
    if (more && continuation) extra["x-ms-continuation"] = continuation;
    const response = await api("POST", "/devices/query", { body: { query }, extra, raw: true });
    const page = await response.json();
    continuation = response.headers.get("x-ms-continuation");
    const tbody = $("device-table").querySelector("tbody");
    if (!more) tbody.replaceChildren();
    tbody.append(...page.map(deviceRow));
    $("more").hidden = !continuation;
  }

  function deviceRow(device) {
    const id = device.deviceId;
    const status = device.status || "enabled";
    const auth = device.authentication ? device.authentication.type : device.authenticationType;
    const row = el("tr", { "data-device": id },
      el("td", {}, el("button", { type: "button", onclick: () => openDevice(id) }, id)),
      el("td", { class: status }, status + (device.statusReason ? ` (${device.statusReason})` : "")),
      el("td", {}, auth || ""),
      el("td", {}, device.connectionState || ""),
      el("td", {}, time(device.lastActivityTime)),
      el("td", {}, ...deviceActions(id, status)));
    return row;
  }

  function deviceActions(id, status) {
    const disable = status === "enabled";
    return [
      el("button", { type: "button", onclick: () => setStatus(id, disable ? "disabled" : "enabled") }, disable ? "Disable" : "Enable"),
      el("button", { type: "button", onclick: () => rotateKeys(id) }, "Rotate keys"),
      el("button", { type: "button", onclick: () => remove(id) }, "Delete"),
    ];
  }

  // The identity as the list last read it: its etag is the If-Match of every change.
  async function current(id) { return api("GET", `/devices/${encodeURIComponent(id)}`); }

  async function setStatus(id, status) {
    const device = await current(id);
    const reason = status === "disabled" ? (prompt(`Why disable ${id}?`) || "") : "";
    device.status = status;
    device.statusReason = reason;
    await api("PUT", `/devices/${encodeURIComponent(id)}`, { body: device, ifMatch: device.etag });
    await listDevices();
  }

  async function rotateKeys(id) {
    const device = await current(id);
    if (!device.authentication || device.authentication.type !== "sas") throw new Error(`${id} does not use SAS keys.`);
    const fresh = () => bytesToBase64(crypto.getRandomValues(new Uint8Array(32)));
    device.authentication.symmetricKey = { primaryKey: fresh(), secondaryKey: fresh() };
    await api("PUT", `/devices/${encodeURIComponent(id)}`, { body: device, ifMatch: device.etag });
    $("who").textContent = `Rotated the keys of ${id}.`;
  }

  async function remove(id) {
    const device = await current(id);
    if (!confirm(`Delete ${id}? Its history stays in the log.`)) return;
    await api("DELETE", `/devices/${encodeURIComponent(id)}`, { ifMatch: device.etag });
    await listDevices();
  }

  async function create(event) {
    event.preventDefault();
    const id = $("new-id").value.trim();
    await api("PUT", `/devices/${encodeURIComponent(id)}`, { body: { deviceId: id } });
    $("new-id").value = "";
    await listDevices();
  }

  // Device: identity (keys hidden until asked), modules, tags, history and the state at a time.
  let shown = null;
  async function openDevice(id) {
    show("device");
    const encoded = encodeURIComponent(id);
    const [device, modules, twin] = await Promise.all([api("GET", `/devices/${encoded}`), api("GET", `/devices/${encoded}/modules`),
      api("GET", `/twins/${encoded}`)]);
    shown = { device, history: [] };
    $("device-title").textContent = `Device ${id}`;
    renderIdentity(false);
    $("modules").replaceChildren(...(modules.length ? modules.map((m) => el("li", {}, `${m.moduleId} (${m.connectionState})`)) : [el("li", {}, "none")]));
    $("tags").textContent = JSON.stringify(twin.tags || {}, null, 2);
    let after = 0;
    const tbody = $("history").querySelector("tbody");
    tbody.replaceChildren();
    for (;;) {
      const response = await api("GET", `/registry/devices/${encoded}/history?after=${after}`, { raw: true });
      const entries = await response.json();
      for (const entry of entries) {
        shown.history.push(entry);
        tbody.append(el("tr", {}, el("td", {}, entry.seq), el("td", {}, time(entry.time)), el("td", {}, entry.type),
          el("td", {}, entry.actor), el("td", {}, entry.changes.map((c) => c.path).join(", "))));
      }
      const next = response.headers.get("x-ms-continuation");
      if (!next) break;
      after = next;
    }
  }

  function renderIdentity(withKeys) {
    const d = shown.device;
    const keys = d.authentication && d.authentication.symmetricKey ? d.authentication.symmetricKey : null;
    const facts = [["Device id", d.deviceId], ["Status", d.status + (d.statusReason ? ` (${d.statusReason})` : "")],
      ["Authentication", d.authentication ? d.authentication.type : ""], ["Connection", d.connectionState],
      ["Generation", d.generationId], ["ETag", d.etag], ["Last activity", time(d.lastActivityTime)]];
    if (keys) {
      facts.push(["Primary key", withKeys ? keys.primaryKey : "hidden"], ["Secondary key", withKeys ? keys.secondaryKey : "hidden"]);
    }
    $("identity").replaceChildren(...facts.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value ?? "")]));
    $("show-keys").textContent = withKeys ? "Hide keys" : "Show keys";
    $("show-keys").dataset.showing = withKeys ? "1" : "";
  }

  // The identity as of a time: its history's changes folded in order (keys are never in history).
  function stateAt(event) {
    event.preventDefault();
    const at = new Date($("at").value);
    if (isNaN(at)) throw new Error("Pick a date and time.");
    let state = null;
    for (const entry of shown.history) {
      if (new Date(entry.time) > at) break;
      if (entry.moduleId) continue; // the device's own fields only
      if (entry.type.toLowerCase().includes("deleted")) { state = null; continue; }
      state = state || {};
      for (const change of entry.changes) {
        const path = change.path.split(".").filter(Boolean);
        let node = state;
        for (const key of path.slice(0, -1)) node = node[key] = (node[key] && typeof node[key] === "object") ? node[key] : {};
        if (path.length) node[path[path.length - 1]] = change.new;
      }
    }
    $("state-at").textContent = state ? JSON.stringify(state, null, 2) : `${shown.device.deviceId} did not exist at ${at.toLocaleString()}.`;
  }

  // Live: identity changes (create, update, delete) and connection changes as they happen, from
  // two event streams (fetch, so the Authorization header can be sent), with a pause.
  let live = null;
  let paused = false;
  const held = [];
  function startLive() {
    if (live) return;
    live = new AbortController();
    for (const source of ["DeviceIdentityChangeEvents", "DeviceConnectionStateEvents"]) follow(source, live.signal);
  }
  const follow = (source, signal) => guarded(async () => {
    const response = await fetch(`/registry/events?source=${source}&${API}`, { headers: { Authorization: await authorization() }, signal });
    if (!response.ok) throw new APIError(response.status, (await response.json()).Message);
    await records(response, "\n\n", (block) => {
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data) liveEvent(JSON.parse(data));
    });
  })();
  function liveEvent(message) {
    const p = message.applicationProperties || {};
    const line = el("li", {}, `${p.operationTimestamp || ""} ${p.opType} ${p.deviceId}${p.moduleId ? "/" + p.moduleId : ""} (seq ${message.seq})`);
    if (paused) { held.push(line); $("held").textContent = `${held.length} held`; return; }
    $("events").prepend(line);
  }
  function togglePause() {
    paused = !paused;
    $("pause").setAttribute("aria-pressed", String(paused));
    $("pause").textContent = paused ? "Resume" : "Pause";
    if (!paused) { for (const line of held.splice(0)) $("events").prepend(line); $("held").textContent = ""; }
  }

  // Routes: endpoint, health, lag, parked (with redeliver), deliveries per minute since this page opened.
  const delivered = {};
  async function routes() {
    const list = await api("GET", "/registry/routes");
    const now = Date.now();
    const tbody = $("route-table").querySelector("tbody");
    tbody.replaceChildren(...list.map((route) => {
      const series = delivered[route.name] = delivered[route.name] || [];
      series.push({ at: now, count: route.delivered });
      while (series.length > 30) series.shift();
      return el("tr", { "data-route": route.name },
        el("td", {}, route.name),
        el("td", {}, `${route.endpointName} (${route.endpointType})`),
        el("td", { class: route.health }, route.health + (route.lastError ? ` — ${route.lastError}` : "")),
        el("td", {}, route.lag),
        el("td", { class: "parked" }, route.parked),
        el("td", {}, sparkline(series)),
        el("td", {}, el("button", { type: "button", onclick: () => redeliver(route.name) }, "Redeliver parked")));
    }));
  }
  function sparkline(series) {
    const rates = series.slice(1).map((p, i) => (p.count - series[i].count) / Math.max(1e-3, (p.at - series[i].at) / 60000));
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "spark");
    svg.setAttribute("width", "120");
    svg.setAttribute("height", "24");
    svg.setAttribute("role", "img");
    const last = rates.length ? rates[rates.length - 1].toFixed(0) : "0";
    svg.setAttribute("aria-label", `${last} deliveries per minute now`);
    const top = Math.max(1, ...rates);
    const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
    line.setAttribute("points", rates.map((r, i) => `${(i * 120) / Math.max(1, rates.length - 1)},${22 - (r / top) * 20}`).join(" "));
    svg.append(line);
    return el("span", {}, svg, ` ${last}/min`);
  }
  async function redeliver(name) {
    await api("POST", `/registry/routes/${encodeURIComponent(name)}/parked/redeliver`);
    await routes();
  }

  // ---- wiring ----

  async function connect(event) {
    event.preventDefault();
    const parsed = parseConnectionString($("cs").value);
    const key = await crypto.subtle.importKey("raw", base64ToBytes(parsed.key), { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
    credentials = { hostName: parsed.hostName, keyName: parsed.keyName, key };
    token = null;
    $("cs").value = ""; // the key is kept only as a non-extractable CryptoKey
    // Checks the key (and the RegistryRead right every view needs) before showing anything.
    await api("GET", "/statistics/devices");
    $("who").textContent = `Connected to ${parsed.hostName} as ${parsed.keyName}`;
    $("nav").hidden = false;
    await open("devices");
  }

  function disconnect() {
    credentials = null;
    token = null;
    if (live) live.abort();
    $("nav").hidden = true;
    $("who").textContent = "";
    show("connect");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("connect-form").addEventListener("submit", guarded(connect));
    $("search-form").addEventListener("submit", guarded(async (event) => { event.preventDefault(); lastQuery = $("search").value.trim(); await listDevices(); }));
    $("create-form").addEventListener("submit", guarded(create));
    $("at-form").addEventListener("submit", guarded(async (event) => stateAt(event)));
    $("show-keys").addEventListener("click", () => renderIdentity(!$("show-keys").dataset.showing));
    $("pause").addEventListener("click", togglePause);
    $("verify").addEventListener("click", guarded(verify));
    $("more").addEventListener("click", guarded(() => listDevices(true)));
    $("disconnect").addEventListener("click", disconnect);
    for (const button of document.querySelectorAll("nav button[data-view]")) button.addEventListener("click", () => open(button.dataset.view));
    show("connect");
  });
})();
