// Fused training step: a whole sequential model (valid 'conv + bias + relu', max-pool, 'dense + bias (+ relu)',
// softmax cross-entropy) trained one minibatch per call, with the weights and the optimizer's moments kept on the
// native heap between calls. Included by train_api.h, inside fedkeeper_native.cc's namespace (it uses that file's
// pool, BLAS wrapper, im2col/col2im and column sums).
//
// A step, in pool dispatches: (1) the batch is cut into parts (by shape and setParts only, as every kernel here) and
// each part runs the conv/pool layers forward over its samples; (2) the dense layers forward over the whole batch,
// in blocks of output columns; then, on the calling thread, the loss and the last dense layers' backward; (3) the
// dense layers' update in blocks of kernel rows (the first dense layer's input gradient, its kernel gradient as one
// product over the batch, the optimizer); (4) each part runs the conv/pool layers backward, leaving its own
// gradient; (5) those gradients summed in part order, and the optimizer on them. Every split depends on shapes only
// and every element's arithmetic is fixed, so a step is bit-for-bit the same for any thread count.
//
// Layouts are tfjs': NHWC activations, conv kernels [f, f, ci, co], dense kernels [in, out]; the parameter vector
// is the model's variables concatenated (kernel, then bias, per layer).

#include "step_layers.h"

// Where a step's time goes (trainerProfile): wall seconds of each phase on the calling thread, and per layer the
// CPU seconds of its forward and backward summed over the parts (dense layers: see the phases).
constexpr int kMaxLayers = 16;
enum ProfSlot { kProfPartsFwd, kProfDenseFwd, kProfLossDenseBwd, kProfPartsBwd, kProfUpdate, kProfSteps, kProfLayerFwd = 8,
                kProfLayerBwd = kProfLayerFwd + kMaxLayers, kProfSlots = kProfLayerBwd + kMaxLayers };

inline double ThreadCpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

inline double WallSeconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct StepPart {
  double prof[kProfSlots] = {};
  std::vector<float> d0, d1, cols, dcols;
  std::vector<std::vector<float>> keep;  // per conv layer: its im2col from the forward pass (when one chunk)
  std::vector<float> grad;  // this part's gradient of the conv layers (parameter layout; they come first)
  std::vector<double> bias;
};

// A range of the parameter vector the update phase computes and applies: a block of a dense kernel's rows (its
// gradient is one product over the whole batch) or a range of everything else (the parts' gradients, summed).
struct UpdateItem {
  size_t lo, hi;
  int layer;  // dense layer index (its kernel), -2 (a dense bias: gradient already in T.g) or -1 (the parts' sum)
};

struct Trainer {
  std::vector<StepLayer> layers;
  size_t inSize = 0, nParams = 0;
  int classes = 0;
  std::vector<float> w, m, v, g;
  StepPart part[kMaxParts];
  // Batch-wide, each part writing its samples' rows: layer outputs, pool argmaxes, dense layers' output gradients.
  std::vector<std::vector<float>> act, dsave;
  std::vector<float> dflat;  // gradient of the last conv/pool layer's output
  size_t firstDense = 0;     // layers before it run per part; it and the rest (all dense) over the whole batch
  std::vector<std::vector<int32_t>> arg;
  std::vector<UpdateItem> items;
  size_t denseItems = 0;
  std::vector<double> loss;
  std::vector<int> correct;
  double prof[kProfSlots] = {};
};

// A first layer of direct convolution followed by a 2x2/2 max-pool tiling its output: run sample by sample, the
// convolution's output never leaves a small buffer (the backward needs only the pool's output and argmax).
bool FusedConvPool(const Trainer& T, size_t li) {
  if (li != 0 || li + 1 >= T.firstDense) return false;
  const StepLayer &L = T.layers[li], &Lp = T.layers[li + 1];
  return L.type == kLayerConv && Direct(L) && Lp.type == kLayerPool && Lp.f == 2 && Lp.s == 2 && Lp.H == 2 * Lp.oh &&
         Lp.W == 2 * Lp.ow;
}

