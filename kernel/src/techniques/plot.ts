/**
 * The tutorials' plots as one Vega-Lite spec, drawn two ways from the same spec:
 *  - interactively by JupyterLab's built-in Vega renderer
 *    (`application/vnd.vegalite.v5+json`: hover tooltips, legend toggling,
 *    the dark theme when JupyterLab is dark), and
 *  - as static SVG by the `vega` and `vega-lite` packages in Node, for
 *    nbconvert, nbviewer and GitHub, which have no Vega renderer.
 *
 * Axis ticks come from Vega's own nice scales (round steps of 1, 2 or 5 x 10^k)
 * instead of fractions of the data range; this module only decides what Vega
 * cannot know from the numbers alone: which axes count whole things (steps,
 * ranks) and when a quantity spans enough decades for a log scale.
 */
import type { TopLevelSpec } from "vega-lite";

export interface PlotSeries {
  name: string;
  points: readonly { x: number; y: number }[];
}

export interface PlotOptions {
  title: string;
  /** axis titles; put the unit in them, e.g. "time (s)", "held-out loss (nats)" */
  xLabel: string;
  yLabel: string;
  /** pixels of the plotting area (axes and legend come on top) */
  width?: number;
  height?: number;
  /** y on a log scale; left out, y goes logarithmic by itself when it spans LOG_SCALE_SPAN or more */
  logY?: boolean;
}

/** max/min of y at which an unspecified `logY` turns on: two decades. */
export const LOG_SCALE_SPAN = 100;
/** Vega-Lite's own default: about one tick per 40 px of axis. */
const PIXELS_PER_TICK = 40;

/** One row of the spec's inline data: a point of one series. */
export interface PlotRow {
  series: string;
  x: number;
  y: number;
}

/** The points a plot draws: finite ones, and only positive y on a log scale. */
export function plotRows(series: readonly PlotSeries[], logY: boolean): PlotRow[] {
  return series.flatMap((s) =>
    s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!logY || p.y > 0)).map((p) => ({ series: s.name, x: p.x, y: p.y })));
}

/**
 * The Vega-Lite spec of a line plot: one coloured line per series with a point
 * at each measurement (the hover targets), a legend that toggles series, and
 * the data inline so the saved notebook carries everything the plot needs.
 * Throws a RangeError naming the plot when nothing is left to draw.
 */
export function plotSpec(series: readonly PlotSeries[], options: PlotOptions): TopLevelSpec {
  validateOptions(options);
  const finite = plotRows(series, false);
  const logY = options.logY ?? spansDecades(finite.map((r) => r.y));
  const rows = logY ? finite.filter((r) => r.y > 0) : finite;
  if (rows.length === 0) {
    throw new RangeError(`plot "${options.title}": no finite${logY ? ", positive" : ""} points to draw in ${series.length} series`);
  }
  const width = options.width ?? 480;
  const height = options.height ?? 260;
  const xs = rows.map((r) => r.x);
  const ys = rows.map((r) => r.y);
  const xAxis = { title: options.xLabel, ...integerTicks(xs, width) };
  // Log ticks: Vega's default mixes "1e-7" with "0.000001"; one exponent form reads down the axis.
  const yAxis = { title: options.yLabel, ...(logY ? { format: "~e" } : integerTicks(ys, height)) };
  const shown = { param: "shown", value: 1 };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v5.json",
    title: options.title,
    width,
    height,
    data: { values: rows },
    encoding: {
      x: { field: "x", type: "quantitative", title: options.xLabel, axis: xAxis, scale: { zero: false, nice: true } },
      y: { field: "y", type: "quantitative", title: options.yLabel, axis: yAxis, scale: logY ? { type: "log" } : { zero: false, nice: true } },
      // Series in the order given, not alphabetically, so colours match the caller's list.
      color: { field: "series", type: "nominal", title: null, sort: series.map((s) => s.name), legend: { symbolType: "stroke", labelLimit: 260 } },
      opacity: { condition: shown, value: 0.12 },
    },
    layer: [
      { mark: { type: "line", strokeWidth: 1.8 }, params: [{ name: "shown", select: { type: "point", fields: ["series"] }, bind: "legend" }] },
      {
        mark: { type: "point", filled: true, size: 36 },
        encoding: {
          tooltip: [
            { field: "series", type: "nominal", title: "series" },
            { field: "x", type: "quantitative", title: options.xLabel, format: ",~g" },
            { field: "y", type: "quantitative", title: options.yLabel, format: ",.4~g" },
          ],
        },
      },
    ],
    // JupyterLab's renderer takes embed options from here: SVG, so the browser
    // test and the page's find-in-text see the same elements as the static SVG.
    usermeta: { embedOptions: { renderer: "svg", actions: { export: true, source: false, compiled: false, editor: false } } },
  } as TopLevelSpec;
}

function validateOptions(options: PlotOptions): void {
  for (const key of ["title", "xLabel", "yLabel"] as const) {
    if (typeof options?.[key] !== "string") throw new TypeError(`plot options.${key} must be a string, got ${typeof options?.[key]}`);
  }
  for (const key of ["width", "height"] as const) {
    const value = options[key];
    if (value !== undefined && !(Number.isFinite(value) && value >= 50)) throw new RangeError(`plot "${options.title}": options.${key} must be a number of pixels >= 50, got ${value}`);
  }
}

/** True when positive values span LOG_SCALE_SPAN or more (max/min). */
export function spansDecades(values: readonly number[]): boolean {
  if (values.length === 0 || values.some((v) => !(v > 0))) return false;
  return Math.max(...values) / Math.min(...values) >= LOG_SCALE_SPAN;
}

/**
 * On an axis of whole numbers (steps, ranks, samples) no tick may fall between
 * two integers. Vega picks steps of 1, 2 or 5 x 10^k near span/tickCount, so
 * asking for at most `span` ticks keeps the step >= 1; the "d" format is then
 * exact, and "," groups thousands.
 */
function integerTicks(values: readonly number[], pixels: number): { tickCount?: number; format?: string } {
  if (!values.every(Number.isInteger)) return {};
  const span = Math.max(...values) - Math.min(...values);
  return { tickCount: Math.max(1, Math.min(Math.ceil(pixels / PIXELS_PER_TICK), span)), format: ",d" };
}

/**
 * The spec drawn to a standalone SVG document, on a white background (GitHub's
 * and nbviewer's dark modes would otherwise put dark text on dark). Loads
 * vega and vega-lite on first use, so a kernel or rank that never plots never
 * pays for them.
 */
export async function plotSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, vegaLite] = await Promise.all([import("vega"), import("vega-lite")]);
  // A copy: vega tags the inline data rows it ingests, and the spec goes out as JSON too.
  const view = new vega.View(vega.parse(vegaLite.compile(structuredClone(spec)).spec), { renderer: "none" });
  try {
    view.background("white");
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}
