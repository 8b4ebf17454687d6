// fedkeeper_native: float32 kernels on OpenBLAS for the tfjs wasm backend (loaded by src/ml/native.ts).
//
// Every kernel works in place on the wasm backend's memory: the caller passes the wasm heap (an ArrayBuffer) and
// byte offsets of the tensors in it, with the outputs already allocated. Layouts are tfjs': row-major, NHWC images,
// [fh, fw, ci, co] filters. Nothing here allocates in, or grows, the wasm heap.
//
// The fused training step (train_step.h) trains a whole model per call, its weights and moments on the native heap.
//
// Threads: a small pool (the calling thread plus setThreads(n) - 1 workers). Work is cut into "parts" by a rule that
// depends only on the problem's shape and setParts(p) -- never on the thread count -- and every part is one or more
// single-threaded BLAS calls; reductions across parts are summed in part order. So results are bit-for-bit the same
// run to run and for any thread count.
#include <node_api.h>
#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

extern "C" {
void openblas_set_num_threads(int num_threads);
char* openblas_get_corename(void);
char* openblas_get_config(void);
}

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Thread pool

struct Task {
  std::function<void(int)> fn;
  int parts = 0;
  std::atomic<int> next{0};
  std::atomic<int> done{0};
};

// Poll this long for new work or for the last part before sleeping on a condition variable (a sleeping thread takes
// tens of microseconds to wake, and a training step makes a dozen calls a fraction of a millisecond apart). Polling
// yields the core, so a busy machine loses little to it.
constexpr auto kSpin = std::chrono::microseconds(100);

inline void CpuRelax() { std::this_thread::yield(); }

class Pool {
 public:
  ~Pool() { Resize(1); }

  int Size() const { return static_cast<int>(workers_.size()) + 1; }

  void Resize(int n) {
    if (n < 1) n = 1;
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
    for (int i = 1; i < n; i++) workers_.emplace_back([this] { Loop(); });
  }

  // Runs fn(0..parts-1), each exactly once, on the pool (the caller takes parts too); returns when all are done.
  void Run(int parts, const std::function<void(int)>& fn) {
    if (parts <= 0) return;
    if (parts == 1 || workers_.empty()) {
      for (int i = 0; i < parts; i++) fn(i);
      return;
    }
    auto task = std::make_shared<Task>();
    task->fn = fn;
    task->parts = parts;
    {
      std::lock_guard<std::mutex> l(mu_);
      task_ = task;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    Work(*task);
    const auto until = std::chrono::steady_clock::now() + kSpin;
    while (task->done.load() != task->parts && std::chrono::steady_clock::now() < until) CpuRelax();
    if (task->done.load() != task->parts) {
      std::unique_lock<std::mutex> l(mu_);
      done_cv_.wait(l, [&] { return task->done.load() == task->parts; });
    }
    std::lock_guard<std::mutex> l(mu_);
    task_.reset();
  }

 private:
  void Work(Task& t) {
    for (;;) {
      int i = t.next.fetch_add(1);
      if (i >= t.parts) return;
      t.fn(i);
      if (t.done.fetch_add(1) + 1 == t.parts) {
        { std::lock_guard<std::mutex> l(mu_); }
        done_cv_.notify_all();
      }
    }
  }

  void Loop() {
    uint64_t seen = gen_.load();
    for (;;) {
      const auto until = std::chrono::steady_clock::now() + kSpin;
      while (gen_.load() == seen && !stop_.load() && std::chrono::steady_clock::now() < until) CpuRelax();
      std::shared_ptr<Task> t;
      {
        std::unique_lock<std::mutex> l(mu_);
        cv_.wait(l, [&] { return stop_.load() || gen_.load() != seen; });
        if (stop_.load()) return;
        seen = gen_.load();
        t = task_;
      }
      if (t) Work(*t);
    }
  }

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable done_cv_;
  std::shared_ptr<Task> task_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<bool> stop_{false};
};

Pool g_pool;
int g_parts = 2;  // see setParts
constexpr int kMaxParts = 64;
// Largest im2col scratch per part, in floats (larger batches are processed in sample chunks; shape-only rule).
constexpr size_t kScratchFloats = size_t(1) << 21;
// Below this many flops a kernel is not split (thread hand-off costs ~10 us).
constexpr double kSplitFlops = 2e6;

std::vector<float> g_scratch[kMaxParts];
// Kernels share the pool and the scratch buffers: one call at a time per process (worker_threads included).
std::mutex g_call_mu;
std::vector<float> g_partial[kMaxParts];

float* Scratch(std::vector<float>* v, size_t n) {
  if (v->size() < n) v->resize(n);
  return v->data();
}

inline int PartsFor(int units, double flops) {
  if (flops < kSplitFlops) return 1;
  return std::max(1, std::min(units, g_parts));
}

inline int SplitPoint(int n, int parts, int i) { return static_cast<int>((static_cast<int64_t>(n) * i) / parts); }

inline void Sgemm(bool ta, bool tb, int m, int n, int k, const float* a, int lda, const float* b, int ldb, float beta,
                  float* c, int ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, a, lda, b,
              ldb, beta, c, ldc);
}

