// Fused training step: a whole sequential model (valid 'conv + bias + relu', max-pool, 'dense + bias (+ relu)',
// softmax cross-entropy) trained one minibatch per call, with the weights and the optimizer's moments kept on the
// native heap between calls. Included once, by fedkeeper_native.cc, inside its namespace (it uses that file's pool,
// BLAS wrapper, im2col/col2im and update loops).
//
// One step = two pool dispatches: (1) the batch is cut into parts (by shape and setParts only, as every kernel
// here), each part runs forward, loss and backward over its samples and leaves its own gradient; (2) the gradients
// are summed in part order and the optimizer updates the weights (element ranges; per-element arithmetic fixed).
// So a step is bit-for-bit the same for any thread count.
//
// Layouts are tfjs': NHWC activations, conv kernels [f, f, ci, co], dense kernels [in, out]; the parameter vector
// is the model's variables concatenated (kernel, then bias, per layer).

enum LayerType { kLayerConv = 1, kLayerPool = 2, kLayerDense = 3 };

struct StepLayer {
  int type = 0, act = 0;
  int H = 1, W = 1, C = 0;     // input (dense: C features)
  int oh = 1, ow = 1, oc = 0;  // output
  int f = 1, s = 1;            // window and stride (conv: stride 1, no padding)
  size_t w = 0, b = 0;         // offsets of kernel and bias in the parameter vector (conv, dense)
  size_t In() const { return static_cast<size_t>(H) * W * C; }
  size_t Out() const { return static_cast<size_t>(oh) * ow * oc; }
  ConvDims Dims(int nb) const { return ConvDims{nb, H, W, C, f, f, oc, oh, ow, 1, 1, 0, 0}; }
  // Samples per im2col block: the block (and its gradient) about the size of a core's L2 cache, so the products
  // read and write it there (conv2 of the paper's CNN: 2 samples; measured 25-30 % faster than whole parts).
  int Chunk() const {
    const size_t per = static_cast<size_t>(oh) * ow * f * f * C;
    return static_cast<int>(std::max<size_t>(1, (size_t(1) << 17) / std::max<size_t>(1, per)));
  }
};

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

// Few taps per output (a first layer on few channels): im2col + GEMM wastes most of its time there, so the
// convolution runs directly, vectorised over output channels.
constexpr int kDirectTaps = 32;
constexpr int kDirectChannels = 128;
inline bool Direct(const StepLayer& L) { return L.f * L.f * L.C <= kDirectTaps && L.oc <= kDirectChannels; }

// The K = f*f*C input taps of output (oy, ox) of one sample, in the im2col order (kh, kw, c).
inline void Taps(const StepLayer& L, const float* xb, int oy, int ox, float* t) {
  const int run = L.f * L.C;
  for (int kh = 0; kh < L.f; kh++) {
    const float* src = xb + (static_cast<size_t>(oy + kh) * L.W + ox) * L.C;
    for (int j = 0; j < run; j++) t[kh * run + j] = src[j];
  }
}

// 8 floats; unaligned loads and stores through it are plain memory accesses (aligned(4)).
typedef float V8 __attribute__((vector_size(32), aligned(4)));

