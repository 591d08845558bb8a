// fleetd dashboard: live updates over Server-Sent Events. No polling: the
// server pushes the page's live part after each change of the agent, and
// EventSource reconnects by itself (the server sends retry:).
"use strict";
(function () {
  var live = document.getElementById("live");
  var conn = document.getElementById("conn");
  if (!live || !live.dataset.stream || !window.EventSource) {
    return;
  }
  var pending = null;
  function editing() {
    var a = document.activeElement;
    return a && live.contains(a) && (a.tagName === "INPUT" || a.tagName === "SELECT");
  }
  function apply(html) {
    if (editing()) {
      pending = html; // keep what is being typed; update on blur
      return;
    }
    pending = null;
    live.innerHTML = html;
    live.dataset.updated = String(Date.now());
  }
  live.addEventListener("focusout", function () {
    if (pending !== null) {
      setTimeout(function () { if (pending !== null && !editing()) { apply(pending); } }, 0);
    }
  });
  function state(s) {
    if (conn) {
      conn.className = "conn " + s;
      conn.title = "live updates: " + s;
    }
    document.body.dataset.stream = s;
  }
  var es = new EventSource(live.dataset.stream);
  es.addEventListener("open", function () { state("connected"); });
  es.addEventListener("status", function (ev) { apply(ev.data); });
  es.addEventListener("error", function () {
    if (es.readyState === EventSource.CLOSED) {
      // Refused (a new token logged everyone out): the page knows what to do.
      state("closed");
      setTimeout(function () { window.location.reload(); }, 5000);
      return;
    }
    state("reconnecting");
  });
})();
