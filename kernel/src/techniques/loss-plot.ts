/**
 * A loss plot as one cell result carrying two mime types:
 * `application/vnd.plotly.v1+json` (interactive where JupyterLab has the
 * plotly renderer, jupyterlab-plotly) and `image/svg+xml` (lossPlotSvg),
 * which a stock JupyterLab, nbviewer and GitHub render with no extension.
 * JupyterLab shows the richest of the two it has a renderer for.
 */
import { lossPlotSvg, type PlotOptions, type PlotSeries } from "./local-sgd-plot";

const MIME_BUNDLE = Symbol.for("distlab.mimeBundle");

export interface LossPlot {
  readonly series: readonly PlotSeries[];
  [MIME_BUNDLE](): Record<string, unknown>;
}

/** Series given as parallel x and y arrays, as training loops collect them. */
export function seriesOf(name: string, x: readonly number[], y: readonly number[]): PlotSeries {
  if (x.length !== y.length) throw new RangeError(`seriesOf: ${name} has ${x.length} x values and ${y.length} y values`);
  return { name, points: x.map((xv, i) => ({ x: xv, y: y[i]! })) };
}

export function lossPlot(series: readonly PlotSeries[], options: PlotOptions): LossPlot {
  const svg = lossPlotSvg(series, options); // throws early on an empty plot
  const last = (s: PlotSeries): string => (s.points.length ? Number(s.points.at(-1)!.y.toPrecision(4)).toString() : "-");
  return {
    series,
    [MIME_BUNDLE]: () => ({
      "application/vnd.plotly.v1+json": {
        data: series.map((s) => ({ type: "scatter", mode: "lines", name: s.name, x: s.points.map((p) => p.x), y: s.points.map((p) => p.y) })),
        layout: {
          title: { text: options.title },
          xaxis: { title: { text: options.xLabel } },
          yaxis: { title: { text: options.yLabel }, type: options.logY ? "log" : "linear" },
          width: options.width ?? 560,
          height: options.height ?? 300,
        },
      },
      "image/svg+xml": svg,
      "text/plain": `${options.title}: ${series.map((s) => `${s.name} ends at ${last(s)}`).join("; ")}`,
    }),
  };
}