// Per part: the convolution/pool layers before the first dense one, forward over samples [s0, s1).
void PartForward(Trainer& T, StepPart& P, const float* x, int s0, int s1) {
  const int nb = s1 - s0;
  const size_t nl = T.layers.size();
  const float* W = T.w.data();
  const float* xp = x + s0 * T.inSize;
  if (P.keep.size() < nl) P.keep.resize(nl);
  // Forward.
  const float* in = xp;
  double t0 = ThreadCpuSeconds();
  for (size_t li = 0; li < T.firstDense; li++) {
    const StepLayer& L = T.layers[li];
    float* out = T.act[li].data() + s0 * L.Out();
    if (FusedConvPool(T, li)) {
      const StepLayer& Lp = T.layers[li + 1];
      float* tmp = Grow(&P.d1, L.Out());
      float* pout = T.act[li + 1].data() + s0 * Lp.Out();
      int32_t* parg = T.arg[li + 1].data() + s0 * Lp.Out();
      for (int b = 0; b < nb; b++) {
        DirectForward(L, in + b * L.In(), 1, W + L.w, W + L.b, tmp);
        PoolForward(Lp, tmp, 1, pout + b * Lp.Out(), parg + b * Lp.Out());
      }
      const double t1 = ThreadCpuSeconds();
      P.prof[kProfLayerFwd + li] += t1 - t0;
      t0 = t1;
      in = pout;
      li++;
      continue;
    }
    if (L.type == kLayerConv && Direct(L)) {
      DirectForward(L, in, nb, W + L.w, W + L.b, out);
    } else if (L.type == kLayerConv) {
      const ConvDims d = L.Dims(nb);
      const int K = d.K(), chunk = L.Chunk();
      for (int c0 = 0; c0 < nb; c0 += chunk) {
        const int nc = std::min(chunk, nb - c0);
        const int rows = nc * L.oh * L.ow;
        float* cols = Grow(nc == nb ? &P.keep[li] : &P.cols, static_cast<size_t>(rows) * K);
        Im2Col(d, in + c0 * L.In(), nc, cols);
        float* o = out + c0 * L.Out();
        Sgemm(false, false, rows, L.oc, K, cols, K, W + L.w, L.oc, 0.0f, o, L.oc);
        BiasAct(o, rows, L.oc, L.oc, W + L.b, L.act);
      }
    } else {
      PoolForward(L, in, nb, out, T.arg[li].data() + s0 * L.Out());
    }
    const double t1 = ThreadCpuSeconds();
    P.prof[kProfLayerFwd + li] += t1 - t0;
    t0 = t1;
    in = out;
  }
}

