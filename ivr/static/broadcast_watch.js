// Live counts on the broadcast page: polls the JSON status every 4 s while the page is visible.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (!live) { return; }
  var url = live.getAttribute("data-url");
  function apply(data) {
    live.querySelectorAll("[data-field]").forEach(function (el) {
      var key = el.getAttribute("data-field");
      if (key in data) { el.textContent = data[key]; }
    });
    document.querySelectorAll("[data-answer]").forEach(function (el) {
      var parts = el.getAttribute("data-answer").split(":");
      var counts = data.by_answer && data.by_answer[parts[0]];
      if (counts && parts[1] in counts) { el.textContent = counts[parts[1]]; }
    });
    var state = document.getElementById("bc-state");
    if (state && data.state) { state.textContent = data.state; }
  }
  function poll() {
    if (document.hidden) { return; }
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (data) { if (data) { apply(data); } })
      .catch(function () { /* a missed poll is retried on the next tick */ });
  }
  setInterval(poll, 4000);
}());