// out[pix][co] = act(bias[co] + sum over taps k in order of t[k] * w[k][co]). With 32 output channels, two pixels
// at a time in registers (the same operations per element as the plain loop).
FK_CLONES void DirectForward(const StepLayer& L, const float* in, int nb, const float* w, const float* bias, float* out) {
  const int K = L.f * L.f * L.C, Co = L.oc;
  float t[kDirectTaps], u[kDirectTaps];
  float acc[kDirectChannels];
  auto finish = [&](const float* a, float* o) {
    for (int co = 0; co < Co; co++) {
      const float r = a[co] + bias[co];
      o[co] = L.act == 1 && r < 0.0f ? 0.0f : r;
    }
  };
  for (int b = 0; b < nb; b++) {
    const float* xb = in + b * L.In();
    float* ob = out + b * L.Out();
    for (int oy = 0; oy < L.oh; oy++) {
      int ox = 0;
      if (Co == 32) {
        for (; ox + 1 < L.ow; ox += 2) {
          Taps(L, xb, oy, ox, t);
          Taps(L, xb, oy, ox + 1, u);
          V8 a0 = {}, a1 = {}, a2 = {}, a3 = {}, c0 = {}, c1 = {}, c2 = {}, c3 = {};
          for (int k = 0; k < K; k++) {
            const V8* wr = reinterpret_cast<const V8*>(w + static_cast<size_t>(k) * 32);
            const V8 w0 = wr[0], w1 = wr[1], w2 = wr[2], w3 = wr[3];
            const float p = t[k], q = u[k];
            a0 += w0 * p, a1 += w1 * p, a2 += w2 * p, a3 += w3 * p;
            c0 += w0 * q, c1 += w1 * q, c2 += w2 * q, c3 += w3 * q;
          }
          V8* A = reinterpret_cast<V8*>(acc);
          A[0] = a0, A[1] = a1, A[2] = a2, A[3] = a3;
          finish(acc, ob + (static_cast<size_t>(oy) * L.ow + ox) * Co);
          A[0] = c0, A[1] = c1, A[2] = c2, A[3] = c3;
          finish(acc, ob + (static_cast<size_t>(oy) * L.ow + ox + 1) * Co);
        }
      }
      for (; ox < L.ow; ox++) {
        Taps(L, xb, oy, ox, t);
        for (int co = 0; co < Co; co++) acc[co] = 0.0f;
        for (int k = 0; k < K; k++) {
          const float v = t[k];
          const float* wr = w + static_cast<size_t>(k) * Co;
          for (int co = 0; co < Co; co++) acc[co] = acc[co] + wr[co] * v;
        }
        finish(acc, ob + (static_cast<size_t>(oy) * L.ow + ox) * Co);
      }
    }
  }
}

// dw[k][co] = sum over this part's output pixels, in order, of t_pix[k] * dy[pix][co]. With 32 output channels, one
// output row of pixels at a time, two taps' accumulators in registers (per element the same operations).
// (zero: start from 0, else add to dw: the same sums for one call over several samples as one call per sample.)
FK_CLONES void DirectFilterGrad(const StepLayer& L, const float* in, int nb, const float* dy, float* dw, bool zero = true) {
  const int K = L.f * L.f * L.C, Co = L.oc;
  float t[kDirectTaps];
  if (zero) std::memset(dw, 0, sizeof(float) * K * Co);
  int tapOff[kDirectTaps];  // offset of tap k from its output pixel's top-left input
  for (int kh = 0, k = 0; kh < L.f; kh++)
    for (int kw = 0; kw < L.f; kw++)
      for (int c = 0; c < L.C; c++, k++) tapOff[k] = (kh * L.W + kw) * L.C + c;
  for (int b = 0; b < nb; b++) {
    const float* xb = in + b * L.In();
    for (int oy = 0; oy < L.oh; oy++) {
      const float* drow = dy + b * L.Out() + static_cast<size_t>(oy) * L.ow * Co;
      if (Co == 32) {
        const float* xrow = xb + static_cast<size_t>(oy) * L.W * L.C;
        int k = 0;
        for (; k + 1 < K; k += 2) {
          V8* g0 = reinterpret_cast<V8*>(dw + static_cast<size_t>(k) * 32);
          V8* g1 = g0 + 4;
          V8 a0 = g0[0], a1 = g0[1], a2 = g0[2], a3 = g0[3], c0 = g1[0], c1 = g1[1], c2 = g1[2], c3 = g1[3];
          const float* x0 = xrow + tapOff[k];
          const float* x1 = xrow + tapOff[k + 1];
          for (int ox = 0; ox < L.ow; ox++) {
            const V8* d = reinterpret_cast<const V8*>(drow + ox * 32);
            const V8 d0 = d[0], d1 = d[1], d2 = d[2], d3 = d[3];
            const float p = x0[ox * L.C], q = x1[ox * L.C];
            a0 += d0 * p, a1 += d1 * p, a2 += d2 * p, a3 += d3 * p;
            c0 += d0 * q, c1 += d1 * q, c2 += d2 * q, c3 += d3 * q;
          }
          g0[0] = a0, g0[1] = a1, g0[2] = a2, g0[3] = a3, g1[0] = c0, g1[1] = c1, g1[2] = c2, g1[3] = c3;
        }
        for (; k < K; k++) {
          V8* g0 = reinterpret_cast<V8*>(dw + static_cast<size_t>(k) * 32);
          V8 a0 = g0[0], a1 = g0[1], a2 = g0[2], a3 = g0[3];
          const float* x0 = xrow + tapOff[k];
          for (int ox = 0; ox < L.ow; ox++) {
            const V8* d = reinterpret_cast<const V8*>(drow + ox * 32);
            const float p = x0[ox * L.C];
            a0 += d[0] * p, a1 += d[1] * p, a2 += d[2] * p, a3 += d[3] * p;
          }
          g0[0] = a0, g0[1] = a1, g0[2] = a2, g0[3] = a3;
        }
        continue;
      }
      for (int ox = 0; ox < L.ow; ox++) {
        Taps(L, xb, oy, ox, t);
        const float* d = drow + static_cast<size_t>(ox) * Co;
        for (int k = 0; k < K; k++) {
          const float v = t[k];
          float* g = dw + static_cast<size_t>(k) * Co;
          for (int co = 0; co < Co; co++) g[co] = g[co] + d[co] * v;
        }
      }
    }
  }
}

