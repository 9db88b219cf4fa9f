const t0 = Date.now();
const { create, globals } = require('webgpu');
console.log('loaded', Date.now() - t0);
const gpu = create([]);
gpu.requestAdapter().then(a => console.log('adapter', a && a.info, Date.now() - t0), e => console.log('err', e.message, Date.now()-t0));
