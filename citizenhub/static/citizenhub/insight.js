/*
 * Draws the Insight page's charts (citizenhub/templates/staff/insight/index.html).
 *
 * Each <canvas data-insight-chart="ID"> names a <script type="application/json" id="ID">
 * written by Django's json_script: {type, labels, datasets: [{label, data}], stacked,
 * horizontal, valueTitle, valueMax}. No inline script and no eval, so the page works under
 * a strict Content-Security-Policy. Without JavaScript, or if Chart.js did not load, the
 * charts stay hidden and the tables beside them carry the same figures.
 */
(function () {
  "use strict";

  if (typeof window.Chart === "undefined") {
    return;
  }

  // GOV.UK Frontend colours, ordered so neighbours in a stacked bar differ in lightness too.
  var PALETTE = [
    "#1d70b8", // blue
    "#f47738", // orange
    "#00703c", // green
    "#4c2c92", // purple
    "#d4351c", // red
    "#28a197", // turquoise
    "#d53880", // pink
    "#505a5f", // dark grey
    "#b58840", // brown
    "#6f72af", // light purple
  ];
  var reduceMotion =
    window.matchMedia && window.matchMedia("(prefers-reduced-motion: reduce)").matches;

  function readChartData(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-insight-chart"));
    if (!source) {
      return null;
    }
    try {
      return JSON.parse(source.textContent);
    } catch (error) {
      return null;
    }
  }

  function draw(canvas) {
    var data = readChartData(canvas);
    if (!data || !data.labels || !data.labels.length || !data.datasets.length) {
      return;
    }
    var horizontal = Boolean(data.horizontal);
    var stacked = Boolean(data.stacked);
    var valueAxis = {
      beginAtZero: true,
      stacked: stacked,
      title: { display: Boolean(data.valueTitle), text: data.valueTitle || "" },
      ticks: { precision: 0 },
    };
    if (typeof data.valueMax === "number") {
      valueAxis.max = data.valueMax;
    }
    var categoryAxis = { stacked: stacked };
    var scales = horizontal ? { x: valueAxis, y: categoryAxis } : { x: categoryAxis, y: valueAxis };

    var container = canvas.parentElement;
    container.hidden = false;
    container.style.position = "relative";
    if (horizontal) {
      // One bar per service or ward: the chart grows with them instead of squashing them.
      container.style.height = Math.max(200, data.labels.length * 32 + 80) + "px";
    }

    var options = {
      indexAxis: horizontal ? "y" : "x",
      responsive: true,
      maintainAspectRatio: !horizontal,
      plugins: {
        legend: { display: data.datasets.length > 1, position: "bottom" },
      },
      scales: scales,
    };
    if (reduceMotion) {
      options.animation = false;
    }

    new window.Chart(canvas, {
      type: data.type || "bar",
      data: {
        labels: data.labels,
        datasets: data.datasets.map(function (dataset, index) {
          var colour = PALETTE[index % PALETTE.length];
          var options = {
            label: dataset.label,
            data: dataset.data,
            backgroundColor: colour,
            borderColor: colour,
            borderWidth: data.type === "line" ? 3 : 0,
          };
          if (data.type === "line") {
            options.pointRadius = 4;
          }
          return options;
        }),
      },
      options: options,
    });
  }

  document.querySelectorAll("canvas[data-insight-chart]").forEach(draw);
})();
