// Small progressive enhancements; every page works without them.
document.documentElement.classList.add("js");
document.addEventListener("DOMContentLoaded", () => {
  for (const select of document.querySelectorAll("select[data-autosubmit]")) {
    select.addEventListener("change", () => select.form.submit());
  }

  // the menu on narrow screens: one button, aria-expanded says whether it is open
  const toggle = document.getElementById("menu-toggle");
  const menu = document.getElementById("topmenu");
  if (toggle && menu) {
    const set = (open) => {
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      menu.classList.toggle("open", open);
    };
    toggle.addEventListener("click", () => set(toggle.getAttribute("aria-expanded") !== "true"));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && toggle.getAttribute("aria-expanded") === "true") {
        set(false);
        toggle.focus();
      }
    });
  }

  // full screen for every video: a button on its frame (figure), or a double tap on the video
  const label = document.body.dataset.labelFullscreen || "Full screen";
  const fullscreen = (host) => {
    if (document.fullscreenElement) { document.exitFullscreen().catch(() => {}); return; }
    if (host.requestFullscreen) {
      host.requestFullscreen().catch(() => {});
    } else {
      const video = host.querySelector("video");  // iPhone Safari: only the video itself
      if (video && video.webkitEnterFullscreen) video.webkitEnterFullscreen();
    }
  };
  for (const video of document.querySelectorAll("main video")) {
    const host = video.closest("figure") || video.parentElement;
    if (!host || host.querySelector(":scope > .fullscreen-btn")) continue;
    // a page with its own full-screen control for this frame (live view, grid tiles) keeps it
    if (host.id && document.querySelector(`[data-fullscreen="#${CSS.escape(host.id)}"]`)) continue;
    host.classList.add("fs-host");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "fullscreen-btn";
    button.title = label;
    button.setAttribute("aria-label", label);
    // four corners, drawn (a glyph would need a font the phone may not have)
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "22");
    svg.setAttribute("height", "22");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M4 9V4h5M15 4h5v5M20 15v5h-5M9 20H4v-5");
    path.setAttribute("fill", "none");
    path.setAttribute("stroke", "currentColor");
    path.setAttribute("stroke-width", "2.2");
    svg.appendChild(path);
    button.appendChild(svg);
    button.addEventListener("click", (e) => { e.preventDefault(); e.stopPropagation(); fullscreen(host); });
    host.appendChild(button);
    video.addEventListener("dblclick", (e) => { e.preventDefault(); fullscreen(host); });
  }
});
