// Brownout dashboard script: live fragments over a websocket, relative
// times, copy buttons, confirmations. No dependencies.
(function () {
  "use strict";
  var meta = function (n) { var m = document.querySelector('meta[name="' + n + '"]'); return m ? m.content : ""; };
  var csrf = meta("csrf-token");
  // Server time minus browser time, when the clocks disagree by more than
  // page delivery can explain.
  var skew = Date.parse(meta("server-time")) - Date.now();
  if (isNaN(skew) || Math.abs(skew) < 3000) skew = 0;

  function span(s) {
    if (s < 60) return s + "s";
    if (s < 3600) return Math.floor(s / 60) + "m " + (s % 60) + "s";
    if (s < 86400) return Math.floor(s / 3600) + "h " + Math.floor((s % 3600) / 60) + "m";
    return Math.floor(s / 86400) + "d " + Math.floor((s % 86400) / 3600) + "h";
  }
  function tickTimes(root) {
    var now = Date.now() + skew;
    root.querySelectorAll("time[data-rel]").forEach(function (t) {
      var at = Date.parse(t.getAttribute("datetime"));
      if (isNaN(at)) return;
      var d = Math.round((at - now) / 1000);
      var text = d > 1 ? "in " + span(d) : (d > -2 ? "just now" : span(-d) + " ago");
      if (t.textContent !== text) t.textContent = text;
    });
  }
  // Fragments are rendered once for everyone, so their forms carry an
  // empty token: fill in this session's.
  function fillCSRF(root) {
    root.querySelectorAll('input[name="_csrf"]').forEach(function (i) { if (!i.value) i.value = csrf; });
  }

  // Small screens show each table row as a block; label every cell with
  // its column's heading so that the block still reads as a row.
  function labelCells(root) {
    root.querySelectorAll("table.data").forEach(function (t) {
      var heads = Array.prototype.map.call(t.querySelectorAll("thead th"), function (th) { return th.textContent.trim(); });
      if (!heads.length) return;
      t.querySelectorAll("tbody tr").forEach(function (tr) {
        Array.prototype.forEach.call(tr.children, function (td, i) {
          if (heads[i] && !td.hasAttribute("data-label")) td.setAttribute("data-label", heads[i]);
        });
      });
    });
  }
  // What is on screen dates from the last live update (or the page load).
  var lastData = Date.now();
  function markAsOf() {
    var at = new Date(lastData + skew), text = "data as of " + at.toLocaleTimeString();
    document.querySelectorAll(".card, .status").forEach(function (c) { c.setAttribute("data-asof", text); });
  }

  // Replace each top-level element of a frame by the element of the same id,
  // keeping keyboard focus on the equivalent element.
  function apply(html) {
    var tpl = document.createElement("template");
    tpl.innerHTML = html;
    Array.prototype.slice.call(tpl.content.children).forEach(function (n) {
      var old = n.id && document.getElementById(n.id);
      if (!old) return;
      fillCSRF(n);
      tickTimes(n);
      labelCells(n);
      var a = document.activeElement, sel = null;
      if (a && a !== document.body && old.contains(a)) {
        if (a.id) sel = "#" + CSS.escape(a.id);
        else if (a.getAttribute("href")) sel = '[href="' + CSS.escape(a.getAttribute("href")) + '"]';
      }
      old.replaceWith(n);
      if (sel) { var f = n.querySelector(sel) || document.querySelector(sel); if (f) f.focus({ preventScroll: true }); }
    });
  }

  var indicator = document.getElementById("live-status");
  function setState(state, text) {
    if (state === "down") { markAsOf(); text += " · data as of " + new Date(lastData + skew).toLocaleTimeString(); }
    document.body.dataset.liveState = state;
    if (!indicator) return;
    indicator.dataset.state = state;
    indicator.textContent = text;
  }

  var topic = document.body.dataset.live;
  var delay = 500, failures = 0, timer = null, ws = null;
  function schedule() {
    clearTimeout(timer);
    // Capped exponential backoff with full jitter.
    var wait = 250 + Math.random() * delay;
    delay = Math.min(delay * 2, 15000);
    timer = setTimeout(connect, wait);
  }
  function checkSession() {
    // A refused upgrade looks like any other failure; ask the page itself
    // whether the session is still good.
    fetch(location.href, { redirect: "manual", credentials: "same-origin" }).then(function (r) {
      if (r.type === "opaqueredirect" || r.status === 401) location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
    }).catch(function () {});
  }
  function connect() {
    clearTimeout(timer);
    var proto = location.protocol === "https:" ? "wss:" : "ws:";
    var opened = 0;
    try {
      ws = new WebSocket(proto + "//" + location.host + "/live?topic=" + encodeURIComponent(topic));
    } catch (e) { setState("down", "Offline · retrying"); schedule(); return; }
    ws.onopen = function () { opened = Date.now(); failures = 0; setState("live", "Live"); };
    ws.onmessage = function (e) {
      if (opened && Date.now() - opened > 5000) delay = 500; // stable: reset backoff
      apply(e.data);
      lastData = Date.now();
    };
    ws.onclose = function (e) {
      ws = null;
      if (e.code === 4401) { setState("down", "Signed out"); location.href = "/login"; return; }
      if (!opened && ++failures % 3 === 0) checkSession();
      setState("down", "Offline · retrying");
      schedule();
    };
  }
  if (topic) {
    connect();
    window.addEventListener("online", function () { if (!ws) { delay = 500; connect(); } });
  }

  document.addEventListener("click", function (e) {
    var b = e.target.closest && e.target.closest("[data-copy]");
    if (!b) return;
    var input = document.getElementById(b.dataset.copy), out = b.parentNode.querySelector(".copied");
    var done = function () { if (out) out.textContent = "Copied"; };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(input.value).then(done, function () { input.select(); });
    } else { input.select(); try { document.execCommand("copy"); done(); } catch (err) { /* selected for manual copy */ } }
  });
  document.addEventListener("submit", function (e) {
    var msg = e.target.dataset && e.target.dataset.confirm;
    if (msg && !window.confirm(msg)) e.preventDefault();
  });

  tickTimes(document);
  labelCells(document);
  setInterval(function () { tickTimes(document); }, 1000);
})();
