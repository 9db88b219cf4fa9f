/**
 * The output widget: a plotly.js timeline (one row per rank and stream,
 * WebGL traces, zoom and pan along time) with the summary table beside it.
 * Live updates of the same display re-render in place and keep the zoom.
 */
import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import { Widget } from "@lumino/widgets";
import Plotly from "plotly.js-dist-min";
import type { Layout, PlotRelayoutEvent } from "plotly.js";
import { payloadProblem, type TimelinePayload } from "./payload";
import { buildRows, type TimelineRow } from "./rows";
import { renderSummaryTable } from "./summary-table";
import { buildCollectiveLinks, buildSpanTraces, stepBoundaryShapes, type ViewWindow } from "./traces";

const ROW_HEIGHT_PX = 26;
const PLOT_MARGIN = { l: 110, r: 16, t: 28, b: 40 };

export class TimelineWidget extends Widget implements IRenderMime.IRenderer {
  private readonly mimeType: string;
  private readonly plotNode: HTMLDivElement;
  private readonly summaryNode: HTMLDivElement;
  private readonly messageNode: HTMLDivElement;
  private payload: TimelinePayload | undefined;
  private rows: TimelineRow[] = [];
  /** the time window the user zoomed to (microseconds); undefined follows the whole timeline */
  private zoomUs: [number, number] | undefined;
  private plotted = false;
  /** redraws caused by zoom or pan, for the browser test */
  private zoomDraws = 0;
  private redrawPending = false;
  private readonly themeObserver: MutationObserver;

  constructor(options: IRenderMime.IRendererOptions, className: string) {
    super();
    this.mimeType = options.mimeType;
    this.addClass(className);
    this.messageNode = this.node.appendChild(document.createElement("div"));
    this.messageNode.className = `${className}-message`;
    const body = this.node.appendChild(document.createElement("div"));
    body.className = `${className}-body`;
    this.plotNode = body.appendChild(document.createElement("div"));
    this.plotNode.className = `${className}-plot`;
    this.summaryNode = body.appendChild(document.createElement("div"));
    this.themeObserver = new MutationObserver(() => this.scheduleRedraw());
    this.themeObserver.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light", "data-jp-theme-name"] });
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    const data = model.data[this.mimeType];
    const problem = payloadProblem(data);
    if (problem !== null) {
      this.showMessage(`distlab timeline cannot be drawn: ${problem}`);
      return;
    }
    this.messageNode.textContent = "";
    this.messageNode.hidden = true;
    this.payload = data as unknown as TimelinePayload;
    this.rows = buildRows(this.payload);
    this.summaryNode.replaceChildren(renderSummaryTable(this.payload));
    try {
      await this.draw();
    } catch (error) {
      this.showMessage(`distlab timeline failed to draw: ${String(error)}`);
    }
  }

  private showMessage(text: string): void {
    this.messageNode.hidden = false;
    this.messageNode.textContent = text;
    this.summaryNode.replaceChildren();
    if (this.plotted) Plotly.purge(this.plotNode);
    this.plotted = false;
  }

  private view(): ViewWindow {
    const durationUs = Math.max(this.payload?.summary.durationUs ?? 0, 1);
    const [startUs, endUs] = this.zoomUs ?? [0, durationUs];
    const widthPx = Math.max((this.plotNode.clientWidth || 800) - PLOT_MARGIN.l - PLOT_MARGIN.r, 100);
    return { startUs, endUs, widthPx };
  }

  private themeColors(): { font: string; grid: string; background: string } {
    const style = getComputedStyle(this.node);
    const read = (name: string, fallback: string): string => style.getPropertyValue(name).trim() || fallback;
    return { font: read("--jp-ui-font-color1", "#333"), grid: read("--jp-border-color2", "#ccc"), background: read("--jp-layout-color0", "white") };
  }

  private async draw(): Promise<void> {
    if (this.payload === undefined) return;
    const view = this.view();
    const colors = this.themeColors();
    const { traces, drawnSegments, traceType } = buildSpanTraces(this.rows, view, ROW_HEIGHT_PX);
    const rowCount = Math.max(this.rows.length, 1);
    const layout: Partial<Layout> = {
      height: rowCount * ROW_HEIGHT_PX + PLOT_MARGIN.t + PLOT_MARGIN.b + 30,
      margin: PLOT_MARGIN,
      paper_bgcolor: "rgba(0,0,0,0)",
      plot_bgcolor: "rgba(0,0,0,0)",
      font: { color: colors.font, size: 11 },
      hovermode: "closest",
      dragmode: "zoom",
      uirevision: "distlab-timeline",
      showlegend: true,
      legend: { orientation: "h", x: 0, y: 1.02, yanchor: "bottom" },
      autosize: true,
      xaxis: { title: { text: "time since the cell started (ms)" }, range: [view.startUs / 1000, view.endUs / 1000], gridcolor: colors.grid, zeroline: false },
      yaxis: {
        tickvals: this.rows.map((r) => r.y), ticktext: this.rows.map((r) => r.label),
        range: [rowCount - 0.5, -0.5], fixedrange: true, gridcolor: "rgba(0,0,0,0)", zeroline: false,
      },
      shapes: stepBoundaryShapes(this.rows, view, colors.grid),
    };
    const data = [...traces, ...buildCollectiveLinks(this.rows, view, traceType)];
    const started = performance.now();
    await Plotly.react(this.plotNode, data, layout, { displaylogo: false, responsive: true, scrollZoom: true });
    // Milliseconds the last draw took and how many segments it drew, for the browser benchmark.
    this.node.dataset.drawMs = (performance.now() - started).toFixed(1);
    this.node.dataset.drawnSegments = String(drawnSegments);
    this.node.dataset.traceType = traceType;
    this.node.dataset.zoomDraws = String(this.zoomDraws);
    if (!this.plotted) {
      this.plotted = true;
      // The output area has its final width only once attached: fit the plot to it.
      requestAnimationFrame(() => Plotly.Plots.resize(this.plotNode));
      (this.plotNode as unknown as Plotly.PlotlyHTMLElement).on("plotly_relayout", (event: PlotRelayoutEvent) => this.onRelayout(event));
    }
  }

  /** Zoom, pan and double-click reset: recompute the level of detail for the new window. */
  private onRelayout(event: PlotRelayoutEvent): void {
    const e = event as Record<string, unknown>;
    if (typeof e["xaxis.range[0]"] === "number" && typeof e["xaxis.range[1]"] === "number") {
      this.zoomUs = [(e["xaxis.range[0]"] as number) * 1000, (e["xaxis.range[1]"] as number) * 1000];
    } else if (Array.isArray(e["xaxis.range"])) {
      const [a, b] = e["xaxis.range"] as number[];
      this.zoomUs = [a * 1000, b * 1000];
    } else if (e["xaxis.autorange"] === true) {
      this.zoomUs = undefined;
    } else {
      return;
    }
    this.zoomDraws++;
    this.scheduleRedraw();
  }

  private scheduleRedraw(): void {
    if (this.redrawPending || this.payload === undefined) return;
    this.redrawPending = true;
    requestAnimationFrame(() => {
      this.redrawPending = false;
      void this.draw();
    });
  }

  protected override onResize(): void {
    if (this.plotted) Plotly.Plots.resize(this.plotNode);
  }

  override dispose(): void {
    this.themeObserver.disconnect();
    if (this.plotted) Plotly.purge(this.plotNode);
    super.dispose();
  }
}
