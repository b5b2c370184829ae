// Map: components placed by lat/lon over their grid cells (网格), drawn as SVG in Web Mercator
// so that an optional tile layer (a configured URL template) lines up underneath. Without a
// tile server the grid cells are the map: offline machines still get a usable picture.

import * as api from "../api.js";
import { t, label } from "../i18n.js";
import { h, COMPONENT_STATUSES, errorBox, empty } from "../util.js";
import { refreshOnLive } from "./common.js";

const TILE_KEY = "wangge.tileUrl";
const SVG_NS = "http://www.w3.org/2000/svg";
/** Width in world pixels the drawn area is fitted to (the SVG scales to the page). */
const MAP_WIDTH_PX = 1000;
const TILE_PX = 256;

function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) el.setAttribute(k, v);
  }
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** Web Mercator world pixel coordinates at zoom `z`. */
function project(lat, lon, z) {
  const n = TILE_PX * 2 ** z;
  const x = ((lon + 180) / 360) * n;
  const r = (lat * Math.PI) / 180;
  const y = ((1 - Math.log(Math.tan(r) + 1 / Math.cos(r)) / Math.PI) / 2) * n;
  return [x, y];
}

/**
 * Grid-cell rectangles: the registry's bounds when the hub gives them, else the bounding box
 * of each cell's components, padded so a lone component still gets a visible cell.
 */
function cellsFrom(comps) {
  const cells = new Map();
  for (const c of comps) {
    if (!c.grid_cell || c.lat == null || c.lon == null) continue;
    const b = cells.get(c.grid_cell) || { id: c.grid_cell, lat_min: 90, lat_max: -90, lon_min: 180, lon_max: -180 };
    b.lat_min = Math.min(b.lat_min, c.lat);
    b.lat_max = Math.max(b.lat_max, c.lat);
    b.lon_min = Math.min(b.lon_min, c.lon);
    b.lon_max = Math.max(b.lon_max, c.lon);
    cells.set(c.grid_cell, b);
  }
  const pad = 0.0008;
  return [...cells.values()].map((b) => ({ ...b, lat_min: b.lat_min - pad, lat_max: b.lat_max + pad, lon_min: b.lon_min - pad, lon_max: b.lon_max + pad }));
}

export async function render(main, args, ctx) {
  const only = COMPONENT_STATUSES.includes(args[0]) ? args[0] : "";
  const tileInput = h("input", { type: "text", size: 40, placeholder: "https://tiles.example/{z}/{x}/{y}.png", value: localStorage.getItem(TILE_KEY) || "" });
  const filter = h("select", { id: "map-status", onchange: () => (location.hash = "#/map/" + filter.value) },
    h("option", { value: "" }, t("filter.all")),
    COMPONENT_STATUSES.map((st) => h("option", { value: st, selected: st === only ? "selected" : null }, label("status", st))),
  );
  main.append(
    h("h1", {}, t("nav.map")),
    h("div", { class: "toolbar" },
      h("label", {}, t("component.status")), filter,
      h("label", {}, t("map.tiles")), tileInput,
      h("button", { onclick: () => { localStorage.setItem(TILE_KEY, tileInput.value.trim()); draw(); } }, t("action.apply")),
    ),
  );
  const body = h("div", { class: "panel map-wrap" });
  main.append(body);
  // The map and its legend, or the error that kept the hub from listing the components.
  const draw = async () => {
    const shown = await api.all("components").then(
      async ({ items }) => [drawMap(items, await registryCells(), only, localStorage.getItem(TILE_KEY) || ""), legend()],
      (e) => [errorBox(e)],
    );
    empty(body).append(...shown);
  };
  await draw();
  return refreshOnLive(ctx, draw);
}

function legend() {
  return h("div", { class: "legend" }, COMPONENT_STATUSES.map((st) => h("span", { class: st }, label("status", st))));
}

/** The registry's grid cells (`GET grid_cells`); [] when the hub does not serve them. */
async function registryCells() {
  try {
    return await api.gridCells();
  } catch {
    return [];
  }
}

const hasBounds = (c) => [c.lat_min, c.lat_max, c.lon_min, c.lon_max].every((v) => typeof v === "number");