// 2x2, stride 2 max-pool of one output row (all channels): the same first-strictly-greater rule as MaxScan.
FK_CLONES void Pool2x2Row(const float* __restrict r0, const float* __restrict r1, int C, int32_t base0, int32_t base1,
                          float* __restrict out, int32_t* __restrict arg) {
  for (int c = 0; c < C; c++) {
    float best = r0[c];
    int32_t pos = base0 + c;
    bool gt = r0[C + c] > best;
    best = gt ? r0[C + c] : best;
    pos = gt ? base0 + C + c : pos;
    gt = r1[c] > best;
    best = gt ? r1[c] : best;
    pos = gt ? base1 + c : pos;
    gt = r1[C + c] > best;
    best = gt ? r1[C + c] : best;
    pos = gt ? base1 + C + c : pos;
    out[c] = best;
    arg[c] = pos;
  }
}

// The optimizers' updates in place (these weights are nobody else's): float for float the same operations as
// AdamRange, NadamRange and SgdRange, so the same results as tfjs' optimizers given the same gradient.
FK_CLONES void AdamInPlace(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v,
                           size_t n, float b1, float ob1, float b2, float ob2, float omab1, float omab2, float eps,
                           float negLr) {
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mi = m[i] * b1 + gi * ob1;
    const float gg = gi * gi;
    const float vi = v[i] * b2 + gg * ob2;
    m[i] = mi;
    v[i] = vi;
    const float bc1 = mi / omab1;
    const float bc2 = vi / omab2;
    const float q = bc1 / (std::sqrt(bc2) + eps);
    w[i] = q * negLr + w[i];
  }
}

FK_CLONES void NadamInPlace(float* __restrict w, const float* __restrict g, float* __restrict m, float* __restrict v,
                            size_t n, float b1, float ob1, float b2, float ob2, float cG, float cM, float vDenom,
                            float eps, float lr) {
  for (size_t i = 0; i < n; i++) {
    const float gi = g[i];
    const float mT = m[i] * b1 + gi * ob1;
    const float gg = gi * gi;
    const float vT = v[i] * b2 + gg * ob2;
    m[i] = mT;
    v[i] = vT;
    const float mBar = gi * cG + mT * cM;
    const float denom = std::sqrt(vT / vDenom) + eps;
    const float step = (mBar / denom) * lr;
    w[i] = w[i] - step;
  }
}

FK_CLONES void SgdInPlace(float* __restrict w, const float* __restrict g, size_t n, float negLr) {
  for (size_t i = 0; i < n; i++) w[i] = negLr * g[i] + w[i];
}