// Hot elementwise loops are compiled for AVX2 as well as the baseline (picked at load time). Division and square root
// are exact in every instruction set and contraction into FMA is off (-ffp-contract=off): results do not depend on
// the clone.
#define FK_CLONES __attribute__((target_clones("avx2", "default")))

// ---------------------------------------------------------------------------------------------------------------
// N-API argument helpers

struct Args {
  napi_env env;
  size_t argc = 0;
  napi_value argv[24];
  bool ok = true;

  Args(napi_env e, napi_callback_info info) : env(e) {
    argc = 24;
    napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  }

  void Fail(const char* msg) {
    if (ok) napi_throw_error(env, "FEDKEEPER_NATIVE", msg);
    ok = false;
  }

  double Num(size_t i) {
    double d = 0;
    if (i >= argc || napi_get_value_double(env, argv[i], &d) != napi_ok) Fail("fedkeeper_native: expected a number");
    return d;
  }

  int Int(size_t i) {
    double d = Num(i);
    if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != std::floor(d)) Fail("fedkeeper_native: expected an int32");
    return ok ? static_cast<int>(d) : 0;
  }

  // The bytes of an ArrayBuffer, or of a typed array's view.
  bool Bytes(size_t i, uint8_t** data, size_t* len) {
    if (i >= argc) {
      Fail("fedkeeper_native: missing buffer argument");
      return false;
    }
    bool is = false;
    napi_is_arraybuffer(env, argv[i], &is);
    if (is) {
      void* d = nullptr;
      napi_get_arraybuffer_info(env, argv[i], &d, len);
      *data = static_cast<uint8_t*>(d);
      return true;
    }
    napi_is_typedarray(env, argv[i], &is);
    if (is) {
      napi_typedarray_type type;
      size_t length = 0;
      void* d = nullptr;
      napi_value ab;
      size_t off = 0;
      napi_get_typedarray_info(env, argv[i], &type, &length, &d, &ab, &off);
      size_t elem = (type == napi_float32_array || type == napi_int32_array || type == napi_uint32_array) ? 4
                    : (type == napi_float64_array)                                                        ? 8
                                                                                                          : 1;
      *data = static_cast<uint8_t*>(d);
      *len = length * elem;
      return true;
    }
    Fail("fedkeeper_native: expected an ArrayBuffer or a typed array");
    return false;
  }

  // count floats at byte offset `off` of a heap (bounds- and alignment-checked; nullptr after Fail).
  float* At(uint8_t* heap, size_t len, double off, size_t count) {
    if (!ok) return nullptr;
    if (!(off >= 0) || off != std::floor(off) || static_cast<uint64_t>(off) % 4 != 0 ||
        static_cast<uint64_t>(off) + count * 4 > len) {
      Fail("fedkeeper_native: tensor out of the heap's bounds");
      return nullptr;
    }
    return reinterpret_cast<float*>(heap + static_cast<uint64_t>(off));
  }

  float* Floats(size_t i, size_t count) {
    uint8_t* d = nullptr;
    size_t len = 0;
    if (!Bytes(i, &d, &len)) return nullptr;
    return At(d, len, 0, count);
  }
};

