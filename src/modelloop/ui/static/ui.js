// modelloop UI: metric charts (Plotly, from /ui/api/metric) and small conveniences.
// Every user-provided string reaches the page as text (textContent, escaped trace names).
"use strict";

(function () {
  function plotlyText(text) {
    // Plotly renders a subset of HTML in names and titles: make a run name plain text.
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function fetchCurve(runId, key) {
    var url = "/ui/api/metric?" + new URLSearchParams({ run: runId, key: key, max_points: "2000" });
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      if (!response.ok) {
        return response.json().then(function (body) {
          throw new Error(body.message || "HTTP " + response.status);
        });
      }
      return response.json();
    });
  }

  function drawChart(box) {
    var runs = JSON.parse(box.dataset.runs || "[]");
    var select = box.querySelector(".metric-select");
    var chart = box.querySelector(".chart");
    var note = box.querySelector(".chart-note");
    var key = select.value;
    note.textContent = "Loading " + key + "…";
    Promise.all(runs.map(function (run) { return fetchCurve(run.id, key); }))
      .then(function (curves) {
        var traces = curves.map(function (curve, i) {
          return {
            x: curve.steps,
            y: curve.values,
            name: plotlyText(runs[i].name),
            type: "scatter",
            mode: curve.steps.length > 1 ? "lines" : "markers",
          };
        });
        var layout = {
          margin: { t: 24, r: 16, b: 48, l: 64 },
          xaxis: { title: { text: "step" } },
          yaxis: { title: { text: plotlyText(key) } },
          showlegend: runs.length > 1,
          legend: { orientation: "h" },
        };
        window.Plotly.react(chart, traces, layout, { responsive: true, displaylogo: false });
        var notes = curves
          .map(function (curve, i) {
            var d = curve.downsampled;
            if (d.shown >= d.original) return null;
            var who = runs.length > 1 ? runs[i].name + ": " : "";
            return who + "showing " + d.shown.toLocaleString() + " of " +
              d.original.toLocaleString() + " points (downsampled with LTTB)";
          })
          .filter(function (text) { return text !== null; });
        note.textContent = notes.length ? notes.join("; ") : "All points shown.";
        chart.dataset.key = key;
        chart.dataset.points = String(curves.reduce(function (n, c) { return n + c.steps.length; }, 0));
      })
      .catch(function (error) {
        note.textContent = "Could not load " + key + ": " + error.message;
      });
  }

  function onlyDifferences(toggle) {
    var table = document.getElementById("params-diff");
    if (table) table.classList.toggle("only-diff", toggle.checked);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll(".chart-box").forEach(function (box) {
      if (!window.Plotly) {
        box.querySelector(".chart-note").textContent = "Plotly did not load.";
        return;
      }
      box.querySelector(".metric-select").addEventListener("change", function () { drawChart(box); });
      drawChart(box);
    });
    var toggle = document.getElementById("only-diff");
    if (toggle) toggle.addEventListener("change", function () { onlyDifferences(toggle); });
  });
})();