template <class T>
T* Grow(std::vector<T>* v, size_t n) {
  if (v->size() < n) v->resize(n);
  return v->data();
}

// Max-pool forward, no padding: out = window max, arg = its index within the sample (first strictly greater value
// in row-major window order, as MaxPoolGrad's rule).
void PoolForward(const StepLayer& L, const float* in, int nb, float* out, int32_t* arg) {
  if (L.f == 2 && L.s == 2) {
    // (A NaN first in a window is kept here where MaxScan would skip it: both then pass no useful gradient.)
    for (int b = 0; b < nb; b++) {
      const float* xb = in + b * L.In();
      for (int oy = 0; oy < L.oh; oy++)
        for (int ox = 0; ox < L.ow; ox++) {
          const int32_t b0 = ((2 * oy) * L.W + 2 * ox) * L.C, b1 = b0 + L.W * L.C;
          const size_t o = b * L.Out() + (static_cast<size_t>(oy) * L.ow + ox) * L.C;
          Pool2x2Row(xb + b0, xb + b1, L.C, b0, b1, out + o, arg + o);
        }
    }
    return;
  }
  std::vector<float> best(L.C);
  std::vector<int32_t> pos(L.C);
  for (int b = 0; b < nb; b++) {
    const float* xb = in + b * L.In();
    for (int oy = 0; oy < L.oh; oy++) {
      for (int ox = 0; ox < L.ow; ox++) {
        std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
        std::fill(pos.begin(), pos.end(), -1);
        for (int wr = 0; wr < L.f; wr++) {
          const int iy = oy * L.s + wr;
          for (int wc = 0; wc < L.f; wc++) {
            const int32_t base = (iy * L.W + ox * L.s + wc) * L.C;
            MaxScan(xb + base, best.data(), pos.data(), L.C, base);
          }
        }
        const size_t o = b * L.Out() + (static_cast<size_t>(oy) * L.ow + ox) * L.C;
        std::memcpy(out + o, best.data(), sizeof(float) * L.C);
        std::memcpy(arg + o, pos.data(), sizeof(int32_t) * L.C);
      }
    }
  }
}

// 2x2, stride 2 max-pool backward over one output (all channels) whose windows tile the input: each input of the
// window gets the output's gradient if it is the window's argmax (and, with relu below, positive: the argmax's value
// is the output), else zero; one pass, no separate zeroing. The same values as zeroing and then adding.
FK_CLONES void Pool2x2BackRow(const float* __restrict dy, const int32_t* __restrict arg, const float* __restrict out,
                              int C, int32_t b0, int32_t b1, int relu, float* __restrict r0, float* __restrict r1) {
  for (int c = 0; c < C; c++) {
    const int32_t a = arg[c];
    const bool pass = a >= 0 && (!relu || out[c] > 0.0f);
    const float v = pass ? 0.0f + dy[c] : 0.0f;
    r0[c] = a == b0 + c ? v : 0.0f;
    r0[C + c] = a == b0 + C + c ? v : 0.0f;
    r1[c] = a == b1 + c ? v : 0.0f;
    r1[C + c] = a == b1 + C + c ? v : 0.0f;
  }
}

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

void TrainerFinalize(napi_env, void* data, void*) {
  Trainer** h = static_cast<Trainer**>(data);
  delete *h;
  delete h;
}

Trainer* GetTrainer(Args& a, size_t i) {
  void* p = nullptr;
  if (i >= a.argc || napi_get_value_external(a.env, a.argv[i], &p) != napi_ok || !p) {
    a.Fail("fedkeeper_native: expected a trainer");
    return nullptr;
  }
  Trainer* t = *static_cast<Trainer**>(p);
  if (!t) a.Fail("fedkeeper_native: the trainer was disposed");
  return t;
}

