// opsdesk's own browser code: time-series charts with uPlot, drawn from JSON embedded in the page.
// A chart is <div data-chart="ID"> next to <script type="application/json" id="ID"> holding
// {"series": [{"label", "unit", "color", "points": bool}], "x": [unix seconds], "y": [[...], ...]}.
(function () {
  "use strict";
  const charts = new Map();

  function draw(el) {
    const source = document.getElementById(el.dataset.chart);
    if (!source || !window.uPlot) return;
    const spec = JSON.parse(source.textContent);
    const old = charts.get(el);
    if (old) old.destroy();
    el.textContent = "";
    if (!spec.x.length) {
      el.innerHTML = '<p class="muted">No data yet.</p>';
      return;
    }
    const series = [{}].concat(spec.series.map((s) => ({
      label: s.label,
      stroke: s.color,
      width: s.points ? 0 : 2,
      points: { show: !!s.points || spec.x.length < 60, size: s.points ? 7 : 4, fill: s.color, stroke: s.color },
      value: (u, v) => (v == null ? "—" : v.toFixed(0) + " " + (s.unit || "")),
      spanGaps: false,
    })));
    if (spec.si) metricOptions(spec, series);
    const opts = {
      width: el.clientWidth || 600,
      height: Number(el.dataset.height || 220),
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { label: spec.series[0].unit || "", size: 60 }],
      legend: { live: true },
    };
    if (spec.si) opts.axes[1].values = (u, ticks) => ticks.map(si);
    charts.set(el, new window.uPlot(opts, [spec.x].concat(spec.y), el));
  }

  // Charts of any metric (the metrics explorer) set "si": true: values in SI form (1.5k, 2.3M,
  // 0.25), and each series may give "gap" (seconds): its nulls between two of its points at most
  // that far apart become undefined, which uPlot spans (the x values are the union of every
  // series' times), while longer runs stay null and show as gaps. Points with no neighbour on
  // either side are drawn as dots, so a lone sample is not invisible.
  function si(v) {
    if (v == null) return "—";
    if (!isFinite(v)) return String(v);
    const a = Math.abs(v);
    if (a === 0) return "0";
    for (const [f, p] of [[1e15, "P"], [1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]]) {
      if (a >= f) return +(v / f).toPrecision(3) + p;
    }
    return a >= 0.001 ? String(+v.toPrecision(3)) : v.toExponential(1);
  }

  function metricOptions(spec, series) {
    spec.series.forEach((s, i) => {
      const y = spec.y[i];
      let last = -1;
      for (let j = 0; j < y.length; j++) {
        if (y[j] == null) continue;
        if (s.gap && last >= 0 && j - last > 1 && spec.x[j] - spec.x[last] <= s.gap) {
          for (let k = last + 1; k < j; k++) y[k] = undefined;
        }
        last = j;
      }
      const lone = [];
      for (let j = 0; j < y.length; j++) {
        if (y[j] == null) continue;
        let p = j - 1, n = j + 1;
        while (p >= 0 && y[p] === undefined) p--;
        while (n < y.length && y[n] === undefined) n++;
        if ((p < 0 || y[p] === null) && (n >= y.length || y[n] === null)) lone.push(j);
      }
      const target = series[i + 1];
      target.value = (u, v) => si(v);
      target.points.filter = (u, sidx, show) => (show || !lone.length ? null : lone);
    });
  }

  function drawAll(root) {
    (root || document).querySelectorAll("[data-chart]").forEach(draw);
  }

  document.addEventListener("DOMContentLoaded", () => drawAll());
  document.addEventListener("htmx:afterSwap", (e) => drawAll(e.target));
  let pending = null;
  window.addEventListener("resize", () => {
    clearTimeout(pending);
    pending = setTimeout(() => charts.forEach((chart, el) => chart.setSize({ width: el.clientWidth, height: chart.height })), 150);
  });
})();

// Copy buttons: <button data-copy="#id"> copies the value (input) or the text of the element.
(function () {
  "use strict";
  function copied(btn) {
    const label = btn.textContent;
    btn.textContent = "Copied";
    setTimeout(() => { btn.textContent = label; }, 1500);
  }
  function fallback(el, text, btn) {
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.style.position = "fixed";
    area.style.opacity = "0";
    document.body.appendChild(area);
    area.select();
    try { if (document.execCommand("copy")) copied(btn); } finally { area.remove(); }
  }
  document.addEventListener("click", (e) => {
    const btn = e.target.closest("[data-copy]");
    if (!btn) return;
    const el = document.querySelector(btn.dataset.copy);
    if (!el) return;
    const text = el.tagName === "INPUT" || el.tagName === "TEXTAREA" ? el.value : el.textContent.trim();
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => copied(btn), () => fallback(el, text, btn));
    } else {
      fallback(el, text, btn);
    }
  });
})();