napi_value Undefined(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

// ---------------------------------------------------------------------------------------------------------------
// Convolution helpers (NHWC, dilation 1, any stride, any top/left padding; out-of-image taps read zero)

struct ConvDims {
  int B, H, W, Ci, fh, fw, Co, oh, ow, sh, sw, pt, pl;
  int K() const { return fh * fw * Ci; }
  bool Valid() const {
    return B > 0 && H > 0 && W > 0 && Ci > 0 && fh > 0 && fw > 0 && Co > 0 && oh > 0 && ow > 0 && sh > 0 && sw > 0 &&
           pt >= 0 && pl >= 0 && pt < fh && pl < fw;
  }
  // 1x1 filter, stride 1, no padding, same size: the input already is the im2col matrix.
  bool Pointwise() const { return fh == 1 && fw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && oh == H && ow == W; }
  int ChunkSamples() const {
    size_t per = static_cast<size_t>(oh) * ow * K();
    return static_cast<int>(std::max<size_t>(1, kScratchFloats / std::max<size_t>(1, per)));
  }
};

ConvDims ReadConvDims(Args& a, size_t i) {
  ConvDims d;
  int* f[] = {&d.B, &d.H, &d.W, &d.Ci, &d.fh, &d.fw, &d.Co, &d.oh, &d.ow, &d.sh, &d.sw, &d.pt, &d.pl};
  for (size_t j = 0; j < 13; j++) *f[j] = a.Int(i + j);
  if (a.ok && !d.Valid()) a.Fail("fedkeeper_native: invalid convolution dimensions");
  return d;
}

// cols[(b*oh + oy)*ow + ox][(kh*fw + kw)*Ci + c] = x[b, oy*sh + kh - pt, ox*sw + kw - pl, c] (0 outside the image)
void Im2Col(const ConvDims& d, const float* x, int nb, float* cols) {
  const int K = d.K();
  const size_t rowIn = static_cast<size_t>(d.W) * d.Ci;
  for (int b = 0; b < nb; b++) {
    const float* xb = x + static_cast<size_t>(b) * d.H * rowIn;
    for (int oy = 0; oy < d.oh; oy++) {
      for (int ox = 0; ox < d.ow; ox++) {
        float* row = cols + (static_cast<size_t>(b * d.oh + oy) * d.ow + ox) * K;
        const int ix0 = ox * d.sw - d.pl;
        // kw range whose ix is inside the image
        const int kwLo = std::max(0, -ix0);
        const int kwHi = d.sw == 1 ? std::min(d.fw, d.W - ix0) : d.fw;
        for (int kh = 0; kh < d.fh; kh++) {
          float* dst = row + static_cast<size_t>(kh) * d.fw * d.Ci;
          const int iy = oy * d.sh + kh - d.pt;
          if (iy < 0 || iy >= d.H) {
            std::memset(dst, 0, sizeof(float) * d.fw * d.Ci);
            continue;
          }
          const float* src = xb + static_cast<size_t>(iy) * rowIn;
          if (d.sw == 1) {
            if (kwLo > 0) std::memset(dst, 0, sizeof(float) * kwLo * d.Ci);
            if (kwHi > kwLo)
              std::memcpy(dst + static_cast<size_t>(kwLo) * d.Ci, src + static_cast<size_t>(ix0 + kwLo) * d.Ci,
                          sizeof(float) * (kwHi - kwLo) * d.Ci);
            const int from = std::max(kwHi, kwLo);
            if (from < d.fw) std::memset(dst + static_cast<size_t>(from) * d.Ci, 0, sizeof(float) * (d.fw - from) * d.Ci);
          } else {
            for (int kw = 0; kw < d.fw; kw++) {
              const int ix = ix0 + kw;
              if (ix < 0 || ix >= d.W)
                std::memset(dst + static_cast<size_t>(kw) * d.Ci, 0, sizeof(float) * d.Ci);
              else
                std::memcpy(dst + static_cast<size_t>(kw) * d.Ci, src + static_cast<size_t>(ix) * d.Ci, sizeof(float) * d.Ci);
            }
          }
        }
      }
    }
  }
}

// dx[b, iy, ix, c] += cols[...] for every tap that read it (dx must be zeroed by the caller). Fixed order.
void Col2ImAdd(const ConvDims& d, const float* cols, int nb, float* dx) {
  const int K = d.K();
  const size_t rowIn = static_cast<size_t>(d.W) * d.Ci;
  for (int b = 0; b < nb; b++) {
    float* xb = dx + static_cast<size_t>(b) * d.H * rowIn;
    for (int oy = 0; oy < d.oh; oy++) {
      for (int ox = 0; ox < d.ow; ox++) {
        const float* row = cols + (static_cast<size_t>(b * d.oh + oy) * d.ow + ox) * K;
        const int ix0 = ox * d.sw - d.pl;
        for (int kh = 0; kh < d.fh; kh++) {
          const int iy = oy * d.sh + kh - d.pt;
          if (iy < 0 || iy >= d.H) continue;
          const float* src = row + static_cast<size_t>(kh) * d.fw * d.Ci;
          float* dst = xb + static_cast<size_t>(iy) * rowIn;
          if (d.sw == 1) {
            const int kwLo = std::max(0, -ix0);
            const int kwHi = std::min(d.fw, d.W - ix0);
            if (kwHi <= kwLo) continue;
            float* o = dst + static_cast<size_t>(ix0 + kwLo) * d.Ci;
            const float* s = src + static_cast<size_t>(kwLo) * d.Ci;
            const int n = (kwHi - kwLo) * d.Ci;
            for (int j = 0; j < n; j++) o[j] += s[j];
          } else {
            for (int kw = 0; kw < d.fw; kw++) {
              const int ix = ix0 + kw;
              if (ix < 0 || ix >= d.W) continue;
              float* o = dst + static_cast<size_t>(ix) * d.Ci;
              const float* s = src + static_cast<size_t>(kw) * d.Ci;
              for (int c = 0; c < d.Ci; c++) o[c] += s[c];
            }
          }
        }
      }
    }
  }
}

// rows x n block: out[r][j] += bias[j] (if bias), then relu (act == 1).
void BiasAct(float* out, int rows, int n, int ld, const float* bias, int act) {
  if (!bias && act == 0) return;
  for (int r = 0; r < rows; r++) {
    float* o = out + static_cast<size_t>(r) * ld;
    if (bias)
      for (int j = 0; j < n; j++) o[j] += bias[j];
    if (act == 1)
      for (int j = 0; j < n; j++) o[j] = o[j] < 0.0f ? 0.0f : o[j];
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Kernels

// conv2d(heap, xOff, wOff, yOff, biasOff (-1: none), act (0 linear, 1 relu), B,H,W,Ci, fh,fw,Co, oh,ow, sh,sw, pt,pl)
napi_value Conv2D(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  const double biasOff = a.Num(4);
  const int act = a.Int(5);
  const ConvDims d = ReadConvDims(a, 6);
  if (!a.ok) return nullptr;
  const int K = d.K();
  const float* x = a.At(heap, len, a.Num(1), static_cast<size_t>(d.B) * d.H * d.W * d.Ci);
  const float* w = a.At(heap, len, a.Num(2), static_cast<size_t>(K) * d.Co);
  float* y = a.At(heap, len, a.Num(3), static_cast<size_t>(d.B) * d.oh * d.ow * d.Co);
  const float* bias = biasOff >= 0 ? a.At(heap, len, biasOff, d.Co) : nullptr;
  if (!a.ok) return nullptr;
  const size_t rowsPer = static_cast<size_t>(d.oh) * d.ow;
  const int parts = PartsFor(d.B, 2.0 * d.B * rowsPer * K * d.Co);
  const int chunk = d.ChunkSamples();
  g_pool.Run(parts, [&](int p) {
    const int b0 = SplitPoint(d.B, parts, p), b1 = SplitPoint(d.B, parts, p + 1);
    for (int c0 = b0; c0 < b1; c0 += chunk) {
      const int nb = std::min(chunk, b1 - c0);
      const int rows = static_cast<int>(nb * rowsPer);
      const float* cols;
      if (d.Pointwise()) {
        cols = x + static_cast<size_t>(c0) * rowsPer * K;
      } else {
        float* s = Scratch(&g_scratch[p], static_cast<size_t>(rows) * K);
        Im2Col(d, x + static_cast<size_t>(c0) * d.H * d.W * d.Ci, nb, s);
        cols = s;
      }
      float* out = y + static_cast<size_t>(c0) * rowsPer * d.Co;
      Sgemm(false, false, rows, d.Co, K, cols, K, w, d.Co, 0.0f, out, d.Co);
      BiasAct(out, rows, d.Co, d.Co, bias, act);
    }
  });
  return Undefined(env);
}

// conv2dBackpropInput(heap, dyOff, wOff, dxOff, B,H,W,Ci, fh,fw,Co, oh,ow, sh,sw, pt,pl)
napi_value Conv2DBackpropInput(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  const ConvDims d = ReadConvDims(a, 4);
  if (!a.ok) return nullptr;
  const int K = d.K();
  const float* dy = a.At(heap, len, a.Num(1), static_cast<size_t>(d.B) * d.oh * d.ow * d.Co);
  const float* w = a.At(heap, len, a.Num(2), static_cast<size_t>(K) * d.Co);
  float* dx = a.At(heap, len, a.Num(3), static_cast<size_t>(d.B) * d.H * d.W * d.Ci);
  if (!a.ok) return nullptr;
  const size_t rowsPer = static_cast<size_t>(d.oh) * d.ow;
  const size_t imgIn = static_cast<size_t>(d.H) * d.W * d.Ci;
  const int parts = PartsFor(d.B, 2.0 * d.B * rowsPer * K * d.Co);
  const int chunk = d.ChunkSamples();
  g_pool.Run(parts, [&](int p) {
    const int b0 = SplitPoint(d.B, parts, p), b1 = SplitPoint(d.B, parts, p + 1);
    for (int c0 = b0; c0 < b1; c0 += chunk) {
      const int nb = std::min(chunk, b1 - c0);
      const int rows = static_cast<int>(nb * rowsPer);
      const float* dyc = dy + static_cast<size_t>(c0) * rowsPer * d.Co;
      float* dxc = dx + static_cast<size_t>(c0) * imgIn;
      if (d.Pointwise()) {  // dx = dy . W^T directly
        Sgemm(false, true, rows, K, d.Co, dyc, d.Co, w, d.Co, 0.0f, dxc, K);
        continue;
      }
      float* cols = Scratch(&g_scratch[p], static_cast<size_t>(rows) * K);
      Sgemm(false, true, rows, K, d.Co, dyc, d.Co, w, d.Co, 0.0f, cols, K);
      std::memset(dxc, 0, sizeof(float) * nb * imgIn);
      Col2ImAdd(d, cols, nb, dxc);
    }
  });
  return Undefined(env);
}

// conv2dBackpropFilter(heap, xOff, dyOff, dwOff, B,H,W,Ci, fh,fw,Co, oh,ow, sh,sw, pt,pl)
napi_value Conv2DBackpropFilter(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  const ConvDims d = ReadConvDims(a, 4);
  if (!a.ok) return nullptr;
  const int K = d.K();
  const float* x = a.At(heap, len, a.Num(1), static_cast<size_t>(d.B) * d.H * d.W * d.Ci);
  const float* dy = a.At(heap, len, a.Num(2), static_cast<size_t>(d.B) * d.oh * d.ow * d.Co);
  float* dw = a.At(heap, len, a.Num(3), static_cast<size_t>(K) * d.Co);
  if (!a.ok) return nullptr;
  const size_t rowsPer = static_cast<size_t>(d.oh) * d.ow;
  const size_t wSize = static_cast<size_t>(K) * d.Co;
  const int parts = PartsFor(d.B, 2.0 * d.B * rowsPer * K * d.Co);
  const int chunk = d.ChunkSamples();
  g_pool.Run(parts, [&](int p) {
    const int b0 = SplitPoint(d.B, parts, p), b1 = SplitPoint(d.B, parts, p + 1);
    float* acc = parts == 1 ? dw : Scratch(&g_partial[p], wSize);
    bool first = true;
    for (int c0 = b0; c0 < b1; c0 += chunk) {
      const int nb = std::min(chunk, b1 - c0);
      const int rows = static_cast<int>(nb * rowsPer);
      const float* cols;
      if (d.Pointwise()) {
        cols = x + static_cast<size_t>(c0) * rowsPer * K;
      } else {
        float* s = Scratch(&g_scratch[p], static_cast<size_t>(rows) * K);
        Im2Col(d, x + static_cast<size_t>(c0) * d.H * d.W * d.Ci, nb, s);
        cols = s;
      }
      Sgemm(true, false, K, d.Co, rows, cols, K, dy + static_cast<size_t>(c0) * rowsPer * d.Co, d.Co,
            first ? 0.0f : 1.0f, acc, d.Co);
      first = false;
    }
  });
  if (parts > 1) {
    // dw = partial[0] + partial[1] + ... in part order (element ranges split over the pool: order per element fixed)
    const int sumParts = static_cast<int>(std::min<size_t>(kMaxParts, std::max<size_t>(1, wSize / 16384)));
    g_pool.Run(sumParts, [&](int s) {
      const size_t e0 = wSize * s / sumParts, e1 = wSize * (s + 1) / sumParts;
      std::memcpy(dw + e0, g_partial[0].data() + e0, sizeof(float) * (e1 - e0));
      for (int p = 1; p < parts; p++) {
        const float* src = g_partial[p].data();
        for (size_t e = e0; e < e1; e++) dw[e] += src[e];
      }
    });
  }
  return Undefined(env);
}

// batchMatMul(heap, aOff, bOff, cOff, batchA, batchB, M, N, K, transposeA, transposeB, biasOff (-1: none), act)
// a: [batchA, M, K] ([batchA, K, M] if transposeA), b: [batchB, K, N] ([batchB, N, K] if transposeB),
// c: [max(batchA, batchB), M, N]; a batch of 1 broadcasts. bias: [N].
napi_value BatchMatMul(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  const int batchA = a.Int(4), batchB = a.Int(5), M = a.Int(6), N = a.Int(7), K = a.Int(8);
  const bool ta = a.Int(9) != 0, tb = a.Int(10) != 0;
  const double biasOff = a.Num(11);
  const int act = a.Int(12);
  if (!a.ok) return nullptr;
  if (batchA < 1 || batchB < 1 || M < 1 || N < 1 || K < 1 || (batchA != batchB && batchA != 1 && batchB != 1)) {
    a.Fail("fedkeeper_native: invalid matmul dimensions");
    return nullptr;
  }
  const int batch = std::max(batchA, batchB);
  const float* A = a.At(heap, len, a.Num(1), static_cast<size_t>(batchA) * M * K);
  const float* Bm = a.At(heap, len, a.Num(2), static_cast<size_t>(batchB) * K * N);
  float* C = a.At(heap, len, a.Num(3), static_cast<size_t>(batch) * M * N);
  const float* bias = biasOff >= 0 ? a.At(heap, len, biasOff, N) : nullptr;
  if (!a.ok) return nullptr;
  const int lda = ta ? M : K, ldb = tb ? K : N;
  const size_t sa = batchA == 1 ? 0 : static_cast<size_t>(M) * K, sb = batchB == 1 ? 0 : static_cast<size_t>(K) * N;
  const size_t sc = static_cast<size_t>(M) * N;
  const double flops = 2.0 * batch * M * N * K;
  if (batch > 1) {
    const int parts = PartsFor(batch, flops);
    g_pool.Run(parts, [&](int p) {
      for (int i = SplitPoint(batch, parts, p); i < SplitPoint(batch, parts, p + 1); i++) {
        Sgemm(ta, tb, M, N, K, A + i * sa, lda, Bm + i * sb, ldb, 0.0f, C + i * sc, N);
        BiasAct(C + i * sc, M, N, N, bias, act);
      }
    });
    return Undefined(env);
  }
  // One product: split the longer of the output's two sides into blocks (multiples of 16 where possible).
  const bool byRows = M >= N;
  const int side = byRows ? M : N;
  const int units = std::max(1, side / 16);
  const int parts = PartsFor(units, flops);
  g_pool.Run(parts, [&](int p) {
    int lo = SplitPoint(units, parts, p) * 16, hi = SplitPoint(units, parts, p + 1) * 16;
    if (p == parts - 1) hi = side;
    if (parts == 1) lo = 0;
    if (hi <= lo) return;
    if (byRows) {
      const float* Ap = ta ? A + lo : A + static_cast<size_t>(lo) * lda;
      float* Cp = C + static_cast<size_t>(lo) * N;
      Sgemm(ta, tb, hi - lo, N, K, Ap, lda, Bm, ldb, 0.0f, Cp, N);
      BiasAct(Cp, hi - lo, N, N, bias, act);
    } else {
      const float* Bp = tb ? Bm + static_cast<size_t>(lo) * ldb : Bm + lo;
      Sgemm(ta, tb, M, hi - lo, K, A, lda, Bp, ldb, 0.0f, C + lo, N);
      BiasAct(C + lo, M, hi - lo, N, bias ? bias + lo : nullptr, act);
    }
  });
  return Undefined(env);
}

// One window tap over all channels: keep the first strictly greater value and its position (branch-free).
FK_CLONES void MaxScan(const float* __restrict xp, float* __restrict best, int32_t* __restrict pos, int C, int32_t base) {
  for (int c = 0; c < C; c++) {
    const float v = xp[c];
    const bool gt = v > best[c];
    best[c] = gt ? v : best[c];
    pos[c] = gt ? base + c : pos[c];
  }
}

// maxPoolGrad(heap, xOff, dyOff, dxOff, B,H,W,C, oh,ow, fh,fw, sh,sw, pt,pl)
// dx[argmax of each window] += dy[window]; argmax = first strictly greater value in row-major window order, as
// tfjs' reference kernel (a window with no value > -inf passes no gradient).
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  int v[12];
  for (int i = 0; i < 12; i++) v[i] = a.Int(4 + i);
  if (!a.ok) return nullptr;
  const int B = v[0], H = v[1], W = v[2], C = v[3], oh = v[4], ow = v[5], fh = v[6], fw = v[7], sh = v[8], sw = v[9],
            pt = v[10], pl = v[11];
  if (B < 1 || H < 1 || W < 1 || C < 1 || oh < 1 || ow < 1 || fh < 1 || fw < 1 || sh < 1 || sw < 1 || pt < 0 || pl < 0 ||
      static_cast<int64_t>(H) * W * C >= (int64_t(1) << 31)) {
    a.Fail("fedkeeper_native: invalid pooling dimensions");
    return nullptr;
  }
  const size_t img = static_cast<size_t>(H) * W * C;
  const float* x = a.At(heap, len, a.Num(1), B * img);
  const float* dy = a.At(heap, len, a.Num(2), static_cast<size_t>(B) * oh * ow * C);
  float* dx = a.At(heap, len, a.Num(3), B * img);
  if (!a.ok) return nullptr;
  const int parts = PartsFor(B, 8.0 * B * img);
  g_pool.Run(parts, [&](int p) {
    const int b0 = SplitPoint(B, parts, p), b1 = SplitPoint(B, parts, p + 1);
    std::vector<float> best(C);
    std::vector<int32_t> pos(C);
    std::memset(dx + b0 * img, 0, sizeof(float) * (b1 - b0) * img);
    for (int b = b0; b < b1; b++) {
      const float* xb = x + b * img;
      float* dxb = dx + b * img;
      for (int oy = 0; oy < oh; oy++) {
        for (int ox = 0; ox < ow; ox++) {
          std::fill(best.begin(), best.end(), -std::numeric_limits<float>::infinity());
          std::fill(pos.begin(), pos.end(), -1);
          for (int wr = 0; wr < fh; wr++) {
            const int iy = oy * sh + wr - pt;
            if (iy < 0 || iy >= H) continue;
            for (int wc = 0; wc < fw; wc++) {
              const int ix = ox * sw + wc - pl;
              if (ix < 0 || ix >= W) continue;
              const int32_t base = (iy * W + ix) * C;
              MaxScan(xb + base, best.data(), pos.data(), C, base);
            }
          }
          const float* dyp = dy + ((static_cast<size_t>(b) * oh + oy) * ow + ox) * C;
          for (int c = 0; c < C; c++)
            if (pos[c] >= 0) dxb[pos[c]] += dyp[c];
        }
      }
    }
  });
  return Undefined(env);
}

FK_CLONES void ColumnSums(const float* __restrict x, size_t rows, size_t width, size_t ld, double* __restrict acc) {
  for (size_t r = 0; r < rows; r++) {
    const float* row = x + r * ld;
    for (size_t j = 0; j < width; j++) acc[j] += static_cast<double>(row[j]);
  }
}

// sumLeading(heap, xOff, outOff, rows, inner): out[j] = sum over r of x[r*inner + j], accumulated in double in row
// order (a reduction over the leading axes: bias gradients).
napi_value SumLeading(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  const double rowsD = a.Num(3), innerD = a.Num(4);
  if (!a.ok) return nullptr;
  if (!(rowsD >= 1 && innerD >= 1) || rowsD != std::floor(rowsD) || innerD != std::floor(innerD)) {
    a.Fail("fedkeeper_native: invalid reduction dimensions");
    return nullptr;
  }
  const size_t rows = static_cast<size_t>(rowsD), inner = static_cast<size_t>(innerD);
  const float* x = a.At(heap, len, a.Num(1), rows * inner);
  float* out = a.At(heap, len, a.Num(2), inner);
  if (!a.ok) return nullptr;
  // Columns split over parts (each column is summed whole, in row order, by one thread).
  const int units = static_cast<int>(std::min<size_t>(inner / 64, kMaxParts));
  const int parts = PartsFor(std::max(1, units), 4.0 * rows * inner);
  g_pool.Run(parts, [&](int p) {
    const size_t j0 = inner * p / parts, j1 = inner * (p + 1) / parts;
    std::vector<double> acc(j1 - j0, 0.0);
    ColumnSums(x + j0, rows, j1 - j0, inner, acc.data());
    for (size_t j = j0; j < j1; j++) out[j] = static_cast<float>(acc[j - j0]);
  });
  return Undefined(env);
}

// ---------------------------------------------------------------------------------------------------------------
// Optimizer updates, float32 op for op as tfjs' own (so bit-identical to them). The new value goes to a fresh buffer
// (out, distinct from value): wasm caches XNNPACK operators by tensor, so a variable's buffer must not change under
// the same tensor. The moments (plain Float32Arrays) are updated in place.


FK_CLONES void AdamRange(const float* __restrict val, const float* __restrict g, float* __restrict out,
                         float* __restrict m, float* __restrict v, size_t n, float b1, float ob1, float b2, float ob2,
                         float omab1, float omab2, float eps, float negLr) {
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
    out[i] = q * negLr + val[i];
  }
}

FK_CLONES void NadamRange(const float* __restrict val, const float* __restrict g, float* __restrict out,
                          float* __restrict m, float* __restrict v, size_t n, float b1, float ob1, float b2, float ob2,
                          float cG, float cM, float vDenom, float eps, float lr) {
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
    out[i] = val[i] - step;
  }
}

