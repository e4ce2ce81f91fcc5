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

// Charts: each [data-chart] box is drawn by uPlot (vendored, served by us) from the JSON in the page.
(function () {
  "use strict";
  if (!window.uPlot) { return; }
  var colours = ["#7a1f1f", "#1d6b35", "#1f4e7a", "#b36b00", "#6b2f8f", "#4d4d4d", "#008080", "#a0522d"];
  Array.prototype.forEach.call(document.querySelectorAll("[data-chart]"), function (box) {
    var source = document.getElementById(box.getAttribute("data-chart"));
    if (!source) { return; }
    var data = JSON.parse(source.textContent);
    var xs = data.kind === "days"
      ? data.times.map(function (day) { return Date.parse(day + "T12:00:00Z") / 1000; })
      : data.times;
    var names = Object.keys(data.series);
    var series = [{}].concat(names.map(function (name, i) {
      return { label: name, stroke: colours[i % colours.length], width: 2 };
    }));
    var columns = [xs].concat(names.map(function (name) { return data.series[name]; }));
    var width = Math.max(260, Math.min(box.clientWidth || box.parentNode.clientWidth || 320, 900));
    // Ticks in the page's language and digits: days on the Baghdad calendar, hours in UTC as captioned;
    // counts are whole numbers, so the steps are too.
    var root = document.documentElement;
    var lang = (root.lang || "en") + "-u-nu-" + (root.getAttribute("data-digits") || "latn");
    var when = new Intl.DateTimeFormat(lang, data.kind === "days"
      ? { month: "short", day: "numeric", timeZone: "Asia/Baghdad" }
      : { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
    var count = new Intl.NumberFormat(lang, { maximumFractionDigits: 0 });
    var steps = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
    new window.uPlot({
      width: width,
      height: 260,
      series: series,
      scales: { x: { time: true } },
      axes: [
        { values: function (u, ticks) { return ticks.map(function (t) { return when.format(t * 1000); }); } },
        { size: 60, incrs: steps, values: function (u, ticks) { return ticks.map(function (n) { return count.format(n); }); } },
      ],
      legend: { live: false },
    }, columns, box);
  });
})();

// The content editor: the preview frame follows the typing (the form's own preview button, posted into
// the sandboxed frame, a moment after the last key).
(function () {
  "use strict";
  var form = document.getElementById("editor-form");
  var button = document.getElementById("preview-button");
  var text = document.getElementById("text");
  if (!form || !button || !text || !form.requestSubmit) { return; }
  var timer = null;
  text.addEventListener("input", function () {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () { form.requestSubmit(button); }, 700);
  });
  // A problem's "line N" link puts the cursor on that line.
  Array.prototype.forEach.call(document.querySelectorAll("a[data-line]"), function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var line = parseInt(link.getAttribute("data-line"), 10);
      var lines = text.value.split("\n");
      var start = lines.slice(0, line - 1).join("\n").length + (line > 1 ? 1 : 0);
      text.focus();
      text.setSelectionRange(start, start + (lines[line - 1] || "").length);
    });
  });
})();
