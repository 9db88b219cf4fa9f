/**
 * The page side of `npm run bench:timeline-browser`: the extension's own
 * TimelineWidget, bundled by esbuild, drawing a payload the page holds as
 * JSON text, as it arrives from the kernel over the websocket. The root tsconfig
 * leaves this folder out (it has no DOM types); esbuild strips the types unchecked.
 */
import { Widget } from "@lumino/widgets";
import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import { CLASS_NAME, MIME_TYPE } from "../../extension/src/index";
import { TimelineWidget } from "../../extension/src/widget";

const nextFrame = (): Promise<number> => new Promise((resolve) => requestAnimationFrame(resolve));

/**
 * Milliseconds from the payload's JSON text in hand to the first complete frame:
 * JSON.parse, renderModel (validation, rows, summary table, traces, Plotly's
 * draw), then the frame that shows it (the widget's fit-to-width resize runs in
 * the next animation frame; the frame after that one has been drawn).
 */
async function drawTimeline(jsonText: string): Promise<{ parseMs: number; renderModelMs: number; firstFrameMs: number; drawnSegments: number }> {
  const t0 = performance.now();
  const data = JSON.parse(jsonText) as IRenderMime.IMimeModel["data"][string];
  const t1 = performance.now();
  const widget = new TimelineWidget({ mimeType: MIME_TYPE, sanitizer: undefined as never, resolver: null, linkHandler: null, latexTypesetter: null }, CLASS_NAME);
  Widget.attach(widget, document.getElementById("output")!);
  const model = { trusted: true, data: { [MIME_TYPE]: data }, metadata: {}, setData() {} } as unknown as IRenderMime.IMimeModel;
  await widget.renderModel(model);
  const t2 = performance.now();
  await nextFrame();
  await nextFrame();
  const t3 = performance.now();
  return { parseMs: t1 - t0, renderModelMs: t2 - t1, firstFrameMs: t3 - t0, drawnSegments: Number(widget.node.dataset.drawnSegments) };
}

(window as unknown as { drawTimeline: typeof drawTimeline }).drawTimeline = drawTimeline;