FK_CLONES void SgdRange(const float* __restrict val, const float* __restrict g, float* __restrict out, size_t n,
                        float negLr) {
  for (size_t i = 0; i < n; i++) out[i] = negLr * g[i] + val[i];
}

template <class F>
void Elementwise(size_t n, F f) {
  const int parts = n < (size_t(1) << 16) ? 1 : std::min(g_pool.Size(), static_cast<int>(n >> 15));
  g_pool.Run(parts, [&](int p) { f(n * p / parts, n * (p + 1) / parts); });
}

// (heap, valueOff, gradOff, outOff, n, ...): the three float buffers of an update; out must not overlap the others.
bool UpdateBuffers(Args& a, uint8_t* heap, size_t len, size_t* n, const float** val, const float** g, float** out) {
  const double nd = a.Num(4);
  if (!a.ok) return false;
  if (!(nd >= 1) || nd != std::floor(nd)) {
    a.Fail("fedkeeper_native: invalid update size");
    return false;
  }
  *n = static_cast<size_t>(nd);
  const double vo = a.Num(1), go = a.Num(2), oo = a.Num(3);
  *val = a.At(heap, len, vo, *n);
  *g = a.At(heap, len, go, *n);
  *out = a.At(heap, len, oo, *n);
  if (!a.ok) return false;
  const double bytes = 4.0 * static_cast<double>(*n);
  if (std::abs(oo - vo) < bytes || std::abs(oo - go) < bytes) {
    a.Fail("fedkeeper_native: an update's output overlaps its inputs");
    return false;
  }
  return true;
}

