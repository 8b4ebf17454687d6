const ml = await import(process.cwd() + '/dist/src/ml/index.js');
const tf = await import('@tensorflow/tfjs');
await ml.initEngine();
const spec = { model: 'cnn', inputShape: [28,28,1], hiddenSize: 0, numClasses: 10 };
const w = await ml.initialWeights(spec, 1);
const bs = Number(process.argv[2] ?? 32);
const n = bs*4; const x = new Float32Array(n*784); const y = new Uint8Array(n);
for (let i=0;i<n;i++){ y[i]=i%10; for(let j=0;j<784;j++) x[i*784+j] = Math.random(); }
await ml.trainLocal(spec, w, {x,y,n}, {optimizer:'adam', lr:1e-3, localEpochs:1, batchSize:bs, seed:1});
const agg = {};
const info = await tf.profile(async () => {
  await ml.trainLocal(spec, w, {x,y,n}, {optimizer:'adam', lr:1e-3, localEpochs:1, batchSize:bs, seed:1});
});
for (const k of info.kernels) { const key = k.name + ' ' + JSON.stringify(k.inputShapes); agg[key] = (agg[key]??0) + (await k.kernelTimeMs); }
const tot = Object.values(agg).reduce((a,b)=>a+b,0);
console.log('total kernel ms', tot, 'per sample', tot/n);
for (const [k,v] of Object.entries(agg).sort((a,b)=>b[1]-a[1]).slice(0,25)) console.log(v.toFixed(1), k);
