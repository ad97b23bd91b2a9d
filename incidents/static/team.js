// Team messages: fetch new messages and read marks every 5 seconds. Without this script the page still works
// (reload or "Refresh"); with it, nothing but text is ever inserted into the page.
(function () {
  "use strict";
  var list = document.getElementById("messages");
  if (!list || !window.fetch) { return; }
  var pollUrl = list.getAttribute("data-poll");
  var readUrl = list.getAttribute("data-read");
  var readLabel = list.getAttribute("data-read-label");
  var unreadLabel = list.getAttribute("data-unread-label");
  var last = parseInt(list.getAttribute("data-last") || "0", 10);
  var markedUpTo = last;
  var tokenField = document.querySelector("#compose input[name=csrf_token]");

  function readsText(r) {
    var parts = [];
    if (r.read_by && r.read_by.length) { parts.push(readLabel + ": " + r.read_by.join(", ")); }
    if (r.unread_by && r.unread_by.length) { parts.push(unreadLabel + ": " + r.unread_by.join(", ")); }
    return parts.join(" · ");
  }

  function add(m) {
    if (document.getElementById("m" + m.id)) { return; }
    var empty = list.querySelector("li.empty");
    if (empty) { empty.remove(); }
    var li = document.createElement("li");
    li.id = "m" + m.id;
    li.setAttribute("data-id", m.id);
    if (m.mine) { li.className = "mine"; }
    var meta = document.createElement("div");
    meta.className = "meta";
    var who = document.createElement("strong");
    who.textContent = m.author;
    var when = document.createElement("time");
    when.setAttribute("datetime", m.at);
    when.textContent = " " + new Date(m.at).toLocaleString([], {month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit"});
    meta.appendChild(who);
    meta.appendChild(when);
    var body = document.createElement("div");
    body.className = "body prewrap";
    body.textContent = m.body;
    var reads = document.createElement("div");
    reads.className = "reads small muted";
    reads.textContent = readsText(m);
    li.appendChild(meta);
    li.appendChild(body);
    li.appendChild(reads);
    list.appendChild(li);
  }

  function markRead() {
    if (document.visibilityState !== "visible" || last <= markedUpTo || !tokenField) { return; }
    var form = new FormData();
    form.append("csrf_token", tokenField.value);
    form.append("up_to", String(last));
    markedUpTo = last;
    fetch(readUrl, {method: "POST", body: form, credentials: "same-origin"});
  }

  function poll() {
    fetch(pollUrl + "?after=" + last, {credentials: "same-origin", headers: {"Accept": "application/json"}})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        data.messages.forEach(add);
        Object.keys(data.reads).forEach(function (id) {
          var li = document.getElementById("m" + id);
          var el = li && li.querySelector(".reads");
          if (el) { el.textContent = readsText(data.reads[id]); }
        });
        if (data.last_id > last) { last = data.last_id; }
        markRead();
      })
      .catch(function () { /* offline for a moment: the next poll tries again */ });
  }

  document.addEventListener("visibilitychange", markRead);
  setInterval(poll, 5000);
})();