// adam(heap, valueOff, gradOff, outOff, n, m: Float32Array, v: Float32Array, beta1, 1-beta1, beta2, 1-beta2,
//      accBeta1, accBeta2, epsilon, -lr)   -- tf.train.adam's applyGradients
napi_value Adam(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  size_t n = 0;
  const float *val, *g;
  float* out;
  if (!UpdateBuffers(a, heap, len, &n, &val, &g, &out)) return nullptr;
  float* m = a.Floats(5, n);
  float* v = a.Floats(6, n);
  const float b1 = static_cast<float>(a.Num(7)), ob1 = static_cast<float>(a.Num(8));
  const float b2 = static_cast<float>(a.Num(9)), ob2 = static_cast<float>(a.Num(10));
  const float acc1 = static_cast<float>(a.Num(11)), acc2 = static_cast<float>(a.Num(12));
  const float eps = static_cast<float>(a.Num(13)), negLr = static_cast<float>(a.Num(14));
  if (!a.ok) return nullptr;
  const float omab1 = 1.0f - acc1, omab2 = 1.0f - acc2;
  Elementwise(n, [&](size_t lo, size_t hi) {
    AdamRange(val + lo, g + lo, out + lo, m + lo, v + lo, hi - lo, b1, ob1, b2, ob2, omab1, omab2, eps, negLr);
  });
  return Undefined(env);
}

