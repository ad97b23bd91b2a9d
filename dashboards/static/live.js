// The overview's live figures: every 5 s (while the tab is visible) ask /dashboard/live.json and put the new
// numbers, meters, badge tones and charts in place. The page is complete without this script; it only keeps it
// fresh. When what the page is made of changes (a new broadcast, a site that went down …) it offers a reload
// instead of rebuilding the page under the reader's keyboard focus.
(function () {
  "use strict";
  var root = document.getElementById("overview");
  if (!root || !window.fetch || !window.DOMParser) { return; }
  var url = root.getAttribute("data-live-url");
  var layout = root.getAttribute("data-layout");
  var every = (parseInt(root.getAttribute("data-every"), 10) || 5) * 1000;
  var notice = document.getElementById("layout-notice");
  var status = document.getElementById("live-status");
  var statusText = status ? status.textContent : "";
  if (status) { status.hidden = false; }  // only with this script running do the figures refresh
  var shownCharts = {};

  function each(selector, fn) {
    Array.prototype.forEach.call(root.querySelectorAll(selector), fn);
  }

  function apply(data) {
    var values = data.values || {}, meters = data.meters || {}, tones = data.tones || {}, charts = data.charts || {};
    each("[data-live]", function (el) {
      var key = el.getAttribute("data-live");
      if (Object.prototype.hasOwnProperty.call(values, key) && el.textContent !== values[key]) {
        el.textContent = values[key];
      }
    });
    each("[data-live-meter]", function (el) {
      var pair = meters[el.getAttribute("data-live-meter")];
      if (pair) {
        el.max = Math.max(pair[1], 1);
        el.value = pair[0];
        el.textContent = pair[0] + " / " + pair[1];
      }
    });
    each("[data-live-tone]", function (el) {
      var tone = tones[el.getAttribute("data-live-tone")];
      if (tone && !el.classList.contains(tone)) {
        el.classList.remove("ok", "warn", "bad");
        el.classList.add(tone);
      }
    });
    each("[data-live-chart]", function (el) {
      var key = el.getAttribute("data-live-chart");
      var markup = charts[key];
      if (!markup || shownCharts[key] === markup) { return; }
      // Parsed as HTML so the SVG lands in the SVG namespace; the server escapes every text inside it.
      var svg = new DOMParser().parseFromString(markup, "text/html").querySelector("svg");
      if (svg) {
        el.replaceChildren(document.adoptNode(svg));
        shownCharts[key] = markup;
      }
    });
    if (notice && data.layout && data.layout !== layout) { notice.hidden = false; }
    if (status) { status.textContent = statusText; status.classList.remove("failed"); }
  }

  function failed() {
    if (status) {
      status.textContent = status.getAttribute("data-failed") || statusText;
      status.classList.add("failed");
    }
  }

  var busy = false;
  function poll() {
    if (document.hidden || busy) { return; }
    busy = true;
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin", cache: "no-store" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (data) { if (data) { apply(data); } else { failed(); } })
      .catch(failed)
      .then(function () { busy = false; });
  }

  setInterval(poll, every);
  document.addEventListener("visibilitychange", function () { if (!document.hidden) { poll(); } });
}());
