// Counts down the held broadcasts on the JMA page; reloads once a countdown has run out so the outcome shows.
(function () {
  "use strict";
  var reloadScheduled = false;
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function tick() {
    var items = document.querySelectorAll("[data-countdown]");
    for (var i = 0; i < items.length; i++) {
      var el = items[i];
      var left = Math.round((Date.parse(el.getAttribute("data-countdown")) - Date.now()) / 1000);
      if (left <= 0) {
        el.textContent = el.getAttribute("data-due-text") || "0:00";
        if (!reloadScheduled) {
          reloadScheduled = true;
          window.setTimeout(function () { window.location.reload(); }, 20000);
        }
      } else {
        el.textContent = Math.floor(left / 60) + ":" + pad(left % 60);
      }
    }
  }
  tick();
  window.setInterval(tick, 1000);
})();
