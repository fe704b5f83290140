// modelloop UI, deployments: request rate and latency percentiles from the traffic the page
// embeds (computed once on the server from the prediction log of the chosen period).
"use strict";

(function () {
  var PLOT_CONFIG = { responsive: true, displaylogo: false };
  var MARGIN = { t: 16, r: 24, b: 48, l: 64 };

  function plotlyText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function draw(element, traces, layout) {
    window.Plotly.react(element, traces, layout, PLOT_CONFIG);
    element.dataset.ready = "1";
    element.dataset.traces = String(traces.length);
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("traffic");
    if (!root || !window.Plotly) return;
    var data = JSON.parse(root.dataset.traffic);
    var rates = data.series.map(function (s) {
      return { type: "bar", name: plotlyText(s.label) + " predictions/min", x: data.buckets, y: s.per_minute };
    });
    rates.push({ type: "scatter", mode: "lines", name: "requests/min (answered)", x: data.buckets,
                 y: data.requests_per_minute, line: { color: "#1d232b" } });
    draw(document.getElementById("rate-chart"), rates, {
      margin: MARGIN, height: 300, barmode: "stack", legend: { orientation: "h" },
      xaxis: { type: "date" }, yaxis: { title: { text: "per minute" } },
    });
    var latency = ["p50", "p95", "p99"].map(function (p) {
      return { type: "scatter", mode: "lines+markers", name: p, x: data.buckets, y: data.latency[p],
               connectgaps: false };
    });
    draw(document.getElementById("latency-chart"), latency, {
      margin: MARGIN, height: 300, legend: { orientation: "h" },
      xaxis: { type: "date" }, yaxis: { title: { text: "ms" }, rangemode: "tozero" },
    });
  });
})();
