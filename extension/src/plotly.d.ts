// plotly.js-dist-min is the prebuilt bundle of plotly.js; its API is plotly.js's.
declare module "plotly.js-dist-min" {
  import * as Plotly from "plotly.js";
  export default Plotly;
}