// trainerCreate(spec: Int32Array [H, W, C, classes, nLayers, then per layer: type, p1, p2, act]) -> trainer
//   conv: p1 = kernel size, p2 = filters (stride 1, no padding); pool: p1 = window, p2 = stride; dense: p1 = units.
napi_value TrainerCreate(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* d = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &d, &len)) return nullptr;
  const int32_t* s = reinterpret_cast<const int32_t*>(d);
  const size_t n = len / 4;
  if (n < 5 || n != 5 + 4 * static_cast<size_t>(std::max(0, s[4]))) {
    a.Fail("fedkeeper_native: invalid trainer spec");
    return nullptr;
  }
  auto t = std::make_unique<Trainer>();
  int H = s[0], W = s[1], C = s[2];
  t->classes = s[3];
  bool ok = H > 0 && W > 0 && C > 0 && t->classes > 0;
  t->inSize = static_cast<size_t>(H) * W * C;
  size_t params = 0;
  for (int i = 0; i < s[4] && ok; i++) {
    const int32_t* q = s + 5 + 4 * i;
    StepLayer L;
    L.type = q[0];
    L.act = q[3];
    L.H = H, L.W = W, L.C = C;
    if (L.type == kLayerConv) {
      L.f = q[1], L.oc = q[2], L.oh = H - L.f + 1, L.ow = W - L.f + 1;
    } else if (L.type == kLayerPool) {
      L.f = q[1], L.s = q[2], L.oc = C;
      ok = L.f > 0 && L.s > 0 && L.act == 0;
      if (ok) L.oh = (H - L.f) / L.s + 1, L.ow = (W - L.f) / L.s + 1;
    } else if (L.type == kLayerDense) {
      L.C = H * W * C, L.H = 1, L.W = 1, L.oc = q[1];
    } else {
      ok = false;
    }
    ok = ok && L.f > 0 && L.oc > 0 && L.oh > 0 && L.ow > 0 && L.f <= H && L.f <= W && (L.act == 0 || L.act == 1) &&
         static_cast<int64_t>(L.H) * L.W * L.C < (int64_t(1) << 31);
    if (L.type != kLayerPool) {
      L.w = params;
      params += static_cast<size_t>(L.type == kLayerConv ? L.f * L.f * C : L.C) * L.oc;
      L.b = params;
      params += L.oc;
    }
    if (L.type == kLayerDense && t->firstDense == 0 && (t->layers.empty() || t->layers.back().type != kLayerDense))
      t->firstDense = t->layers.size();
    ok = ok && (L.type == kLayerDense || t->layers.empty() || t->layers.back().type != kLayerDense);
    t->layers.push_back(L);
    H = L.oh, W = L.ow, C = L.oc;
  }
  if (!ok || t->layers.empty() || t->layers.size() > static_cast<size_t>(kMaxLayers) || H * W * C != t->classes || t->layers.back().type != kLayerDense || t->layers.back().act != 0) {
    a.Fail("fedkeeper_native: invalid trainer spec");
    return nullptr;
  }
  t->nParams = params;
  for (auto* vec : {&t->w, &t->m, &t->v, &t->g}) vec->assign(params, 0.0f);
  auto** holder = new Trainer*(t.release());
  napi_value out;
  if (napi_create_external(env, holder, TrainerFinalize, nullptr, &out) != napi_ok) {
    delete *holder;
    delete holder;
    a.Fail("fedkeeper_native: could not create a trainer");
    return nullptr;
  }
  return out;
}

// trainerProfile(trainer, out: Float64Array [40]): the time accumulated since the last call (see ProfSlot), then reset.
napi_value TrainerProfile(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  Trainer* t = GetTrainer(a, 0);
  if (!t) return nullptr;
  double* out = reinterpret_cast<double*>(a.Floats(1, 2 * kProfSlots));
  if (!out) return nullptr;
  for (int i = 0; i < kProfSlots; i++) {
    out[i] = t->prof[i];
    t->prof[i] = 0;
    for (auto& p : t->part) {
      out[i] += p.prof[i];
      p.prof[i] = 0;
    }
  }
  return Undefined(env);
}

// trainerParams(trainer) -> number of parameters
napi_value TrainerParams(napi_env env, napi_callback_info info) {
  Args a(env, info);
  Trainer* t = GetTrainer(a, 0);
  if (!t) return nullptr;
  napi_value out;
  napi_create_double(env, static_cast<double>(t->nParams), &out);
  return out;
}