function drawMap(comps, registered, only, tileUrl) {
  const placed = comps.filter((c) => c.lat != null && c.lon != null);
  if (!placed.length) return h("p", { class: "muted" }, t("map.none"));
  // The registry's bounds where it has them; the other cells from their components.
  const bounded = registered.filter(hasBounds);
  const names = new Map(registered.map((c) => [c.id, c.name]));
  const cells = [
    ...bounded,
    ...cellsFrom(placed)
      .filter((d) => !bounded.some((b) => b.id === d.id))
      .map((d) => ({ ...d, name: names.get(d.id) })),
  ];
  const lats = cells.flatMap((c) => [c.lat_min, c.lat_max]);
  const lons = cells.flatMap((c) => [c.lon_min, c.lon_max]);
  for (const c of placed) {
    lats.push(c.lat);
    lons.push(c.lon);
  }
  const [latMin, latMax, lonMin, lonMax] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  // The integer zoom at which the area is about MAP_WIDTH_PX wide, so tiles are drawn 1:1.
  const span = Math.max(lonMax - lonMin, 1e-6);
  const z = Math.max(0, Math.min(19, Math.floor(Math.log2((MAP_WIDTH_PX * 360) / (span * TILE_PX)))));
  const [x0, y0] = project(latMax, lonMin, z);
  const [x1, y1] = project(latMin, lonMax, z);
  // Sizes in world pixels, scaled to the drawn area so dots and labels read the same at any zoom.
  const u = Math.max(x1 - x0, y1 - y0) / 700;
  const m = 22 * u;
  const svg = s("svg", { class: "map", id: "map", viewBox: `${x0 - m} ${y0 - m} ${x1 - x0 + 2 * m} ${y1 - y0 + 2 * m}`, preserveAspectRatio: "xMidYMid meet" });
  if (tileUrl) {
    const g = s("g", { class: "tiles" });
    for (let tx = Math.floor((x0 - m) / TILE_PX); tx <= Math.floor((x1 + m) / TILE_PX); tx++) {
      for (let ty = Math.floor((y0 - m) / TILE_PX); ty <= Math.floor((y1 + m) / TILE_PX); ty++) {
        const href = tileUrl.replace("{z}", z).replace("{x}", tx).replace("{y}", ty);
        g.append(s("image", { href, x: tx * TILE_PX, y: ty * TILE_PX, width: TILE_PX, height: TILE_PX }));
      }
    }
    svg.append(g);
  }
  // All cells first, then all labels, so a neighbouring cell never covers a label.
  const boxes = cells.map((c) => {
    const [cx0, cy0] = project(c.lat_max, c.lon_min, z);
    const [cx1, cy1] = project(c.lat_min, c.lon_max, z);
    return { c, cx0, cy0, cx1, cy1 };
  });
  for (const { c, cx0, cy0, cx1, cy1 } of boxes) {
    svg.append(s("rect", { class: "cell", x: cx0, y: cy0, width: cx1 - cx0, height: cy1 - cy0, "stroke-width": u }, s("title", {}, c.name || c.id)));
  }
  for (const { c, cx0, cy0 } of boxes) {
    svg.append(s("text", { class: "cell-label", x: cx0 + 3 * u, y: cy0 + 12 * u, "font-size": 11 * u }, c.name || c.id));
  }
  // Alarms last so they are drawn on top.
  const order = { normal: 0, maintenance: 1, offline: 2, alarm: 3 };
  const shown = placed.filter((c) => !only || c.status === only).sort((a, b) => (order[a.status] ?? 0) - (order[b.status] ?? 0));
  for (const c of shown) {
    const [x, y] = project(c.lat, c.lon, z);
    svg.append(
      s("circle", {
        cx: x, cy: y, r: (c.status === "alarm" ? 7 : 5) * u, "stroke-width": 1.5 * u,
        style: `fill: var(--${c.status}, #888)`,
        "data-component": c.id, "data-status": c.status,
        onclick: () => (location.hash = "#/component/" + encodeURIComponent(c.id)),
      }, s("title", {}, `${c.name} · ${label("status", c.status)}`)),
    );
  }
  return svg;
}
