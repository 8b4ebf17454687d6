/**
 * Identity, and Cast to the same dtype, for the wasm backend without copying: the output shares the input's buffer
 * (reference-counted), as on tfjs' cpu backend and as wasm's own Reshape does. wasm's versions copy the data, and
 * tfjs calls Identity for every tensor it saves for the backward pass and Cast in every relu gradient.
 */
import type * as tf from '@tensorflow/tfjs';

interface RefCounting {
  incRef(dataId: object): void;
}

function share(x: tf.TensorInfo, backend: unknown): tf.TensorInfo {
  (backend as RefCounting).incRef(x.dataId);
  return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
}

export function sharingIdentity(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo | undefined;
    if (!x || x.dtype === 'string' || typeof (args.backend as Partial<RefCounting>).incRef !== 'function') return original(args);
    return share(x, args.backend);
  };
}

export function sharingCast(original: tf.KernelFunc): tf.KernelFunc {
  return (args) => {
    const x = args.inputs['x'] as tf.TensorInfo | undefined;
    if (!x || x.dtype === 'string' || args.attrs?.['dtype'] !== x.dtype || typeof (args.backend as Partial<RefCounting>).incRef !== 'function') {
      return original(args);
    }
    return share(x, args.backend);
  };
}
