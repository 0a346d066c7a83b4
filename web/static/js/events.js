// The events page: new events from the live feed (GET /api/v1/events/stream) are added to the
// top of the list without a reload, filtered like the page; an "end" closes an ongoing row.
(function () {
  "use strict";
  // a snapshot exists only where something was recorded at the event's instant: hide the others
  function watchThumb(img) {
    const hide = () => img.classList.add("event-thumb-none");
    if (img.complete && img.naturalWidth === 0) hide();
    else img.addEventListener("error", hide);
  }
  document.querySelectorAll("img.event-thumb").forEach(watchThumb);
  const live = document.getElementById("events-live");
  const rows = document.getElementById("events-rows");
  if (!live || !rows || live.dataset.live !== "on" || !window.EventSource) return;
  const want = {site: live.dataset.site, camera: live.dataset.camera, type: live.dataset.type,
                plate: ""};
  const lookalike = {"А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O",
                     "Р": "P", "С": "C", "Т": "T", "У": "Y", "Х": "X"};
  const norm = (s) => (s || "").toUpperCase().replace(/[АВЕКМНОРСТУХ]/g, (c) => lookalike[c])
    .replace(/[^0-9A-Z\u0400-\u04FF]/g, "");
  const typeLabels = JSON.parse(live.dataset.typeLabels || "{}");
  want.plate = norm(live.dataset.plate);

  function matches(e) {
    if (want.site && String(e.site_id) !== want.site) return false;
    if (want.camera && String(e.camera_id) !== want.camera) return false;
    if (want.type && e.type !== want.type) return false;
    if (want.plate && !norm((e.data || {}).plate).includes(want.plate)) return false;
    return true;
  }

  function cell(text) {
    const td = document.createElement("td");
    td.textContent = text;
    return td;
  }

  function add(e) {
    if (!matches(e) || rows.querySelector(`tr[data-event-id="${e.id}"]`)) return;
    const href = `/cameras/${e.camera_id}/playback?at=${e.start_us}`;
    const tr = document.createElement("tr");
    tr.className = "event event-new";
    tr.dataset.eventId = e.id;
    tr.dataset.cameraId = e.camera_id;
    tr.dataset.startUs = e.start_us;
    const thumb = document.createElement("td");
    const a1 = document.createElement("a");
    a1.className = "event-play";
    a1.href = href;
    const img = document.createElement("img");
    img.className = "event-thumb";
    img.width = 160;
    img.height = 90;
    img.alt = live.dataset.labelSnapshot;
    img.src = `/api/v1/cameras/${e.camera_id}/snapshot.jpg?at=${e.start_us}`;
    watchThumb(img);
    a1.appendChild(img);
    thumb.appendChild(a1);
    tr.appendChild(thumb);
    const when = document.createElement("td");
    const a2 = document.createElement("a");
    a2.className = "event-play";
    a2.href = href;
    a2.textContent = new Date(e.start_us / 1000).toLocaleString(document.documentElement.lang || undefined);
    when.appendChild(a2);
    tr.appendChild(when);
    tr.appendChild(cell(e.camera_name));
    tr.appendChild(cell(e.site_name));
    const type = cell(typeLabels[e.type] || e.type);
    type.className = "event-type";
    tr.appendChild(type);
    tr.appendChild(cell(((e.data || {}).plate || "") + (e.topic ? " " + e.topic : "")));
    const end = cell(e.end_us === null ? live.dataset.labelOpen : "");
    end.className = "event-end";
    tr.appendChild(end);
    rows.insertBefore(tr, rows.firstChild);
    const none = document.getElementById("events-none");
    if (none) none.remove();
  }

  function ended(e) {
    const tr = rows.querySelector(`tr[data-event-id="${e.id}"]`);
    if (!tr) return;
    const end = tr.querySelector(".event-end");
    if (end) end.textContent = new Date(e.end_us / 1000).toLocaleString(document.documentElement.lang || undefined);
  }

  const source = new EventSource("/api/v1/events/stream");
  source.addEventListener("event", (msg) => add(JSON.parse(msg.data)));
  source.addEventListener("end", (msg) => ended(JSON.parse(msg.data)));
  window.addEventListener("pagehide", () => source.close());
  live.dataset.connected = "yes";
})();