// trainerStart(trainer, weights: Float32Array): load the weights, zero the optimizer's moments.
napi_value TrainerStart(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  Trainer* t = GetTrainer(a, 0);
  if (!t) return nullptr;
  const float* src = a.Floats(1, t->nParams);
  if (!src) return nullptr;
  std::memcpy(t->w.data(), src, sizeof(float) * t->nParams);
  std::fill(t->m.begin(), t->m.end(), 0.0f);
  std::fill(t->v.begin(), t->v.end(), 0.0f);
  return Undefined(env);
}

// trainerWeights(trainer, out: Float32Array): copy the weights out.
napi_value TrainerWeights(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  Trainer* t = GetTrainer(a, 0);
  if (!t) return nullptr;
  float* dst = a.Floats(1, t->nParams);
  if (!dst) return nullptr;
  std::memcpy(dst, t->w.data(), sizeof(float) * t->nParams);
  return Undefined(env);
}

// trainerDispose(trainer): free its memory now (the handle then refuses every call).
napi_value TrainerDispose(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  void* p = nullptr;
  if (a.argc < 1 || napi_get_value_external(env, a.argv[0], &p) != napi_ok || !p) {
    a.Fail("fedkeeper_native: expected a trainer");
    return nullptr;
  }
  Trainer** h = static_cast<Trainer**>(p);
  delete *h;
  *h = nullptr;
  return Undefined(env);
}

