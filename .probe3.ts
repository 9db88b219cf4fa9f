import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
function time(f: () => void, R = 10) { for (let i = 0; i < 2; i++) f(); const t0 = performance.now(); for (let i = 0; i < R; i++) f(); return ((performance.now() - t0) / R); }
(async () => {
  await tf.setBackend("wasm"); await tf.ready();
  for (const [m,k,n] of [[768,128,512],[768,512,128],[256,784,512],[768,128,128]]) {
    const a = tf.randomNormal([m,k]), b = tf.randomNormal([k,n]);
    const same = time(() => tf.matMul(a, b).dispose());
    const fresh = time(() => { const b2 = tf.add(b, 0); tf.matMul(a, b2).dispose(); b2.dispose(); });
    const addOnly = time(() => { tf.add(b, 0).dispose(); });
    const f = 2*m*k*n/1e6;
    console.log(m,k,n, 'same b', (f/same).toFixed(1), 'GF/s; fresh b', (f/(fresh-addOnly)).toFixed(1), 'GF/s');
  }
})();
