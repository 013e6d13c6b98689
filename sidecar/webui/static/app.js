// Small progressive enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Diff bars: widths are data attributes because the CSP allows no inline styles.
  for (const bar of document.querySelectorAll(".bar[data-width]")) {
    bar.style.width = bar.dataset.width + "%";
  }
  // A diff needs two different dumps.
  const diff = document.getElementById("diff-form");
  if (diff) {
    diff.addEventListener("submit", (e) => {
      const base = diff.querySelector("input[name=base]:checked");
      const id = diff.querySelector("input[name=id]:checked");
      if (!base || !id || base.value === id.value) {
        e.preventDefault();
        alert("Pick two different dumps: a base and one to compare.");
      }
    });
  }
  // Capturing stops the button from being pressed twice.
  const capture = document.getElementById("capture");
  if (capture) {
    capture.form.addEventListener("submit", () => {
      capture.disabled = true;
      capture.textContent = "Capturing…";
    });
  }
  // Open the crash site's fold when the page is linked to a frame.
  if (location.hash) {
    const el = document.querySelector(location.hash);
    if (el && el.closest("details")) el.closest("details").open = true;
  }
});
