/**
 * A loss plot as one cell result carrying the same Vega-Lite spec (plot.ts)
 * in two forms: `application/vnd.vegalite.v5+json`, which JupyterLab draws
 * interactively with no extension, and `image/svg+xml`, the spec rendered in
 * the kernel, which nbconvert, nbviewer and GitHub show. JupyterLab picks the
 * Vega-Lite form (its renderer ranks above images); the others the SVG.
 */
import { plotSpec, plotSvg, type PlotOptions, type PlotSeries } from "./plot";

/** The repl shows a value through this method (repl/display-api.ts), and awaits a returned promise. */
const MIME_BUNDLE = Symbol.for("distlab.mimeBundle");

export const VEGA_LITE_MIME_TYPE = "application/vnd.vegalite.v5+json";

export interface LossPlot {
  readonly series: readonly PlotSeries[];
  /** the Vega-Lite spec both forms are drawn from */
  readonly spec: object;
  /** the result's mime bundle; rendering the SVG loads vega, hence a promise */
  [MIME_BUNDLE](): Promise<Record<string, unknown>>;
}

/** Series given as parallel x and y arrays, as training loops collect them. */
export function seriesOf(name: string, x: readonly number[], y: readonly number[]): PlotSeries {
  if (x.length !== y.length) throw new RangeError(`seriesOf: ${name} has ${x.length} x values and ${y.length} y values`);
  return { name, points: x.map((xv, i) => ({ x: xv, y: y[i]! })) };
}

export function lossPlot(series: readonly PlotSeries[], options: PlotOptions): LossPlot {
  if (!Array.isArray(series)) throw new TypeError(`lossPlot: series must be an array of { name, points }, got ${series === null ? "null" : typeof series}`);
  const spec = plotSpec(series, options); // throws here, at the call, on an empty plot or bad options
  const last = (s: PlotSeries): string => (s.points.length ? Number(s.points.at(-1)!.y.toPrecision(4)).toString() : "-");
  return {
    series,
    spec,
    [MIME_BUNDLE]: async () => ({
      [VEGA_LITE_MIME_TYPE]: spec,
      "image/svg+xml": await plotSvg(spec),
      "text/plain": `${options.title}: ${series.map((s) => `${s.name} ends at ${last(s)}`).join("; ")}`,
    }),
  };
}
