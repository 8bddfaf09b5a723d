// Small SVG charts: time on x, one or two series, a shaded target band and dashed
// threshold lines. Every chart has a title for screen readers; the readings table next to
// it is the table alternative.
import { s } from "./dom.js";
import { shortDate } from "./format.js";

const W = 640, H = 220, L = 44, R = 10, T = 10, B = 28;

/**
 * series: [{label, points: [{t: ms, v: number}]}]; band: {low, high} | null;
 * lines: [{v, label, kind?: "mean"}] (a threshold unless kind is "mean"); start, end: ms; zone: the patient's time zone.
 */
export function lineChart({ title, series, band, lines = [], start, end, zone, yMin, yMax }) {
  const values = series.flatMap((one) => one.points.map((p) => p.v));
  const marks = [...lines.map((l) => l.v), ...(band ? [band.low, band.high] : [])];
  let lo = Math.min(...values, ...marks, yMin ?? Infinity);
  let hi = Math.max(...values, ...marks, yMax ?? -Infinity);
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (hi - lo < 1e-9) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.08;
  lo -= pad; hi += pad;
  const x = (t) => L + ((t - start) / (end - start)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  const svg = s("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": title },
    s("title", {}, title));
  if (band) {
    svg.append(s("rect", { class: "band", x: L, width: W - L - R, y: y(band.high),
      height: Math.max(0, y(band.low) - y(band.high)) }));
  }
  for (let i = 0; i <= 4; i += 1) {
    const v = lo + ((hi - lo) * i) / 4;
    svg.append(s("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }),
      s("text", { x: L - 4, y: y(v) + 4, "text-anchor": "end" }, v.toFixed(hi - lo < 10 ? 1 : 0)));
  }
  const days = Math.max(1, Math.round((end - start) / 86400000));
  const step = Math.ceil(days / 7) * 86400000;
  for (let t = start; t <= end; t += step) {
    svg.append(s("text", { x: x(t), y: H - 8, "text-anchor": "middle" }, shortDate(t, zone)));
  }
  svg.append(s("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }),
    s("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  // A threshold is labelled at the right; a patient's own figure (a mean, a baseline) at
  // the left, so that the two labels do not overlap when the values are close.
  for (const line of lines) {
    const own = line.kind === "mean";
    svg.append(s("line", { class: own ? "mean" : "threshold", x1: L, x2: W - R, y1: y(line.v), y2: y(line.v) }),
      s("text", { x: own ? L + 4 : W - R - 2, y: y(line.v) - 3, "text-anchor": own ? "start" : "end" }, line.label));
  }
  series.forEach((one, index) => {
    const pts = [...one.points].sort((a, b) => a.t - b.t);
    if (pts.length > 1) {
      const d = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join("");
      svg.append(s("path", { class: `line-${index}`, d }));
    }
    for (const p of pts) {
      svg.append(s("circle", { class: `dot-${index}`, cx: x(p.t), cy: y(p.v), r: 2.5 }));
    }
  });
  return svg;
}