// nadam(heap, valueOff, gradOff, outOff, n, m, v, beta1, 1-beta1, beta2, 1-beta2, cG, cM, vDenom, epsilon, lr)
// -- src/ml/nadam.ts
napi_value Nadam(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  size_t n = 0;
  const float *val, *g;
  float* out;
  if (!UpdateBuffers(a, heap, len, &n, &val, &g, &out)) return nullptr;
  float* m = a.Floats(5, n);
  float* v = a.Floats(6, n);
  const float b1 = static_cast<float>(a.Num(7)), ob1 = static_cast<float>(a.Num(8));
  const float b2 = static_cast<float>(a.Num(9)), ob2 = static_cast<float>(a.Num(10));
  const float cG = static_cast<float>(a.Num(11)), cM = static_cast<float>(a.Num(12));
  const float vDenom = static_cast<float>(a.Num(13)), eps = static_cast<float>(a.Num(14));
  const float lr = static_cast<float>(a.Num(15));
  if (!a.ok) return nullptr;
  Elementwise(n, [&](size_t lo, size_t hi) {
    NadamRange(val + lo, g + lo, out + lo, m + lo, v + lo, hi - lo, b1, ob1, b2, ob2, cG, cM, vDenom, eps, lr);
  });
  return Undefined(env);
}

