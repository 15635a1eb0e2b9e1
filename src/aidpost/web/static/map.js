// aidpost's small map: OpenStreetMap tiles, a pin, click to place it (location pickers),
// drag to pan, buttons to zoom. Without tiles (offline, blocked) the coordinates stay shown.
const TILE = 256;
const TILES = "https://tile.openstreetmap.org";

const project = (lat, lng, z) => {
  const n = TILE * 2 ** z;
  const s = Math.sin((Math.max(-85.05, Math.min(85.05, lat)) * Math.PI) / 180);
  return { x: ((lng + 180) / 360) * n, y: (0.5 - Math.log((1 + s) / (1 - s)) / (4 * Math.PI)) * n };
};
const unproject = (x, y, z) => {
  const n = TILE * 2 ** z;
  const lng = (x / n) * 360 - 180;
  const lat = (Math.atan(Math.sinh(Math.PI * (1 - (2 * y) / n))) * 180) / Math.PI;
  return { lat, lng };
};

export function mount(box) {
  const latInput = box.dataset.latInput && document.getElementById(box.dataset.latInput);
  const lngInput = box.dataset.lngInput && document.getElementById(box.dataset.lngInput);
  const readonly = "readonly" in box.dataset || !latInput;
  const read = () => {
    const lat = parseFloat(latInput ? latInput.value : box.dataset.lat);
    const lng = parseFloat(lngInput ? lngInput.value : box.dataset.lng);
    return Number.isFinite(lat) && Number.isFinite(lng) ? { lat, lng } : null;
  };
  let pin = read();
  let z = pin ? 15 : 3;
  let center = pin ? project(pin.lat, pin.lng, z) : project(50, 15, z);
  const map = document.createElement("div");
  map.className = "map";
  map.setAttribute("role", "group");
  map.setAttribute("aria-label", readonly ? "Map of the location" : "Map: click to set the location (or type the coordinates)");
  box.append(map);
  let failed = false;

  // Tiles and the pin are redrawn; the buttons stay, so keyboard focus stays on them.
  const layer = document.createElement("div");
  const zoom = document.createElement("div");
  zoom.className = "zoom";
  for (const [label, step] of [["+", 1], ["−", -1]]) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    b.setAttribute("aria-label", step > 0 ? "Zoom in" : "Zoom out");
    b.addEventListener("click", (e) => { e.stopPropagation(); setZoom(z + step); });
    zoom.append(b);
  }
  const credit = document.createElement("div");
  credit.className = "credit";
  credit.textContent = "© OpenStreetMap contributors";
  map.append(layer, zoom, credit);

  const draw = () => {
    const w = map.clientWidth, h = map.clientHeight;
    layer.replaceChildren();
    const left = center.x - w / 2, top = center.y - h / 2;
    const max = 2 ** z;
    for (let tx = Math.floor(left / TILE); tx <= Math.floor((left + w) / TILE); tx++) {
      for (let ty = Math.floor(top / TILE); ty <= Math.floor((top + h) / TILE); ty++) {
        if (ty < 0 || ty >= max) continue;
        const img = document.createElement("img");
        img.className = "tile";
        img.alt = "";
        img.draggable = false;
        img.src = `${TILES}/${z}/${((tx % max) + max) % max}/${ty}.png`;
        img.style.left = `${tx * TILE - left}px`;
        img.style.top = `${ty * TILE - top}px`;
        img.addEventListener("error", () => {
          if (!failed) { failed = true; map.classList.add("failed"); }
        });
        layer.append(img);
      }
    }
    if (pin) {
      const p = project(pin.lat, pin.lng, z);
      const dot = document.createElement("div");
      dot.className = "pin";
      dot.style.left = `${p.x - left}px`;
      dot.style.top = `${p.y - top}px`;
      layer.append(dot);
    }
  };
  const setZoom = (next) => {
    next = Math.max(2, Math.min(18, next));
    const at = unproject(center.x, center.y, z);
    z = next;
    center = project(at.lat, at.lng, z);
    draw();
  };

  let drag = null;
  map.addEventListener("pointerdown", (e) => {
    if (e.target.closest(".zoom")) return;
    drag = { x: e.clientX, y: e.clientY, cx: center.x, cy: center.y, moved: false };
    map.setPointerCapture(e.pointerId);
  });
  map.addEventListener("pointermove", (e) => {
    if (!drag) return;
    const dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (Math.abs(dx) + Math.abs(dy) > 4) drag.moved = true;
    if (drag.moved) { center = { x: drag.cx - dx, y: drag.cy - dy }; draw(); }
  });
  map.addEventListener("pointerup", (e) => {
    const was = drag;
    drag = null;
    if (!was || was.moved || readonly) return;
    const r = map.getBoundingClientRect();
    const at = unproject(center.x - r.width / 2 + (e.clientX - r.left), center.y - r.height / 2 + (e.clientY - r.top), z);
    pin = { lat: +at.lat.toFixed(6), lng: +at.lng.toFixed(6) };
    latInput.value = pin.lat;
    lngInput.value = pin.lng;
    draw();
  });
  for (const input of [latInput, lngInput]) {
    input?.addEventListener("change", () => {
      pin = read();
      if (pin) center = project(pin.lat, pin.lng, z);
      draw();
    });
  }
  box.mapView = {
    set(lat, lng) {
      pin = { lat, lng };
      if (z < 12) z = 15;
      center = project(lat, lng, z);
      draw();
    },
  };
  draw();
}

for (const box of document.querySelectorAll("[data-map]")) mount(box);
