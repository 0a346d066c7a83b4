// Recording section of the camera page: live recorder state per stream, from the JSON API.
"use strict";
(function () {
  const section = document.getElementById("camera-recording");
  if (!section) return;
  const labels = JSON.parse(section.dataset.labels || "{}");
  const list = section.querySelector(".recording-streams");
  async function refresh() {
    try {
      const res = await fetch(section.dataset.src, { credentials: "same-origin" });
      if (!res.ok) return;
      const data = await res.json();
      list.replaceChildren();
      for (const [kind, st] of Object.entries(data.status.streams || {})) {
        const li = document.createElement("li");
        const badge = document.createElement("span");
        badge.className = "status status-" + st.state;
        badge.textContent = labels[st.state] || st.state;
        li.append(kind + ": ", badge, " " + st.reason);
        list.append(li);
      }
    } catch (e) {
      // offline or signed out: keep the server-rendered status
    }
  }
  refresh();
  setInterval(refresh, 5000);
})();
