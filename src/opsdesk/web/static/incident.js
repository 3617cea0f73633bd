// The incident page, live: an EventSource on /incidents/ID/stream; on each "changed" event the page
// fetches /incidents/ID/live and swaps in every section (an element with data-live and an id),
// except one the person is typing in or has changed but not submitted yet.
(function () {
  "use strict";
  const root = document.getElementById("incident-page");
  if (!root || !window.EventSource || !window.fetch) return;
  const state = document.getElementById("live-state");
  let busy = false;
  let again = false;

  function untouched(section) {
    const active = document.activeElement;
    if (section.dataset.dirty) return false;
    return !(active && active !== document.body && section.contains(active) && active.form);
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const r = await fetch(root.dataset.liveUrl, { credentials: "same-origin", headers: { "HX-Request": "true" } });
      if (!r.ok) return;
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      for (const fresh of doc.querySelectorAll("[data-live][id]")) {
        const current = document.getElementById(fresh.id);
        if (!current || !untouched(current)) continue;
        const node = document.importNode(fresh, true);
        current.replaceWith(node);
        if (window.htmx) window.htmx.process(node);
      }
      root.dispatchEvent(new CustomEvent("incident:refreshed", { bubbles: true }));
    } finally {
      busy = false;
      if (again) {
        again = false;
        refresh();
      }
    }
  }

  // A form someone started filling in is not replaced under their hands.
  function markDirty(e) {
    const section = e.target.closest && e.target.closest("[data-live]");
    if (section && e.target.form) section.dataset.dirty = "1";
  }
  root.addEventListener("input", markDirty);
  root.addEventListener("change", markDirty);

  const source = new EventSource(root.dataset.stream);
  source.addEventListener("open", function () {
    if (state) state.classList.add("on");
  });
  source.addEventListener("error", function () {
    if (state) state.classList.remove("on");
  });
  source.addEventListener("changed", refresh);
  source.addEventListener("gone", function () {
    source.close();
    if (state) state.classList.remove("on");
  });
})();
