// modelloop UI, monitoring: drift heatmap, dataset drift, performance with label coverage and
// reference-vs-current overlays, drawn by Plotly from /ui/api/monitoring/<name>/...
// Feature names come from training data columns: they reach Plotly escaped, as text.
"use strict";

(function () {
  var PLOT_CONFIG = { responsive: true, displaylogo: false };
  var MARGIN = { t: 24, r: 64, b: 56, l: 140 };

  function plotlyText(text) {
    return String(text).replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin" }).then(function (response) {
      return response.json().then(function (body) {
        if (!response.ok) throw new Error(body.message || "HTTP " + response.status);
        return body;
      });
    });
  }

  function fmt(value) {
    // 4 significant digits without trailing zeros: alpha reads 0.05, not 0.05000.
    return value === null || value === undefined ? "–" : String(parseFloat(Number(value).toPrecision(4)));
  }

  // How a test judged a column, as plain lines: a p-value test by its p-value against alpha,
  // a distance by its value against its threshold (a chi-squared statistic of 29 says nothing
  // next to a p-value threshold of 0.05).
  function judged(test) {
    var name = String(test.method || "drift") + (test.column_type ? " (" + test.column_type + ")" : "");
    if (test.value === null || test.value === undefined) return [name + ": no data"];
    var verdict = test.drifted ? ": drifted" : ": no drift";
    if (test.p_value !== null && test.p_value !== undefined) {
      return [name + " statistic " + fmt(test.value),
              "p-value " + fmt(test.p_value) + (test.p_value < test.threshold ? " < " : " ≥ ") +
              fmt(test.threshold) + verdict];
    }
    return [name + " " + fmt(test.value) + (test.value >= test.threshold ? " ≥ " : " < ") +
            "threshold " + fmt(test.threshold) + verdict];
  }

  // Windows whose status is not ok, each with the notes saying why, newest first.
  function windowNotes(data) {
    var found = [];
    for (var j = data.windows.length - 1; j >= 0; j--) {
      if (data.status[j] !== "ok") {
        found.push(data.windows[j].slice(0, 16).replace("T", " ") + " " + data.status[j] +
          ((data.notes[j] || []).length ? ": " + data.notes[j].join("; ") : ""));
      }
    }
    return found;
  }

  function draw(element, traces, layout) {
    window.Plotly.react(element, traces, layout, PLOT_CONFIG);
    element.dataset.points = String(traces.reduce(function (n, t) { return n + (t.x || []).length; }, 0));
    element.dataset.ready = "1";
  }

  function drawHeatmap(data, element, note, onPick) {
    var notes = windowNotes(data);
    if (!data.windows.length || !data.features.length) {
      note.textContent = data.windows.length
        ? "No feature was compared in the " + data.windows.length + " stored drift windows. " + notes.join(". ")
        : "No drift windows stored yet.";
      element.dataset.ready = "1";
      return;
    }
    var features = data.features.map(plotlyText);
    var hover = data.features.map(function (feature, i) {
      return data.windows.map(function (start, j) {
        var lines = [plotlyText(feature), start.slice(0, 16).replace("T", " ")];
        if (data.methods[i][j]) {
          lines = lines.concat(judged({
            method: data.methods[i][j], column_type: data.column_types[i][j],
            value: data.values[i][j], p_value: data.p_values[i][j],
            threshold: data.thresholds[i][j], drifted: data.drifted[i][j],
          }).map(plotlyText));
        }
        if (data.status[j] !== "ok") {
          lines.push(plotlyText("window " + data.status[j] +
            ((data.notes[j] || []).length ? ": " + data.notes[j].join("; ") : "")));
        }
        return lines.join("<br>");
      });
    });
    var marked = { x: [], y: [], customdata: [] };
    data.drifted.forEach(function (row, i) {
      row.forEach(function (drifted, j) {
        if (drifted) {
          marked.x.push(data.windows[j]);
          marked.y.push(features[i]);
          marked.customdata.push([i, j]);
        }
      });
    });
    var traces = [
      {
        type: "heatmap", x: data.windows, y: features, z: data.values, text: hover,
        hoverinfo: "text", colorscale: "YlOrRd", reversescale: true, colorbar: { title: { text: "drift value" } },
        xgap: 1, ygap: 1,
      },
      {
        type: "scatter", mode: "markers", name: "drifted", x: marked.x, y: marked.y,
        customdata: marked.customdata, hoverinfo: "skip",
        marker: { symbol: "x-thin-open", size: 10, color: "#1d232b", line: { width: 2 } },
      },
    ];
    var layout = {
      margin: MARGIN, height: Math.max(240, 90 + 32 * features.length),
      xaxis: { type: "date", title: { text: "window" } },
      yaxis: { type: "category", automargin: true },
      showlegend: false,
    };
    draw(element, traces, layout);
    element.dataset.features = String(features.length);
    element.dataset.drifted = String(marked.x.length);
    note.textContent = features.length + " features × " + data.windows.length +
      " windows; × marks a drifted feature. Click a cell to compare its distribution." +
      (notes.length ? " Not compared: " + notes.join(". ") : "");
    element.on("plotly_click", function (event) {
      var point = event.points[0];
      if (point.data.type === "heatmap") onPick(point.pointIndex[0], point.pointIndex[1]);
      else if (point.customdata) onPick(point.customdata[0], point.customdata[1]);
    });
  }

  function drawShare(data, element) {
    if (!data.windows.length) { element.dataset.ready = "1"; return; }
    var drifted = { x: [], y: [] };
    data.dataset_drifted.forEach(function (flag, j) {
      if (flag === 1) { drifted.x.push(data.windows[j]); drifted.y.push(data.share[j]); }
    });
    var traces = [
      { type: "scatter", mode: "lines+markers", name: "share of drifted features",
        x: data.windows, y: data.share },
      { type: "scatter", mode: "lines+markers", name: "score drift value", x: data.windows,
        y: data.score, yaxis: "y2", line: { dash: "dot" } },
      { type: "scatter", mode: "markers", name: "dataset drifted", x: drifted.x, y: drifted.y,
        marker: { symbol: "circle-open", size: 14, color: "#b3261e", line: { width: 2 } } },
    ];
    var layout = {
      margin: MARGIN, height: 300,
      xaxis: { type: "date" },
      yaxis: { title: { text: "share drifted" }, range: [0, 1.05] },
      yaxis2: { title: { text: "score drift" }, overlaying: "y", side: "right", rangemode: "tozero" },
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: data.share_threshold,
                 y1: data.share_threshold, line: { dash: "dash", color: "#b3261e", width: 1 } }],
      legend: { orientation: "h" },
    };
    draw(element, traces, layout);
  }

  function drawPerformance(data, element, note) {
    if (!data.windows.length) {
      note.textContent = "No performance windows stored yet (they wait for their labels to mature).";
      element.dataset.ready = "1";
      return;
    }
    var traces = [];
    Object.keys(data.metrics).forEach(function (key) {
      var metric = data.metrics[key];
      if (metric.values.some(function (v) { return v !== null; })) {
        traces.push({ type: "scatter", mode: "lines+markers", name: metric.label,
                      x: data.windows, y: metric.values, connectgaps: false });
      }
    });
    traces.push({
      type: "bar", name: "label coverage", x: data.windows, yaxis: "y2", opacity: 0.35,
      y: data.label_coverage.map(function (v) { return v === null ? 0 : v; }),
      marker: { color: data.insufficient.map(function (bad) { return bad ? "#b3261e" : "#7f8c9b"; }) },
      text: data.labelled.map(function (n) { return n === null ? "" : String(n) + " labels"; }),
      hoverinfo: "x+y+text", textposition: "none",
    });
    var bad = { x: [], y: [], text: [] };
    data.insufficient.forEach(function (flag, j) {
      if (flag) {
        bad.x.push(data.windows[j]);
        bad.y.push(0.02);
        bad.text.push(plotlyText((data.notes[j] || []).join("; ") || "insufficient labels"));
      }
    });
    traces.push({ type: "scatter", mode: "markers", name: "insufficient labels", x: bad.x,
                  y: bad.y, text: bad.text, hoverinfo: "x+text",
                  marker: { symbol: "triangle-up", size: 11, color: "#b3261e" } });
    var layout = {
      margin: MARGIN, height: 380, barmode: "overlay",
      xaxis: { type: "date" },
      yaxis: { title: { text: "metric" }, range: [0, 1.05] },
      yaxis2: { title: { text: "label coverage" }, overlaying: "y", side: "right", range: [0, 1.05] },
      legend: { orientation: "h" },
    };
    draw(element, traces, layout);
    var insufficient = bad.x.length;
    note.textContent = data.windows.length + " matured windows" +
      (insufficient ? "; " + insufficient + " with too few labels (▲, metrics not computed: at least " +
        data.min_labels + " labels and " + Math.round(data.min_coverage * 100) + "% coverage needed)" : "") +
      ". Bars: label coverage (right axis).";
  }

  function drawDistribution(config, element, note) {
    var feature = document.getElementById("dist-feature").value;
    var start = document.getElementById("dist-window").value;
    var bins = document.getElementById("dist-bins").value;
    if (!feature || !start) return;
    note.textContent = "Loading…";
    var url = "/ui/api/monitoring/" + encodeURIComponent(config.name) + "/distribution?" +
      new URLSearchParams({ feature: feature, window: start, bins: bins });
    getJSON(url).then(function (data) {
      var traces;
      var layout = { margin: MARGIN, height: 340, legend: { orientation: "h" } };
      if (data.kind === "numeric") {
        traces = ["reference", "current"].map(function (who) {
          return { type: "bar", name: who === "reference" ? "reference (v" + data.reference_version + ")" : "current window",
                   x: data.centers, width: data.widths, y: data[who].density, opacity: 0.55,
                   customdata: data[who].share,
                   hovertemplate: "%{x:.4g}: %{customdata:.1%} of values<extra>" + who + "</extra>" };
        });
        layout.barmode = "overlay";
        layout.xaxis = { title: { text: plotlyText(data.feature) } };
        layout.yaxis = { title: { text: "density" } };
      } else if (data.kind === "categorical") {
        var categories = data.categories.map(plotlyText);
        traces = ["reference", "current"].map(function (who) {
          return { type: "bar", name: who === "reference" ? "reference (v" + data.reference_version + ")" : "current window",
                   x: categories, y: data[who].share };
        });
        layout.barmode = "group";
        layout.xaxis = { type: "category", title: { text: plotlyText(data.feature) } };
        layout.yaxis = { title: { text: "share" }, tickformat: ".0%" };
      } else {
        note.textContent = (data.note || "Nothing to compare.") +
          (data.notes && data.notes.length ? " " + data.notes.join(" ") : "");
        window.Plotly.purge(element);
        element.dataset.feature = data.feature;
        element.dataset.kind = "none";
        return;
      }
      draw(element, traces, layout);
      element.dataset.feature = data.feature;
      element.dataset.kind = data.kind;
      var parts = [data.current.count + " current values vs " + data.reference.count + " reference values"];
      if (data.kind === "numeric" && (data.current.below_range || data.current.above_range)) {
        parts.push(data.current.below_range + " below and " + data.current.above_range + " above the reference range");
      }
      if (data.current.nulls) parts.push(data.current.nulls + " missing");
      if (data.per_value) parts.push("a numeric column tested as categorical: one bar per value");
      if (data.drift) parts.push(judged(data.drift).join(", "));
      if (data.status !== "ok") {
        parts.push("window " + data.status + (data.notes.length ? ": " + data.notes.join(" ") : ""));
      }
      note.textContent = parts.join("; ") + ".";
    }).catch(function (error) {
      note.textContent = "Could not load the distribution: " + error.message;
    });
  }

  function fillSelect(select, values, labels) {
    select.textContent = "";
    values.forEach(function (value, i) {
      var option = document.createElement("option");
      option.value = value;
      option.textContent = labels ? labels[i] : value;
      select.appendChild(option);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    var root = document.getElementById("monitoring");
    if (!root) return;
    var config = JSON.parse(root.dataset.config);
    var notes = {
      drift: document.getElementById("drift-note"),
      performance: document.getElementById("performance-note"),
      distribution: document.getElementById("distribution-note"),
    };
    if (!window.Plotly) {
      notes.drift.textContent = "Plotly did not load.";
      return;
    }
    var base = "/ui/api/monitoring/" + encodeURIComponent(config.name);
    var query = "?" + new URLSearchParams({ windows: String(config.windows) });
    var distribution = document.getElementById("distribution");
    var featureSelect = document.getElementById("dist-feature");
    var windowSelect = document.getElementById("dist-window");
    function redraw() { drawDistribution(config, distribution, notes.distribution); }
    [featureSelect, windowSelect, document.getElementById("dist-bins")].forEach(function (select) {
      select.addEventListener("change", redraw);
    });
    getJSON(base + "/drift" + query).then(function (data) {
      fillSelect(featureSelect, data.features);
      var newestFirst = data.windows.slice().reverse();
      fillSelect(windowSelect, newestFirst, newestFirst.map(function (w, i) {
        var status = data.status[data.windows.length - 1 - i];
        return w.slice(0, 16).replace("T", " ") + (status === "ok" ? "" : " (" + status + ")");
      }));
      drawHeatmap(data, document.getElementById("drift-heatmap"), notes.drift, function (i, j) {
        featureSelect.value = data.features[i];
        windowSelect.value = data.windows[j];
        redraw();
      });
      drawShare(data, document.getElementById("drift-share"));
    }).catch(function (error) {
      notes.drift.textContent = "Could not load drift: " + error.message;
    });
    getJSON(base + "/performance" + query).then(function (data) {
      drawPerformance(data, document.getElementById("performance"), notes.performance);
    }).catch(function (error) {
      notes.performance.textContent = "Could not load performance: " + error.message;
    });
  });
})();