// sgd(heap, valueOff, gradOff, outOff, n, -lr)  -- tf.train.sgd: value = (-lr) * g + value
napi_value Sgd(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  uint8_t* heap = nullptr;
  size_t len = 0;
  if (!a.Bytes(0, &heap, &len)) return nullptr;
  size_t n = 0;
  const float *val, *g;
  float* out;
  if (!UpdateBuffers(a, heap, len, &n, &val, &g, &out)) return nullptr;
  const float negLr = static_cast<float>(a.Num(5));
  if (!a.ok) return nullptr;
  Elementwise(n, [&](size_t lo, size_t hi) { SgdRange(val + lo, g + lo, out + lo, hi - lo, negLr); });
  return Undefined(env);
}

// ---------------------------------------------------------------------------------------------------------------
// Fused training step

#include "train_api.h"

// ---------------------------------------------------------------------------------------------------------------
// Configuration and measurement

napi_value SetThreads(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  const int n = a.Int(0);
  if (!a.ok) return nullptr;
  g_pool.Resize(std::max(1, std::min(n, kMaxParts)));
  return Undefined(env);
}

napi_value SetParts(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  const int n = a.Int(0);
  if (!a.ok) return nullptr;
  g_parts = std::max(1, std::min(n, kMaxParts));
  return Undefined(env);
}

