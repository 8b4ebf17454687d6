// The layers of the fused training step (train_step.h) and their kernels that are not products: direct
// convolution for few taps, max-pool forward and backward keeping the argmax, the optimizers' in-place updates.
// Included by train_step.h, inside fedkeeper_native.cc's namespace (it uses that file's FK_CLONES and MaxScan).

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
