// A mailout's page follows its progress without a reload: it asks the dashboard for the counts every
// two seconds while the mailout runs (plain fetch, same origin, no library), and stops once it is over.
(function () {
  "use strict";
  var box = document.getElementById("progress");
  if (!box || !window.fetch) { return; }
  var url = box.getAttribute("data-status-url");
  var set = function (field, text) {
    var node = box.querySelector('[data-field="' + field + '"]');
    if (node) { node.textContent = text; }
  };
  function refresh() {
    fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (answer) { return answer.ok ? answer.json() : null; })
      .then(function (data) {
        if (!data) { return; }
        var bar = box.querySelector('[data-field="bar"]');
        bar.max = data.total || 1;
        bar.value = data.done;
        set("done", data.text.done);  // numbers come written in the page's language
        set("total", data.text.total);
        Object.keys(data.text.by_locale).forEach(function (code) {
          var row = box.querySelector('tr[data-locale="' + code + '"]');
          if (!row) { return; }
          Object.keys(data.text.by_locale[code]).forEach(function (state) {
            var cell = row.querySelector('td[data-state="' + state + '"]');
            if (cell) { cell.textContent = data.text.by_locale[code][state]; }
          });
        });
        if (data.status !== box.getAttribute("data-state")) {
          window.location.reload();  // the state changed: the page's buttons and results change with it
          return;
        }
        if (data.status === "running" || data.status === "scheduled") { window.setTimeout(refresh, 2000); }
      })
      .catch(function () { window.setTimeout(refresh, 5000); });
  }
  var state = box.getAttribute("data-state");
  if (state === "running" || state === "scheduled") { window.setTimeout(refresh, 2000); }
})();
