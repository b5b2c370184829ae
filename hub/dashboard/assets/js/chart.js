// Charts drawn with the vendored uPlot (window.uPlot, loaded by index.html).

import { t } from "./i18n.js";

const COLORS = ["#1f6feb", "#e8590c", "#2e9d5b", "#9c36b5", "#c9a100", "#0b7285"];

function width(el) {
  return Math.max(320, Math.floor(el.getBoundingClientRect().width || el.parentElement.clientWidth || 600) - 4);
}

/**
 * A time series: `points` as the hub returns them ({ts, value, min?, max?}); downsampled
 * points also draw their min and max, so a short spike stays visible at 7 days.
 */
export function timeChart(el, points, { unit = "", step = false, height = 200 } = {}) {
  const xs = points.map((p) => Date.parse(p.ts) / 1000);
  const data = [xs, points.map((p) => p.value)];
  const series = [{}, { label: t("chart.value") + (unit ? ` (${unit})` : ""), stroke: COLORS[0], width: 1.5, paths: step ? uPlot.paths.stepped({ align: 1 }) : undefined }];
  // Booleans are drawn as steps of their mean; their min/max would only repeat 0 and 1.
  if (!step && points.some((p) => p.min !== undefined)) {
    data.push(points.map((p) => p.min ?? p.value), points.map((p) => p.max ?? p.value));
    series.push({ label: t("chart.min"), stroke: "#9fb8e8", width: 1, dash: [4, 3] });
    series.push({ label: t("chart.max"), stroke: "#9fb8e8", width: 1, dash: [4, 3] });
  }
  series[0] = { label: t("chart.time"), value: (u, ts) => (ts == null ? "--" : stamp(ts, true)) };
  const opts = {
    width: width(el),
    height,
    series,
    // 24-hour local times in both languages; dates only where the range spans days.
    axes: [{ values: (u, splits) => { const days = (u.scales.x.max - u.scales.x.min) > 36 * 3600; return splits.map((ts) => stamp(ts, days)); } }, { size: 56 }],
    scales: { x: { time: true } },
    legend: { live: true },
  };
  return new uPlot(opts, data, el);
}

/** `HH:mm`, or `MM-DD HH:mm` with `withDate`, local time. */
function stamp(ts, withDate) {
  const d = new Date(ts * 1000);
  const p = (n) => String(n).padStart(2, "0");
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}`;
  return withDate ? `${p(d.getMonth() + 1)}-${p(d.getDate())} ${hm}` : hm;
}

/** A bar chart of `values` per category label. */
export function barChart(el, labels, values, { label = "", category = "", height = 220 } = {}) {
  const xs = labels.map((_, i) => i);
  const opts = {
    width: width(el),
    height,
    series: [{ label: category, value: (u, i) => (i == null ? "--" : labels[i] ?? "") }, { label, fill: "rgba(31,111,235,.55)", stroke: COLORS[0], width: 1, paths: uPlot.paths.bars({ size: [0.6, 60] }), points: { show: false } }],
    // Bars start at zero, or a 96 % bar would look like a tenth of a 100 % one.
    scales: { x: { time: false, range: [-0.5, labels.length - 0.5] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { values: (u, splits) => splits.map((i) => (Number.isInteger(i) && labels[i] !== undefined ? labels[i] : "")), splits: () => xs, gap: 4 },
      { size: 50 },
    ],
    legend: { show: !!label },
    cursor: { show: true },
  };
  return new uPlot(opts, [xs, values], el);
}
