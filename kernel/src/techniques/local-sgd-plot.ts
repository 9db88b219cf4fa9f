/**
 * A static SVG line chart of loss curves, for the tutorials' loss plots: it
 * needs no frontend extension, so a saved notebook shows it on GitHub too.
 * Show it from a cell with `display.svg(lossPlotSvg(...))`.
 */

export interface PlotSeries {
  name: string;
  points: readonly { x: number; y: number }[];
}

export interface PlotOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  /** pixels */
  width?: number;
  height?: number;
  /** draw y on a log scale (losses spanning decades) */
  logY?: boolean;
}

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

export function lossPlotSvg(series: readonly PlotSeries[], options: PlotOptions): string {
  const width = options.width ?? 560;
  const height = options.height ?? 300;
  const margin = { left: 56, right: 150, top: 28, bottom: 40 };
  const all = series.flatMap((s) => s.points).filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!options.logY || p.y > 0));
  if (all.length === 0) throw new RangeError(`lossPlotSvg: "${options.title}" has no finite points to draw`);
  const fy = (y: number): number => (options.logY ? Math.log10(y) : y);
  const [x0, x1] = extent(all.map((p) => p.x));
  const [y0, y1] = extent(all.map((p) => fy(p.y)));
  const sx = (x: number): number => margin.left + ((x - x0) / (x1 - x0 || 1)) * (width - margin.left - margin.right);
  const sy = (y: number): number => height - margin.bottom - ((fy(y) - y0) / (y1 - y0 || 1)) * (height - margin.top - margin.bottom);
  const esc = (s: string): string => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`);
  parts.push(`<rect width="${width}" height="${height}" fill="white"/>`);
  parts.push(`<text x="${width / 2 - margin.right / 2}" y="16" text-anchor="middle" font-size="13">${esc(options.title)}</text>`);
  const bottom = height - margin.bottom;
  const right = width - margin.right;
  parts.push(`<line x1="${margin.left}" y1="${bottom}" x2="${right}" y2="${bottom}" stroke="#333"/>`);
  parts.push(`<line x1="${margin.left}" y1="${margin.top}" x2="${margin.left}" y2="${bottom}" stroke="#333"/>`);
  for (let k = 0; k <= 4; k++) {
    const x = x0 + ((x1 - x0) * k) / 4;
    const yv = y0 + ((y1 - y0) * k) / 4;
    const label = options.logY ? 10 ** yv : yv;
    parts.push(`<text x="${sx(x)}" y="${bottom + 14}" text-anchor="middle">${formatTick(x)}</text>`);
    parts.push(`<text x="${margin.left - 4}" y="${sy(options.logY ? 10 ** yv : yv) + 4}" text-anchor="end">${formatTick(label)}</text>`);
  }
  parts.push(`<text x="${(margin.left + right) / 2}" y="${height - 8}" text-anchor="middle">${esc(options.xLabel)}</text>`);
  parts.push(`<text x="14" y="${(margin.top + bottom) / 2}" text-anchor="middle" transform="rotate(-90 14 ${(margin.top + bottom) / 2})">${esc(options.yLabel)}</text>`);
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length]!;
    const pts = s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!options.logY || p.y > 0));
    if (pts.length > 0) {
      const d = pts.map((p, k) => `${k === 0 ? "M" : "L"}${sx(p.x).toFixed(1)},${sy(p.y).toFixed(1)}`).join(" ");
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
    }
    const ly = margin.top + 14 * i + 6;
    parts.push(`<line x1="${right + 10}" y1="${ly}" x2="${right + 26}" y2="${ly}" stroke="${color}" stroke-width="2"/>`);
    parts.push(`<text x="${right + 30}" y="${ly + 4}">${esc(s.name)}</text>`);
  });
  parts.push("</svg>");
  return parts.join("");
}

function extent(values: number[]): [number, number] {
  return [Math.min(...values), Math.max(...values)];
}

function formatTick(v: number): string {
  const a = Math.abs(v);
  if (a >= 1000) return `${(v / 1000).toFixed(a >= 10000 ? 0 : 1)}k`;
  if (a >= 10 || v === 0) return v.toFixed(0);
  return v.toPrecision(2);
}
