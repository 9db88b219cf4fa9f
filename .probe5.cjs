const { create, globals } = require('webgpu');
Object.assign(globalThis, globals);
globalThis.navigator = { gpu: create([]) };
(async () => {
  const a = await navigator.gpu.requestAdapter();
  console.log('adapter', a && a.info && { vendor: a.info.vendor, description: a.info.description, type: a.info.adapterType, backend: a.info.backendType }, a && a.limits.maxComputeWorkgroupStorageSize);
  const tf = require('@tensorflow/tfjs');
  require('@tensorflow/tfjs-backend-webgpu');
  console.log(await tf.setBackend('webgpu'));
  const x = tf.randomNormal([128, 256]), y = tf.randomNormal([256, 128]);
  const r = tf.matMul(x, y); console.log((await r.data())[5]);
  await tf.setBackend('cpu'); console.log(tf.matMul(x, y).dataSync()[5]);
})();
