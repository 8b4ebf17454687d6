// The fused training step's N-API functions (trainerCreate, trainerStep, ...; see src/ml/native.ts): argument
// checks, the trainer's lifetime, and a step's phases in order (train_step.h). Included once, by
// fedkeeper_native.cc, inside its namespace.

#include "train_step.h"

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