// Per part: those layers backward from their output's gradient (T.dflat); their gradients go to P.grad.
void PartBackward(Trainer& T, StepPart& P, const float* x, int s0, int s1) {
  const int nb = s1 - s0;
  const size_t nl = T.firstDense;
  const float* W = T.w.data();
  const float* xp = x + s0 * T.inSize;
  // Backward.
  size_t biasAt = 0;
  std::vector<size_t> biasOff(nl, 0);
  for (size_t li = 0; li < nl; li++)
    if (T.layers[li].type != kLayerPool) {
      biasOff[li] = biasAt;
      biasAt += T.layers[li].oc;
    }
  double* biasSums = Grow(&P.bias, biasAt);
  std::fill(biasSums, biasSums + biasAt, 0.0);
  float* G = P.grad.data();
  float* dcur = T.dflat.data() + s0 * T.layers[nl - 1].Out();
  bool masked = false;  // dcur already has the relu gradient applied (a max-pool's backward did it)
  double t0 = ThreadCpuSeconds();
  for (size_t k = nl; k-- > 0;) {
    const StepLayer& L = T.layers[k];
    if (k == 1 && FusedConvPool(T, 0)) {
      // Pool and convolution backward, sample by sample: the pool's gradient (relu applied) into a small buffer,
      // then the filter and bias gradients from it (the same sums, in the same order, as whole-part passes).
      const StepLayer& Lc = T.layers[0];
      const float* pout = T.act[1].data() + s0 * L.Out();
      const int32_t* parg = T.arg[1].data() + s0 * L.Out();
      float* tmp = Grow(P.d1.data() == dcur ? &P.d0 : &P.d1, Lc.Out());
      double* bs = P.bias.data() + biasOff[0];
      for (int b = 0; b < nb; b++) {
        const size_t ob = b * L.Out();
        for (int oy = 0; oy < L.oh; oy++)
          for (int ox = 0; ox < L.ow; ox++) {
            const int32_t b0 = ((2 * oy) * L.W + 2 * ox) * L.C, b1 = b0 + L.W * L.C;
            const size_t o = ob + (static_cast<size_t>(oy) * L.ow + ox) * L.C;
            Pool2x2BackRow(dcur + o, parg + o, pout + o, L.C, b0, b1, Lc.act, tmp + b0, tmp + b1);
          }
        DirectFilterGrad(Lc, xp + b * Lc.In(), 1, tmp, G + Lc.w, b == 0);
        ColumnSums(tmp, static_cast<size_t>(Lc.oh) * Lc.ow, Lc.oc, Lc.oc, bs);
      }
      for (int j = 0; j < Lc.oc; j++) G[Lc.b + j] = static_cast<float>(bs[j]);
      P.prof[kProfLayerBwd + 1] += ThreadCpuSeconds() - t0;
      break;
    }
    const float* lin = k == 0 ? xp : T.act[k - 1].data() + s0 * L.In();
    const float* lout = T.act[k].data() + s0 * L.Out();
    const size_t outN = nb * L.Out();
    const bool needPrev = k > 0;
    float* dprev = needPrev ? Grow(dcur == P.d0.data() ? &P.d1 : &P.d0, nb * L.In()) : nullptr;
    if (L.act == 1 && !masked)
      for (size_t e = 0; e < outN; e++)
        if (!(lout[e] > 0.0f)) dcur[e] = 0.0f;
    masked = false;
    if (L.type == kLayerConv && Direct(L) && !needPrev) {
      DirectFilterGrad(L, lin, nb, dcur, G + L.w);
      ColumnSums(dcur, static_cast<size_t>(nb) * L.oh * L.ow, L.oc, L.oc, P.bias.data() + biasOff[k]);
    } else if (L.type == kLayerConv) {
      const ConvDims d = L.Dims(nb);
      const int Kc = d.K(), chunk = L.Chunk();
      for (int c0 = 0; c0 < nb; c0 += chunk) {
        const int nc = std::min(chunk, nb - c0);
        const int rows = nc * L.oh * L.ow;
        const float* dc = dcur + c0 * L.Out();
        const float* cols = P.keep[k].data();
        if (nc != nb) {
          float* c = Grow(&P.cols, static_cast<size_t>(rows) * Kc);
          Im2Col(d, lin + c0 * L.In(), nc, c);
          cols = c;
        }
        Sgemm(true, false, Kc, L.oc, rows, cols, Kc, dc, L.oc, c0 == 0 ? 0.0f : 1.0f, G + L.w, L.oc);
        if (needPrev) {
          float* dcols = Grow(&P.dcols, static_cast<size_t>(rows) * Kc);
          Sgemm(false, true, rows, Kc, L.oc, dc, L.oc, W + L.w, L.oc, 0.0f, dcols, Kc);
          float* dx = dprev + c0 * L.In();
          std::memset(dx, 0, sizeof(float) * nc * L.In());
          Col2ImAdd(d, dcols, nc, dx);
        }
      }
      ColumnSums(dcur, static_cast<size_t>(nb) * L.oh * L.ow, L.oc, L.oc, P.bias.data() + biasOff[k]);
    } else if (needPrev) {
      // Max-pool: each output's gradient to its argmax; the layer below's relu gradient applied on the way.
      const bool relu = T.layers[k - 1].act == 1;
      const float* below = T.act[k - 1].data() + s0 * L.In();
      const int32_t* arg = T.arg[k].data() + s0 * L.Out();
      const size_t per = L.Out();
      if (L.f == 2 && L.s == 2 && L.H == 2 * L.oh && L.W == 2 * L.ow) {
        for (int b = 0; b < nb; b++)
          for (int oy = 0; oy < L.oh; oy++)
            for (int ox = 0; ox < L.ow; ox++) {
              const int32_t b0 = ((2 * oy) * L.W + 2 * ox) * L.C, b1 = b0 + L.W * L.C;
              const size_t o = b * per + (static_cast<size_t>(oy) * L.ow + ox) * L.C;
              float* dxb = dprev + b * L.In();
              Pool2x2BackRow(dcur + o, arg + o, lout + o, L.C, b0, b1, relu ? 1 : 0, dxb + b0, dxb + b1);
            }
        masked = relu;
        if (needPrev) dcur = dprev;
        const double t1 = ThreadCpuSeconds();
        P.prof[kProfLayerBwd + k] += t1 - t0;
        t0 = t1;
        continue;
      }
      std::memset(dprev, 0, sizeof(float) * nb * L.In());
      for (int b = 0; b < nb; b++) {
        float* dxb = dprev + b * L.In();
        const float* xb = below + b * L.In();
        const float* dyb = dcur + b * per;
        const int32_t* ab = arg + b * per;
        for (size_t e = 0; e < per; e++)
          if (ab[e] >= 0 && (!relu || xb[ab[e]] > 0.0f)) dxb[ab[e]] += dyb[e];
      }
      masked = relu;
    }
    if (L.type == kLayerConv)
      for (int j = 0; j < L.oc; j++) G[L.b + j] = static_cast<float>(P.bias[biasOff[k] + j]);
    if (needPrev) dcur = dprev;
    const double t1 = ThreadCpuSeconds();
    P.prof[kProfLayerBwd + k] += t1 - t0;
    t0 = t1;
  }
}

// The dense layers over the whole batch, each split in blocks of output columns (shape only).
constexpr int kDenseBlock = 128;