napi_value SetString(napi_env env, napi_value obj, const char* key, const char* value) {
  napi_value s;
  napi_create_string_utf8(env, value ? value : "", NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, obj, key, s);
  return obj;
}

napi_value SetInt(napi_env env, napi_value obj, const char* key, int value) {
  napi_value s;
  napi_create_int32(env, value, &s);
  napi_set_named_property(env, obj, key, s);
  return obj;
}

// info() -> { corename, config, threads, parts }
napi_value Info(napi_env env, napi_callback_info info) {
  napi_value o;
  napi_create_object(env, &o);
  SetString(env, o, "corename", openblas_get_corename());
  SetString(env, o, "config", openblas_get_config());
  SetInt(env, o, "threads", g_pool.Size());
  SetInt(env, o, "parts", g_parts);
  return o;
}

// sgemmSeconds(n, reps, split) -> seconds for reps products of two n x n matrices (row blocks split `split` ways
// over the pool, single-threaded BLAS per block): the machine's BLAS speed as these kernels use it.
napi_value SgemmSeconds(napi_env env, napi_callback_info info) {
  std::lock_guard<std::mutex> call(g_call_mu);
  Args a(env, info);
  const int n = a.Int(0), reps = a.Int(1), split = a.Int(2);
  if (!a.ok) return nullptr;
  if (n < 1 || reps < 1 || split < 1) {
    a.Fail("fedkeeper_native: invalid sgemm benchmark arguments");
    return nullptr;
  }
  std::vector<float> A(static_cast<size_t>(n) * n), B(A.size()), C(A.size());
  for (size_t i = 0; i < A.size(); i++) {
    A[i] = static_cast<float>((i * 7919) % 1000) / 1000.0f - 0.5f;
    B[i] = static_cast<float>((i * 104729) % 1000) / 1000.0f - 0.5f;
  }
  const int parts = std::min(split, n);
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 0; r < reps; r++) {
    g_pool.Run(parts, [&](int p) {
      const int lo = SplitPoint(n, parts, p), hi = SplitPoint(n, parts, p + 1);
      Sgemm(false, false, hi - lo, n, n, A.data() + static_cast<size_t>(lo) * n, n, B.data(), n, 0.0f,
            C.data() + static_cast<size_t>(lo) * n, n);
    });
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  napi_value out;
  napi_create_double(env, s, &out);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  // Our own threads split the work; each BLAS call stays on its thread.
  openblas_set_num_threads(1);
  struct Fn {
    const char* name;
    napi_callback cb;
  } fns[] = {
      {"conv2d", Conv2D},
      {"conv2dBackpropInput", Conv2DBackpropInput},
      {"conv2dBackpropFilter", Conv2DBackpropFilter},
      {"batchMatMul", BatchMatMul},
      {"maxPoolGrad", MaxPoolGrad},
      {"sumLeading", SumLeading},
      {"adam", Adam},
      {"nadam", Nadam},
      {"sgd", Sgd},
      {"trainerCreate", TrainerCreate},
      {"trainerParams", TrainerParams},
      {"trainerStart", TrainerStart},
      {"trainerWeights", TrainerWeights},
      {"trainerStep", TrainerStep},
      {"trainerDispose", TrainerDispose},
      {"trainerProfile", TrainerProfile},
      {"setThreads", SetThreads},
      {"setParts", SetParts},
      {"info", Info},
      {"sgemmSeconds", SgemmSeconds},
  };
  for (const auto& f : fns) {
    napi_value fn;
    napi_create_function(env, f.name, NAPI_AUTO_LENGTH, f.cb, nullptr, &fn);
    napi_set_named_property(env, exports, f.name, fn);
  }
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
