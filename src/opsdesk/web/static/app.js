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
    const opts = {
      width: el.clientWidth || 600,
      height: Number(el.dataset.height || 220),
      series: series,
      scales: { x: { time: true } },
      axes: [{}, { label: spec.series[0].unit || "", size: 60 }],
      legend: { live: true },
    };
    charts.set(el, new window.uPlot(opts, [spec.x].concat(spec.y), el));
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
