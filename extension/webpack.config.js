// Merged by @jupyterlab/builder into its production config (package.json's
// jupyterlab.webpackConfig).
//
// No minification: 99% of the bundle is plotly.js-dist-min, which ships
// minified already, and terser re-minifying its 4.6 MiB took 85 of the build's
// 88 s on 2 cores (3.7 s without). Our own code stays readable in the
// browser's stack traces at the cost of about 45 KiB.
module.exports = { optimization: { minimize: false } };