// trainerStep(trainer, x: Float32Array [B*inSize], y: Int32Array [B], B, optimizer (0 sgd, 1 adam, 2 nadam),
//             scalars: Float64Array [9] (the update's scalars after (heap, value, grad, out, n[, m, v]) as for
//             sgd/adam/nadam, zero-padded), result: Float64Array [2] (mean loss, correct predictions))
napi_value TrainerStep(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  Trainer* t = GetTrainer(a, 0);
  const int B = a.Int(3), kind = a.Int(4);
  if (!t || !a.ok) return nullptr;
  if (B < 1 || kind < 0 || kind > 2) {
    a.Fail("fedkeeper_native: invalid trainer step");
    return nullptr;
  }
  const float* x = a.Floats(1, static_cast<size_t>(B) * t->inSize);
  uint8_t* yb = nullptr;
  size_t ylen = 0;
  if (!x || !a.Bytes(2, &yb, &ylen)) return nullptr;
  const int32_t* y = reinterpret_cast<const int32_t*>(yb);
  const double* sc = reinterpret_cast<const double*>(a.Floats(5, 18));
  double* result = reinterpret_cast<double*>(a.Floats(6, 4));
  if (!a.ok) return nullptr;
  if (ylen < static_cast<size_t>(B) * 4) {
    a.Fail("fedkeeper_native: too few labels");
    return nullptr;
  }
  for (int i = 0; i < B; i++)
    if (y[i] < 0 || y[i] >= t->classes) {
      a.Fail("fedkeeper_native: label out of range");
      return nullptr;
    }
  t->loss.assign(B, 0.0);
  t->correct.assign(B, 0);
  const size_t nl = t->layers.size();
  t->act.resize(nl);
  t->arg.resize(nl);
  t->dsave.resize(nl);
  for (size_t k = 0; k < nl; k++) {
    const StepLayer& L = t->layers[k];
    Grow(&t->act[k], B * L.Out());
    if (L.type == kLayerPool) Grow(&t->arg[k], B * L.Out());
    if (L.type == kLayerDense) Grow(&t->dsave[k], static_cast<size_t>(B) * L.oc);
  }
  if (t->items.empty()) PlanUpdate(*t);
  const int parts = std::max(1, std::min(B, g_parts));
  // The parts' gradients cover the conv layers only (their parameters come first).
  const size_t partParams = t->firstDense > 0 ? t->layers[t->firstDense].w : 0;
  for (int p = 0; p < parts; p++) Grow(&t->part[p].grad, partParams);
  const bool prefix = t->firstDense > 0;
  double* prof = t->prof;
  double w0 = WallSeconds();
  auto lap = [&](int slot) {
    const double w1 = WallSeconds();
    prof[slot] += w1 - w0;
    w0 = w1;
  };
  if (prefix) {
    Grow(&t->dflat, B * t->layers[t->firstDense - 1].Out());
    g_pool.Run(parts, [&](int p) { PartForward(*t, t->part[p], x, SplitPoint(B, parts, p), SplitPoint(B, parts, p + 1)); });
  }
  lap(kProfPartsFwd);
  DenseForward(*t, x, B);
  lap(kProfDenseFwd);
  LossAndDenseBackward(*t, y, B);
  lap(kProfLossDenseBwd);
  // Update: per item, its gradient (a dense kernel block: one product over the batch; else the parts' gradients
  // summed in part order), then the optimizer on the item's range. The dense layers' items go first, before the
  // conv layers' backward: a block of the first dense kernel also computes its share of that layer's input gradient
  // (with the old weights, while the block is in cache), which the conv layers' backward then takes.
  const float f[9] = {static_cast<float>(sc[0]), static_cast<float>(sc[1]), static_cast<float>(sc[2]),
                      static_cast<float>(sc[3]), static_cast<float>(sc[4]), static_cast<float>(sc[5]),
                      static_cast<float>(sc[6]), static_cast<float>(sc[7]), static_cast<float>(sc[8])};
  float* g = t->g.data();
  float* val = t->w.data();
  float* m = t->m.data();
  float* v = t->v.data();
  auto update = [&](const UpdateItem& it) {
    const size_t lo = it.lo, hi = it.hi;
    if (it.layer >= 0) {
      const StepLayer& L = t->layers[it.layer];
      const size_t r0 = (lo - L.w) / L.oc, r1 = (hi - L.w) / L.oc;
      if (it.layer == static_cast<int>(t->firstDense) && it.layer > 0)
        Sgemm(false, true, B, static_cast<int>(r1 - r0), L.oc, t->dsave[it.layer].data(), L.oc, val + lo, L.oc, 0.0f,
              t->dflat.data() + r0, L.C);
      const float* lin = it.layer == 0 ? x : t->act[it.layer - 1].data();
      Sgemm(true, false, static_cast<int>(r1 - r0), L.oc, B, lin + r0, L.C, t->dsave[it.layer].data(), L.oc, 0.0f, g + lo, L.oc);
    } else if (it.layer == -1) {
      std::memcpy(g + lo, t->part[0].grad.data() + lo, sizeof(float) * (hi - lo));
      for (int p = 1; p < parts; p++) {
        const float* src = t->part[p].grad.data();
        for (size_t e = lo; e < hi; e++) g[e] += src[e];
      }
    }
    if (kind == 0)
      SgdInPlace(val + lo, g + lo, hi - lo, f[0]);
    else if (kind == 1)
      AdamInPlace(val + lo, g + lo, m + lo, v + lo, hi - lo, f[0], f[1], f[2], f[3], 1.0f - f[4], 1.0f - f[5], f[6], f[7]);
    else
      NadamInPlace(val + lo, g + lo, m + lo, v + lo, hi - lo, f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8]);
  };
  g_pool.Run(static_cast<int>(t->denseItems), [&](int i) { update(t->items[i]); });
  lap(kProfUpdate);
  if (prefix)
    g_pool.Run(parts, [&](int p) { PartBackward(*t, t->part[p], x, SplitPoint(B, parts, p), SplitPoint(B, parts, p + 1)); });
  lap(kProfPartsBwd);
  g_pool.Run(static_cast<int>(t->items.size() - t->denseItems), [&](int i) { update(t->items[t->denseItems + i]); });
  lap(kProfUpdate);
  prof[kProfSteps] += 1;
  double loss = 0;
  int correct = 0;
  for (int i = 0; i < B; i++) loss += t->loss[i], correct += t->correct[i];
  result[0] = loss / B;
  result[1] = correct;
  return Undefined(env);
}