void DenseForward(Trainer& T, const float* x, int B) {
  const float* W = T.w.data();
  const float* in = T.firstDense == 0 ? x : T.act[T.firstDense - 1].data();
  for (size_t li = T.firstDense; li < T.layers.size(); li++) {
    const StepLayer& L = T.layers[li];
    float* out = T.act[li].data();
    g_pool.Run((L.oc + kDenseBlock - 1) / kDenseBlock, [&](int i) {
      const int c0 = i * kDenseBlock, nc = std::min(kDenseBlock, L.oc - c0);
      Sgemm(false, false, B, nc, L.C, in, L.C, W + L.w + c0, L.oc, 0.0f, out + c0, L.oc);
      BiasAct(out + c0, B, nc, L.oc, W + L.b + c0, L.act);
    });
    in = out;
  }
}

// Softmax cross-entropy, mean over the batch: loss_i = log Σ exp(z - max) + max - z[y]; dz = (softmax - onehot) / B.
// Then the dense layers backward: output gradients kept (T.dsave) for the update's kernel gradients, bias gradients
// to T.g, the input gradient of the first dense layer to T.dflat.
void LossAndDenseBackward(Trainer& T, const int32_t* y, int B) {
  const size_t nl = T.layers.size();
  const float* W = T.w.data();
  const int K = T.classes;
  const float* logits = T.act[nl - 1].data();
  float* dz = T.dsave[nl - 1].data();
  const double invB = 1.0 / B;
  for (int i = 0; i < B; i++) {
    const float* z = logits + static_cast<size_t>(i) * K;
    const int label = y[i];
    float mx = z[0];
    int am = 0;
    for (int j = 1; j < K; j++)
      if (z[j] > mx) {
        mx = z[j];
        am = j;
      }
    double s = 0;
    for (int j = 0; j < K; j++) s += std::exp(static_cast<double>(z[j]) - mx);
    T.loss[i] = std::log(s) + mx - z[label];
    T.correct[i] = am == label ? 1 : 0;
    for (int j = 0; j < K; j++)
      dz[i * K + j] = static_cast<float>((std::exp(static_cast<double>(z[j]) - mx) / s - (j == label ? 1.0 : 0.0)) * invB);
  }
  std::vector<double> acc;
  for (size_t k = nl; k-- > T.firstDense;) {
    const StepLayer& L = T.layers[k];
    float* dcur = T.dsave[k].data();
    const size_t outN = static_cast<size_t>(B) * L.oc;
    if (L.act == 1) {
      const float* lout = T.act[k].data();
      for (size_t e = 0; e < outN; e++)
        if (!(lout[e] > 0.0f)) dcur[e] = 0.0f;
    }
    acc.assign(L.oc, 0.0);
    ColumnSums(dcur, B, L.oc, L.oc, acc.data());
    for (int j = 0; j < L.oc; j++) T.g[L.b + j] = static_cast<float>(acc[j]);
    if (k == T.firstDense) break;  // its input gradient is computed by the update, block by block (UpdateDense)
    float* dprev = T.dsave[k - 1].data();
    g_pool.Run((L.C + kDenseBlock - 1) / kDenseBlock, [&](int i) {
      const int r0 = i * kDenseBlock, nr = std::min(kDenseBlock, L.C - r0);
      Sgemm(false, true, B, nr, L.oc, dcur, L.oc, W + L.w + static_cast<size_t>(r0) * L.oc, L.oc, 0.0f, dprev + r0, L.C);
    });
  }
}

// The update phase's work list (shape only): dense kernels in blocks of rows and dense biases first, then everything
// else (the conv layers) in ranges.
void PlanUpdate(Trainer& T) {
  T.items.clear();
  constexpr size_t kBlock = 16384;  // parameters per item (about)
  size_t at = 0;
  std::vector<UpdateItem> rest;
  auto others = [&](size_t to) {
    for (size_t lo = at; lo < to; lo += kBlock) rest.push_back({lo, std::min(to, lo + kBlock), -1});
    at = to;
  };
  for (size_t k = 0; k < T.layers.size(); k++) {
    const StepLayer& L = T.layers[k];
    if (L.type != kLayerDense) continue;
    others(L.w);
    const size_t rows = std::max<size_t>(1, kBlock / L.oc);
    for (size_t r = 0; r < static_cast<size_t>(L.C); r += rows)
      T.items.push_back({L.w + r * L.oc, L.w + std::min<size_t>(L.C, r + rows) * L.oc, static_cast<int>(k)});
    T.items.push_back({L.b, L.b + L.oc, -2});
    at = L.b + L.oc;
  }
  others(T.nParams);
  T.denseItems = T.items.size();  // the dense layers' items first, then the rest
  T.items.insert(T.items.end(), rest.begin(), rest.end());
}
