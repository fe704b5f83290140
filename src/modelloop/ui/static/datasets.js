// modelloop UI, a dataset version: the chosen column's stored distribution, drawn by Plotly
// from the page's data-columns (the profile logged with the version): numbers as a density over
// the profile's quantile bins, numbers that drift tests as categorical (few values) as the share
// of each value, categories, text and booleans as the shares of their top values.
// Column names and values are the data's own: they reach Plotly escaped, as text.
"use strict";

(function () {
  var PLOT_CONFIG = { responsive: true, displaylogo: false };
  var MARGIN = { t: 24, r: 32, b: 72, l: 64 };

  function plotlyText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function percent(share) {
    return (share * 100).toFixed(1) + "%";
  }

  function drawColumn(columns, name, element, note) {
    var data = columns[name];
    var title = plotlyText(name);
    var traces;
    var layout = { margin: MARGIN, height: 300, showlegend: false };
    if (!data || data.kind === "none") {
      window.Plotly.purge(element);
      element.hidden = true;
      element.dataset.points = "0";
      element.dataset.column = name;
      element.dataset.ready = "1";
      note.textContent = "No distribution is stored for this column (datetimes keep their range, empty columns nothing).";
      return;
    }
    if (data.kind === "numeric") {
      traces = [{
        type: "bar", x: data.centers, width: data.widths, y: data.density,
        customdata: data.share.map(function (share, i) { return [percent(share), data.ranges[i]]; }),
        hovertemplate: "%{customdata[1]}: %{customdata[0]} of values<extra></extra>",
        marker: { line: { width: 1, color: "#fff" } },
      }];
      layout.xaxis = { title: { text: title } };
      layout.yaxis = { title: { text: "density" } };
      note.textContent = data.centers.length + " bins of about equal shares of the values (quantile edges): a bar's area is its share." +
        (data.note ? " " + data.note : "");
    } else if (data.kind === "values") {
      traces = [{
        type: "bar", x: data.labels.map(plotlyText), y: data.share,
        hovertemplate: "%{x}: %{y:.1%}<extra></extra>",
      }];
      layout.xaxis = { type: "category", title: { text: title } };
      layout.yaxis = { title: { text: "share of the values" }, tickformat: ".0%" };
      note.textContent = data.labels.length + " values, one bar each: drift tests this numeric column as categorical.";
    } else {
      var labels = data.labels.map(plotlyText);
      traces = [{
        type: "bar", x: labels, y: data.share,
        hovertemplate: "%{x}: %{y:.1%}<extra></extra>",
      }];
      layout.xaxis = { type: "category", title: { text: title }, automargin: true };
      layout.yaxis = { title: { text: "share of non-null values" }, tickformat: ".0%" };
      note.textContent = labels.length + " most frequent values" +
        (data.other ? "; all others together: " + percent(data.other) : "") + ".";
    }
    element.hidden = false;
    window.Plotly.react(element, traces, layout, PLOT_CONFIG);
    element.dataset.points = String(traces[0].x.length);
    element.dataset.column = name;
    element.dataset.ready = "1";
  }

  document.addEventListener("DOMContentLoaded", function () {
    var box = document.getElementById("distribution-box");
    if (!box) return;
    var select = document.getElementById("dist-column");
    var element = document.getElementById("distribution");
    var note = document.getElementById("distribution-note");
    if (!window.Plotly) {
      note.textContent = "Plotly did not load.";
      return;
    }
    var columns = JSON.parse(box.dataset.columns || "{}");
    function redraw() { if (select.value) drawColumn(columns, select.value, element, note); }
    select.addEventListener("change", redraw);
    redraw();
  });
})();
