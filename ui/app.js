// heartbeatd's status page: the cluster's members and chosen users' presence, live from
// GET /v1/events (docs/API.md, "The status page"). Plain JavaScript, no dependencies, no
// request to anything but the daemon that served it.
//
// How it stays live without polling:
// - One event stream, read with fetch() (EventSource cannot send an Authorization header) and
//   parsed here. Its initial events carry the members' and followed users' state; changes
//   follow. When it ends or fails, the page says "disconnected" and reconnects with capped,
//   jittered exponential backoff; a new stream's initial events bring the state back.
// - GET /v1/members on each (re)connect and after each burst of member events adds what
//   events do not carry: last_seen_ms and which member is this node.
// - The online/tracked counts and the chart are aggregates with no event: they are re-read
//   every history interval (GET /v1/users/history's interval_ms, 10 s by default, at most
//   once a second) and shortly after a followed user's change.
// - User ids are strings end to end (?ids=string): ids above 2^53 stay exact.
"use strict";

(() => {
  const STATES = ["alive", "suspect", "dead", "left"];
  const STATE_RANK = { dead: 0, suspect: 1, left: 2, alive: 3 }; // "worst first"
  const PAGE_SIZE = 200; // tiles or rows rendered at once
  // The stream's query carries the followed ids: at most this many, and at most this many
  // characters of them, to stay well inside api.max_header_bytes (16 KiB by default).
  const STREAM_MAX_USERS = 1000;
  const STREAM_MAX_QUERY = 8000;
  const BACKOFF_FIRST_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  // No byte (not even ": keepalive", every events.keepalive = 15 s) for this long: the
  // daemon's host is gone without closing the connection; start over.
  const STREAM_SILENCE_MS = 45000;
  const DEFAULT_MAX_BATCH = 10000;
  const TOKEN_KEY = "heartbeatd.token";
  const MAX_U64 = "18446744073709551615";

  const $ = (id) => document.getElementById(id);

  // ---- State -------------------------------------------------------------------------------
  const members = new Map(); // name -> {name, address, state, incarnation, last_seen_ms, self, tags}
  let followed = []; // user ids (strings), in the order entered, distinct
  const users = new Map(); // id -> {online, last_seen_ms, live}
  let streamUsers = new Set(); // the ids the current stream follows
  const view = { memberFilter: "all", memberName: "", memberSort: "name", memberPage: 0,
                 userFilter: "all", userPage: 0 };
  let maxBatch = DEFAULT_MAX_BATCH;
  let connection = null; // {abort: AbortController, generation}
  let generation = 0; // bumped by every (re)connect; stale work checks it and stops
  let attempt = 0;
  let connectedAt = 0; // when the current stream opened; 0 while there is none
  let retryTimer = 0;
  let historyTimer = 0;
  let renderQueued = false;

  // ---- API ---------------------------------------------------------------------------------
  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // The token lives in the tab's sessionStorage (gone with the tab, never sent anywhere but
  // in the Authorization header), and in memory where storage is refused.
  let currentToken = (() => {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch (e) {
      return "";
    }
  })();
  const token = () => currentToken;

  function setToken(t) {
    currentToken = t;
    try {
      if (t) sessionStorage.setItem(TOKEN_KEY, t);
      else sessionStorage.removeItem(TOKEN_KEY);
    } catch (e) {
      // storage refused (a private window's policy): kept in memory for this page
    }
  }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const t = token();
    if (t) h.Authorization = "Bearer " + t;
    return h;
  }

  async function failure(res) {
    let message = res.status + " " + res.statusText;
    try {
      const body = await res.json();
      if (body && body.message) message = body.message;
    } catch (e) {
      // not the API's JSON error: keep the status line
    }
    return new ApiError(res.status, message);
  }

  async function api(path, options) {
    const opts = Object.assign({ cache: "no-store" }, options || {});
    opts.headers = headers(opts.headers);
    const res = await fetch(path, opts);
    if (!res.ok) throw await failure(res);
    return res.status === 204 ? null : res.json();
  }

  // ---- Messages ----------------------------------------------------------------------------
  function setConnection(state, text) {
    $("connection").dataset.state = state;
    document.body.dataset.connection = state; // the style greys out what may be stale
    $("connection-text").textContent = text;
  }

  function showBanner(text) {
    const b = $("banner");
    if (!text) {
      b.hidden = true;
      b.textContent = "";
      return;
    }
    b.textContent = text;
    b.hidden = false;
  }

  function showAuth(err) {
    const m = $("auth-message");
    if (!err) {
      m.hidden = true;
      m.textContent = "";
      return;
    }
    m.textContent = err.status === 401
      ? "The daemon needs a valid API token (401): enter one with the read scope above. " +
        "(" + err.message + ")"
      : "This token lacks the read scope the page needs (403): use a token with read. " +
        "(" + err.message + ")";
    m.hidden = false;
  }

  const isAuthError = (e) => e instanceof ApiError && (e.status === 401 || e.status === 403);

  // ---- Formatting --------------------------------------------------------------------------
  const fmtCount = (n) => Number(n).toLocaleString("en");

  function ago(ms) {
    const s = Math.max(0, Math.floor((Date.now() - ms) / 1000));
    if (s < 120) return s + " s ago";
    const m = Math.floor(s / 60);
    if (m < 120) return m + " min ago";
    const h = Math.floor(m / 60);
    if (h < 48) return h + " h ago";
    return Math.floor(h / 24) + " d ago";
  }

  function span(ms) {
    const s = Math.round(ms / 1000);
    if (s < 120) return s + " s";
    const m = Math.round(s / 60);
    return m < 60 ? m + " min" : Math.round(m / 6) / 10 + " h";
  }

  const clock = (ms) => new Date(ms).toLocaleTimeString("en-GB");

  // "last seen" of a member. A member the daemon lists as alive is being heard from right
  // now (that is what alive means), while its last_seen_ms is only as fresh as the last
  // read: counting up from it would call a healthy member stale. The others stopped being
  // heard, so their age counts up, second by second.
  function memberSeen(m) {
    if (m.state === "alive") return { text: "seen now", since: null };
    if (m.seen_pending) return { text: "last seen: reading…", since: null };
    if (m.last_seen_ms == null) return { text: "never heard from directly", since: null };
    return { text: null, since: m.last_seen_ms };
  }

  // ---- User ids ----------------------------------------------------------------------------
  // Canonical decimal u64, as the daemon wants them: no sign, no leading zero, <= 2^64 - 1.
  function validId(s) {
    if (!/^(0|[1-9][0-9]{0,19})$/.test(s)) return false;
    return s.length < 20 || s <= MAX_U64;
  }

  function parseIds(text) {
    const ids = [];
    const bad = [];
    const seen = new Set();
    for (const raw of text.split(/[\s,;]+/)) {
      if (!raw) continue;
      if (!validId(raw)) {
        bad.push(raw);
        continue;
      }
      if (!seen.has(raw)) {
        seen.add(raw);
        ids.push(raw);
      }
    }
    return { ids, bad };
  }

  // The ids the stream follows: the first ones entered, within both limits.
  function streamSubset(ids) {
    const out = [];
    let length = 0;
    for (const id of ids) {
      if (out.length >= STREAM_MAX_USERS || length + id.length + 1 > STREAM_MAX_QUERY) break;
      out.push(id);
      length += id.length + 1;
    }
    return out;
  }

  // ---- Rendering ---------------------------------------------------------------------------
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      renderMembers();
      renderUsers();
    });
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text != null) e.textContent = text;
    return e;
  }

  function seenNode(text, since) {
    const s = el("span", "seen");
    if (since != null) {
      s.dataset.since = String(since);
      s.textContent = "last seen " + ago(since);
      s.title = new Date(since).toISOString();
    } else {
      s.textContent = text;
    }
    return s;
  }

  function pager(nav, page, pages, total, noun) {
    nav.hidden = pages <= 1;
    nav.querySelector(".page-info").textContent =
      "Page " + (page + 1) + " of " + pages + " (" + fmtCount(total) + " " + noun + ")";
    nav.querySelector('[data-page="prev"]').disabled = page === 0;
    nav.querySelector('[data-page="next"]').disabled = page >= pages - 1;
  }

  function sortedMembers() {
    const name = view.memberName.toLowerCase();
    const list = [];
    for (const m of members.values()) {
      if (view.memberFilter !== "all" && m.state !== view.memberFilter) continue;
      if (name && !m.name.toLowerCase().includes(name)) continue;
      list.push(m);
    }
    const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    const seen = (m) => (m.state === "alive" ? Infinity : m.last_seen_ms == null ? -Infinity : m.last_seen_ms);
    const sorts = {
      name: byName,
      state: (a, b) => STATE_RANK[a.state] - STATE_RANK[b.state] || byName(a, b),
      seen: (a, b) => seen(a) - seen(b) || byName(a, b),
    };
    return list.sort(sorts[view.memberSort] || byName);
  }

  function renderMembers() {
    const counts = { alive: 0, suspect: 0, dead: 0, left: 0 };
    for (const m of members.values()) if (m.state in counts) counts[m.state]++;
    $("count-all").textContent = fmtCount(members.size);
    for (const s of STATES) $("count-" + s).textContent = fmtCount(counts[s]);

    const list = sortedMembers();
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    view.memberPage = Math.min(view.memberPage, pages - 1);
    const start = view.memberPage * PAGE_SIZE;
    const frag = document.createDocumentFragment();
    for (const m of list.slice(start, start + PAGE_SIZE)) {
      const li = el("li", "tile state-" + m.state);
      li.dataset.name = m.name;
      li.dataset.state = m.state;
      const head = el("div", "tile-head");
      head.append(el("span", "mark"));
      head.lastChild.setAttribute("aria-hidden", "true");
      head.append(el("span", "tile-name", m.name));
      if (m.self) head.append(el("span", "self-tag", "this node"));
      li.append(head);
      li.append(el("span", "state-label", m.state));
      const dl = el("dl", "tile-facts");
      const address = el("dd", null, m.address || "–");
      address.title = m.address || "";
      dl.append(el("dt", "visually-hidden", "address"), address);
      dl.append(el("dt", null, "incarnation"), el("dd", null, String(m.incarnation ?? "–")));
      for (const [key, value] of Object.entries(m.tags || {})) {
        dl.append(el("dt", "tag-key", key), el("dd", "tag-value", value === "" ? "\u2013" : value));
      }
      li.append(dl);
      const seen = memberSeen(m);
      li.append(seenNode(seen.text, seen.since));
      frag.append(li);
    }
    $("members").replaceChildren(frag);
    $("members-empty").hidden = list.length > 0 || members.size === 0;
    pager($("members-pager"), view.memberPage, pages, list.length, "members");
  }

  function renderUsers() {
    const shown = followed.filter((id) => {
      if (view.userFilter === "all") return true;
      const u = users.get(id);
      return u && (view.userFilter === "online") === !!u.online;
    });
    const pages = Math.max(1, Math.ceil(shown.length / PAGE_SIZE));
    view.userPage = Math.min(view.userPage, pages - 1);
    const start = view.userPage * PAGE_SIZE;
    const frag = document.createDocumentFragment();
    for (const id of shown.slice(start, start + PAGE_SIZE)) {
      const u = users.get(id);
      const state = !u ? "unknown" : u.online ? "online" : "offline";
      const li = el("li", "user user-" + state);
      li.dataset.user = id;
      li.dataset.state = state;
      const dot = el("span", "dot");
      dot.setAttribute("aria-hidden", "true");
      li.append(dot, el("span", "user-id", id), el("span", "user-state", state === "unknown" ? "…" : state));
      if (u) {
        if (u.online) li.append(seenNode("seen now", null));
        else if (u.last_seen_ms == null) li.append(seenNode("never seen (or forgotten)", null));
        else li.append(seenNode(null, u.last_seen_ms));
        if (!u.live) {
          const n = el("span", "not-live", "as of " + clock(u.read_at));
          n.title = "Not followed by the event stream (beyond its first " +
            fmtCount(streamUsers.size) + " ids): read when the page connected or on Refresh";
          li.append(n);
        }
      }
      frag.append(li);
    }
    $("users").replaceChildren(frag);
    $("users-empty").hidden = shown.length > 0 || followed.length === 0;
    pager($("users-pager"), view.userPage, pages, shown.length, "users");
  }

  // Once a second: only the visible "N s ago" texts change.
  function tick() {
    for (const s of document.querySelectorAll("[data-since]")) {
      s.textContent = "last seen " + ago(Number(s.dataset.since));
    }
  }

  // ---- Chart -------------------------------------------------------------------------------
  const SVG = "http://www.w3.org/2000/svg";

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text != null) e.textContent = text;
    return e;
  }

  function renderChart(history) {
    const chart = $("chart");
    const W = 600, H = 140, top = 14, bottom = 20;
    const points = (history && history.points) || [];
    const parts = [];
    if (points.length === 0) {
      parts.push(svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "chart-note" },
                     "no history yet"));
      chart.replaceChildren(...parts);
      $("chart-caption").textContent = "Users online over the last hour: no points yet";
      return;
    }
    // The last hour, or less while the daemon has not kept an hour yet (it starts empty).
    const now = points[points.length - 1].time_ms;
    const from = Math.max(now - 3600 * 1000, points[0].time_ms);
    let max = 0, min = Infinity;
    for (const p of points) {
      max = Math.max(max, p.online);
      min = Math.min(min, p.online);
    }
    const yMax = Math.max(1, max);
    const x = (t) => ((Math.max(t, from) - from) / (now - from || 1)) * W;
    const y = (v) => top + (1 - v / yMax) * (H - top - bottom);
    parts.push(svg("line", { x1: 0, y1: y(0), x2: W, y2: y(0), class: "chart-axis" }));
    parts.push(svg("line", { x1: 0, y1: y(yMax), x2: W, y2: y(yMax), class: "chart-grid" }));
    const coords = points.filter((p) => p.time_ms >= from)
      .map((p) => x(p.time_ms).toFixed(1) + "," + y(p.online).toFixed(1)).join(" ");
    parts.push(svg("polyline", { points: coords, class: "chart-line" }));
    const last = points[points.length - 1];
    parts.push(svg("circle", { cx: x(last.time_ms), cy: y(last.online), r: 3, class: "chart-dot" }));
    parts.push(svg("text", { x: 4, y: top - 3, class: "chart-label" }, fmtCount(yMax)));
    parts.push(svg("text", { x: 4, y: H - 5, class: "chart-label" }, span(now - from) + " ago"));
    parts.push(svg("text", { x: W - 4, y: H - 5, "text-anchor": "end", class: "chart-label" }, "now"));
    chart.replaceChildren(...parts);
    $("chart-caption").textContent = "Users online over the last " + span(now - from) + ": now " +
      fmtCount(last.online) +
      ", lowest " + fmtCount(min) + ", highest " + fmtCount(max) + " (" + points.length +
      (points.length === 1 ? " point" : " points") + ", one every " + Math.round((history.interval_ms || 10000) / 1000) + " s)";
  }

  // ---- Aggregates: counts and history, every history interval ------------------------------
  async function readAggregates(gen) {
    clearTimeout(historyTimer);
    let interval = 10000;
    try {
      const [counts, history] = await Promise.all([
        api("/v1/users"),
        api("/v1/users/history").catch((e) => {
          if (e instanceof ApiError && e.status === 404) return null; // an older daemon
          throw e;
        }),
      ]);
      if (gen !== generation) return;
      $("users-online").textContent = fmtCount(counts.online);
      $("users-tracked").textContent = fmtCount(counts.tracked);
      $("users-asof").textContent = "(as of " + clock(Date.now()) + ")";
      if (history) {
        interval = Math.max(1000, history.interval_ms || interval);
        renderChart(history);
      } else {
        $("chart-caption").textContent = "This daemon keeps no online history (GET /v1/users/history)";
      }
    } catch (e) {
      if (gen !== generation) return;
      if (isAuthError(e)) showAuth(e);
      // Otherwise the stream notices a daemon that is gone; try again next interval.
    }
    if (gen === generation) historyTimer = setTimeout(() => readAggregates(gen), interval);
  }

  // ---- Members -----------------------------------------------------------------------------
  function mergeMember(info) {
    const m = members.get(info.name) || { name: info.name, last_seen_ms: null, self: false };
    if (info.address !== undefined) m.address = info.address;
    if (info.incarnation !== undefined) m.incarnation = info.incarnation;
    if (info.state !== undefined) m.state = info.state;
    if (info.last_seen_ms !== undefined) m.last_seen_ms = info.last_seen_ms;
    if (info.self !== undefined) m.self = info.self;
    if (info.tags !== undefined) m.tags = info.tags;
    members.set(info.name, m);
    return m;
  }

  // The list adds last_seen_ms and self; states come from the stream, which is ordered
  // (a list read concurrently could be older than an event already applied). Members the
  // daemon no longer lists (reaped while the page was away) go.
  async function readMembers(gen, streamed) {
    const body = await api("/v1/members");
    if (gen !== generation) return;
    const listed = new Set();
    for (const m of body.members) {
      listed.add(m.name);
      const known = members.get(m.name);
      mergeMember({ name: m.name, address: m.address, incarnation: m.incarnation,
                    last_seen_ms: m.last_seen_ms, self: m.self, tags: m.tags,
                    state: known && streamed.has(m.name) ? undefined : m.state }).seen_pending = false;
    }
    for (const name of [...members.keys()]) {
      if (!listed.has(name) && !streamed.has(name)) members.delete(name);
    }
    const self = body.members.find((m) => m.self);
    if (self) $("node-name").textContent = self.name;
    scheduleRender();
  }

  // After member events: when each stopped being heard (events do not carry last_seen_ms).
  // One list read per burst of events, however many members changed (a partition of a
  // 1,000-member cluster is 1,000 events).
  let membersTimer = 0;
  function refreshMembersSoon(gen, streamed) {
    if (membersTimer) return;
    membersTimer = setTimeout(() => {
      membersTimer = 0;
      if (gen !== generation) return;
      readMembers(gen, streamed).catch(() => {
        // the daemon is going: the stream will tell
      });
    }, 250);
  }

  // After user events: the counts moved too (they have no event of their own).
  let countsTimer = 0;
  function refreshCountsSoon(gen) {
    if (countsTimer) return;
    countsTimer = setTimeout(() => {
      countsTimer = 0;
      if (gen === generation) readAggregates(gen);
    }, 500);
  }

  // ---- Users -------------------------------------------------------------------------------
  function setUser(id, online, lastSeen, live) {
    users.set(id, { online, last_seen_ms: lastSeen, live, read_at: Date.now() });
  }

  // Ids the stream does not follow: their state as of now, in batches of max_batch.
  async function readUnstreamedUsers(gen) {
    const rest = followed.filter((id) => !streamUsers.has(id));
    $("users-refresh").hidden = rest.length === 0;
    for (let i = 0; i < rest.length; i += maxBatch) {
      const batch = rest.slice(i, i + maxBatch);
      const body = await api("/v1/users/status?ids=string", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ users: batch }),
      });
      if (gen !== generation) return;
      for (const u of body.users) setUser(String(u.user), u.online, u.last_seen_ms, false);
      scheduleRender();
    }
  }

  function describeFollowing() {
    const note = $("users-note");
    if (followed.length === 0) {
      note.textContent = "";
      return;
    }
    const rest = followed.length - streamUsers.size;
    note.textContent = rest === 0
      ? "Following " + fmtCount(followed.length) + " user" + (followed.length === 1 ? "" : "s") + " live."
      : "Following " + fmtCount(followed.length) + " users: the first " + fmtCount(streamUsers.size) +
        " live; the other " + fmtCount(rest) + " as read when the page connected (Refresh the rest to read them again).";
  }

  // ---- The event stream --------------------------------------------------------------------
  // Server-Sent Events: lines; "event:" and "data:" fields; a blank line ends an event;
  // lines starting with ":" are comments (keepalives).
  function sseParser(onEvent) {
    let buffer = "";
    let type = "";
    let data = [];
    const eol = /\r\n|\r|\n/g;
    return (chunk) => {
      buffer += chunk;
      let pos = 0;
      for (;;) {
        eol.lastIndex = pos;
        const m = eol.exec(buffer);
        if (!m) break;
        // A "\r" that ends the chunk may be half of "\r\n": wait for more.
        if (m[0] === "\r" && m.index === buffer.length - 1) break;
        const line = buffer.slice(pos, m.index);
        pos = m.index + m[0].length;
        if (line === "") {
          if (data.length) onEvent(type || "message", data.join("\n"));
          type = "";
          data = [];
          continue;
        }
        if (line[0] === ":") continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value[0] === " ") value = value.slice(1);
        if (field === "event") type = value;
        else if (field === "data") data.push(value);
      }
      buffer = buffer.slice(pos);
    };
  }

  function onStreamEvent(gen, streamed, type, data) {
    if (gen !== generation) return;
    let e;
    try {
      e = JSON.parse(data);
    } catch (err) {
      console.warn("heartbeatd: an event that is not JSON:", data);
      return;
    }
    if (type === "member") {
      streamed.add(e.name);
      const m = mergeMember({ name: e.name, address: e.address, state: e.state,
                              incarnation: e.incarnation, tags: e.tags });
      // The initial burst is covered by the list read at connect. After a change, the
      // last_seen_ms held is from that read: not shown until read again.
      if (!e.initial) {
        m.seen_pending = true;
        refreshMembersSoon(gen, streamed);
      }
      scheduleRender();
    } else if (type === "user") {
      const id = String(e.user);
      setUser(id, e.online, e.last_seen_ms, true);
      if (!e.initial) refreshCountsSoon(gen);
      scheduleRender();
    } else if (type === "dropped") {
      showBanner("The daemon dropped this page's stream (" + (e.reason || "too slow") + "); reconnecting.");
    }
  }

  function reconnectSoon(why) {
    // A stream that lived a while was a success: start the backoff over. One that ends at
    // once (a store that cannot answer, say) keeps backing off rather than loop.
    if (connectedAt && Date.now() - connectedAt > 5000) attempt = 0;
    connectedAt = 0;
    const wait = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** attempt);
    // Full jitter in the upper half: pages reloaded together do not come back in step.
    const delay = Math.round(wait / 2 + Math.random() * (wait / 2));
    attempt = Math.min(attempt + 1, 20);
    setConnection("disconnected", "Disconnected");
    showBanner("Disconnected from heartbeatd: " + why + ". Retrying in " +
               Math.max(1, Math.round(delay / 1000)) + " s (attempt " + attempt + ").");
    clearTimeout(retryTimer);
    retryTimer = setTimeout(connect, delay);
  }

  function stop() {
    generation++;
    clearTimeout(retryTimer);
    clearTimeout(historyTimer);
    if (connection) connection.abort();
    connection = null;
  }

  async function connect() {
    stop();
    const gen = generation;
    const abort = new AbortController();
    connection = abort;
    const subset = streamSubset(followed);
    const streamed = new Set(); // members named by this stream's events
    let reader = null;
    let silence = 0;
    try {
      setConnection("connecting", attempt ? "Reconnecting…" : "Connecting…");
      const health = await api("/v1/health", { signal: abort.signal });
      if (gen !== generation) return;
      if (health.presence && health.presence.max_batch) maxBatch = health.presence.max_batch;
      $("node-name").textContent = health.node || "";
      document.title = "heartbeatd " + (health.node || "") + " status";

      let query = "?ids=string";
      if (subset.length) query += "&users=" + subset.join(",");
      const res = await fetch("/v1/events" + query, {
        headers: headers({ Accept: "text/event-stream" }),
        cache: "no-store",
        signal: abort.signal,
      });
      if (!res.ok) throw await failure(res);
      if (gen !== generation) return;
      streamUsers = new Set(subset);
      for (const id of followed) {
        const u = users.get(id);
        if (u && streamUsers.has(id) !== u.live) users.delete(id);
      }
      connectedAt = Date.now();
      showBanner("");
      showAuth(null);
      setConnection("live", "Live");
      describeFollowing();
      readMembers(gen, streamed).catch((e) => isAuthError(e) && showAuth(e));
      readUnstreamedUsers(gen).catch((e) => isAuthError(e) && showAuth(e));
      readAggregates(gen);

      reader = res.body.getReader();
      const decoder = new TextDecoder();
      const feed = sseParser((type, data) => onStreamEvent(gen, streamed, type, data));
      const armSilence = () => {
        clearTimeout(silence);
        silence = setTimeout(() => abort.abort(), STREAM_SILENCE_MS);
      };
      armSilence();
      for (;;) {
        const { value, done } = await reader.read();
        if (gen !== generation) return;
        if (done) break;
        armSilence();
        feed(decoder.decode(value, { stream: true }));
      }
      clearTimeout(silence);
      reconnectSoon("the daemon closed the stream");
    } catch (e) {
      clearTimeout(silence);
      if (gen !== generation) return; // replaced by a newer connect(): nothing to report
      if (isAuthError(e)) {
        // Retrying cannot help until the token changes (the form reconnects then).
        setConnection("disconnected", "Needs a token");
        showBanner("");
        showAuth(e);
        return;
      }
      const why = e instanceof ApiError ? e.message + " (" + e.status + ")"
        : abort.signal.aborted ? "no data for " + STREAM_SILENCE_MS / 1000 + " s"
        : "cannot reach it";
      reconnectSoon(why);
    }
  }

  // ---- Controls ----------------------------------------------------------------------------
  function follow(text) {
    const { ids, bad } = parseIds(text);
    followed = ids;
    view.userPage = 0;
    const keep = new Set(ids);
    for (const id of [...users.keys()]) if (!keep.has(id)) users.delete(id);
    const error = $("users-error");
    error.hidden = bad.length === 0;
    error.textContent = bad.length === 0 ? "" : "Skipped what is not a user id (0 to " + MAX_U64 +
      ", digits only, no leading zero): " + bad.slice(0, 5).join(", ") +
      (bad.length > 5 ? " and " + fmtCount(bad.length - 5) + " more" : "");
    $("users-note").textContent = "";
    scheduleRender();
    connect();
  }

  function wire() {
    const tokenInput = $("token");
    tokenInput.value = token();
    $("token-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const t = tokenInput.value.trim();
      // What an Authorization header can carry (RFC 7235 token68), as the daemon checks.
      if (t && !/^[A-Za-z0-9._~+\/-]+=*$/.test(t)) {
        const m = $("auth-message");
        m.textContent = "That is not a token: tokens are letters, digits and - . _ ~ + / " +
          "(= at the end), with no spaces.";
        m.hidden = false;
        tokenInput.focus();
        return;
      }
      setToken(t);
      attempt = 0;
      connect();
    });
    $("token-forget").addEventListener("click", () => {
      tokenInput.value = "";
      setToken("");
      attempt = 0;
      connect();
    });

    for (const b of document.querySelectorAll(".count")) {
      b.addEventListener("click", () => {
        view.memberFilter = b.dataset.filter;
        view.memberPage = 0;
        for (const o of document.querySelectorAll(".count")) {
          o.setAttribute("aria-pressed", String(o === b));
        }
        scheduleRender();
      });
    }
    $("member-filter").addEventListener("input", (ev) => {
      view.memberName = ev.target.value.trim();
      view.memberPage = 0;
      scheduleRender();
    });
    $("member-sort").addEventListener("change", (ev) => {
      view.memberSort = ev.target.value;
      scheduleRender();
    });
    $("user-filter").addEventListener("change", (ev) => {
      view.userFilter = ev.target.value;
      view.userPage = 0;
      scheduleRender();
    });
    const paging = (navId, key) => {
      $(navId).addEventListener("click", (ev) => {
        const dir = ev.target.dataset && ev.target.dataset.page;
        if (!dir) return;
        view[key] = Math.max(0, view[key] + (dir === "next" ? 1 : -1));
        scheduleRender();
      });
    };
    paging("members-pager", "memberPage");
    paging("users-pager", "userPage");
    $("users-form").addEventListener("submit", (ev) => {
      ev.preventDefault();
      follow($("user-ids").value);
    });
    $("users-refresh").addEventListener("click", () => {
      readUnstreamedUsers(generation).catch((e) => isAuthError(e) && showAuth(e));
    });
    setInterval(tick, 1000);
  }

  wire();
  connect();
})();
