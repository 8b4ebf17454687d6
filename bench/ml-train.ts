/**
 * Training throughput of the ml module on synthetic data: samples/s of trainLocal for the paper CNN and the
 * 784-500-10 MLP at batch sizes 10 and 32, one process, whatever engine initEngine picks.
 *
 *   node dist/bench/ml-train.js [--samples N] [--repeats R]
 */
import { parseArgs } from 'node:util';
import { initEngine, initialWeights, parameterCount, trainLocal, type ModelSpec } from '../src/ml/index.js';
import { median, synthetic } from './synthetic.js';

const { values } = parseArgs({
  options: { samples: { type: 'string', default: '320' }, repeats: { type: 'string', default: '3' } },
});
const samples = Number(values.samples);
const repeats = Number(values.repeats);

const specs: ModelSpec[] = [
  { model: 'cnn', inputShape: [28, 28, 1], hiddenSize: 0, numClasses: 10 },
  { model: 'mnistnn', inputShape: [28, 28, 1], hiddenSize: 500, numClasses: 10 },
];

const info = await initEngine();
console.log(`engine ${info.engine}, simd ${info.simd}, own kernels [${info.kernels.join(', ')}]; node ${process.version}`);
console.log(`samples per run ${samples}, runs ${repeats} (+1 warm-up), 1 local epoch, adam`);
console.log('model     params    batch  samples/s (median)  best    s/run');
for (const spec of specs) {
  const w = await initialWeights(spec, 1);
  const data = synthetic(spec, samples);
  for (const batchSize of [10, 32]) {
    const train = { optimizer: 'adam' as const, lr: 1e-3, localEpochs: 1, batchSize, seed: 1 };
    await trainLocal(spec, w, { ...data, n: Math.min(samples, 2 * batchSize) }, train); // warm-up
    const rates: number[] = [];
    const secs: number[] = [];
    for (let i = 0; i < repeats; i++) {
      const r = await trainLocal(spec, w, data, train);
      rates.push(r.numSamples / r.trainSeconds);
      secs.push(r.trainSeconds);
    }
    console.log(
      `${spec.model.padEnd(9)} ${String(parameterCount(spec)).padEnd(9)} ${String(batchSize).padEnd(6)} ` +
        `${median(rates).toFixed(0).padStart(8)}            ${Math.max(...rates).toFixed(0).padStart(6)}  ${median(secs).toFixed(2)}`,
    );
  }
}
