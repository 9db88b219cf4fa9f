/**
 * JupyterLab mime renderer for distlab's per-rank timeline. The kernel sends
 * the payload under MIME_TYPE (docs/timeline.md); this draws it.
 */
import type { IRenderMime } from "@jupyterlab/rendermime-interfaces";
import { TimelineWidget } from "./widget";

/** The mime type the kernel's timeline display carries. */
export const MIME_TYPE = "application/vnd.distlab.timeline+json";

/** The CSS class of the output widget; sub-parts append `-plot`, `-message`, ... */
export const CLASS_NAME = "jp-DistlabTimeline";

export const rendererFactory: IRenderMime.IRendererFactory = {
  // Safe: the renderer only draws data, it runs no code from the payload.
  safe: true,
  mimeTypes: [MIME_TYPE],
  createRenderer: (options) => new TimelineWidget(options, CLASS_NAME),
};

const extension: IRenderMime.IExtension = {
  id: "@distlab/timeline:plugin",
  description: "Draws distlab's live per-rank timeline under %%distributed cells.",
  rendererFactory,
  // Ahead of text/html, which the same bundle carries for viewers without this extension.
  rank: 0,
  dataType: "json",
};

export default extension;
