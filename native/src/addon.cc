// N-API surface of the native compute addon. Every function works on caller-owned Float32Arrays (the
// tfjs 'cpu' backend's own buffers): inputs are read in place and outputs written in place, so nothing
// is copied between JavaScript and C++. Shapes come as plain numbers; buffer sizes are checked here so
// a wrong call throws a JavaScript error instead of corrupting memory.
#include <dnnl.h>
#include <omp.h>
#include <xmmintrin.h>

#include <sys/mman.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <napi.h>
#include <string>
#include <type_traits>
#include <vector>

#include "batchnorm.h"
#include "conv.h"
#include "dense.h"
#include "phase_timer.h"
#include "pointwise.h"
#include "signal_guard.h"
#include "sgd.h"
#include "sparse_conv.h"

namespace {

using namespace cigl;

int64_t Int(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a number");
  return info[i].As<Napi::Number>().Int64Value();
}

double Real(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a number");
  return info[i].As<Napi::Number>().DoubleValue();
}

bool Bool(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (!info[i].IsBoolean()) throw Napi::TypeError::New(info.Env(), std::string("argument '") + name + "' must be a boolean");
  return info[i].As<Napi::Boolean>().Value();
}

// A typed array value of element type T (napi type `type`, named `typeName`) holding at least `size` elements.
template <class T, class Array>
T* TypedOf(Napi::Env env, const Napi::Value& value, napi_typedarray_type type, const char* typeName, const std::string& name, int64_t size) {
  if (!value.IsTypedArray() || value.As<Napi::TypedArray>().TypedArrayType() != type)
    throw Napi::TypeError::New(env, "argument '" + name + "' must be a " + typeName);
  auto array = value.As<Array>();
  if (static_cast<int64_t>(array.ElementLength()) < size)
    throw Napi::RangeError::New(env, "argument '" + name + "' has " + std::to_string(array.ElementLength()) + " elements, expected " + std::to_string(size));
  return array.Data();
}

// A Float32Array argument holding at least `size` elements.
float* F32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t size) {
  return TypedOf<float, Napi::Float32Array>(info.Env(), info[i], napi_float32_array, "Float32Array", name, size);
}

const int32_t* I32(const Napi::CallbackInfo& info, size_t i, const char* name, int64_t size) {
  return TypedOf<int32_t, Napi::Int32Array>(info.Env(), info[i], napi_int32_array, "Int32Array", name, size);
}

// Geometry as an array of 15 numbers: batch, inHeight, inWidth, inChannels, outChannels, kernelHeight,
// kernelWidth, strideHeight, strideWidth, outHeight, outWidth, padTop, padLeft, padBottom, padRight.
ConvGeometry GeometryOf(Napi::Env env, const Napi::Value& value) {
  if (!value.IsArray()) throw Napi::TypeError::New(env, "argument 'geometry' must be an array of 15 numbers");
  auto a = value.As<Napi::Array>();
  if (a.Length() != 15) throw Napi::TypeError::New(env, "argument 'geometry' must be an array of 15 numbers");
  int64_t v[15];
  for (uint32_t k = 0; k < 15; k++) {
    Napi::Value e = a.Get(k);
    if (!e.IsNumber()) throw Napi::TypeError::New(env, "argument 'geometry' must be an array of 15 numbers");
    v[k] = e.As<Napi::Number>().Int64Value();
    if (v[k] < 0 || (k < 11 && v[k] == 0)) throw Napi::RangeError::New(env, "convolution geometry entry " + std::to_string(k) + " is invalid");
  }
  return ConvGeometry{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10], v[11], v[12], v[13], v[14]};
}

ConvGeometry Geometry(const Napi::CallbackInfo& info, size_t i) { return GeometryOf(info.Env(), info[i]); }

int64_t inSize(const ConvGeometry& g) { return g.batch * g.inHeight * g.inWidth * g.inChannels; }
int64_t outSize(const ConvGeometry& g) { return g.batch * g.outHeight * g.outWidth * g.outChannels; }
// A 2×2 max pool of the output (stride 2, odd last row and column dropped).
int64_t pooledOutSize(const ConvGeometry& g) { return g.batch * (g.outHeight / 2) * (g.outWidth / 2) * g.outChannels; }
int64_t filterSize(const ConvGeometry& g) { return g.kernelHeight * g.kernelWidth * g.inChannels * g.outChannels; }

Napi::Value ConvForward(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  convForward(g, F32(info, 1, "x", inSize(g)), F32(info, 2, "filter", filterSize(g)), F32(info, 3, "y", outSize(g)));
  return info.Env().Undefined();
}

Napi::Value ConvBackwardData(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  convBackwardData(g, F32(info, 1, "dy", outSize(g)), F32(info, 2, "filter", filterSize(g)), F32(info, 3, "dx", inSize(g)));
  return info.Env().Undefined();
}

Napi::Value ConvBackwardWeights(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  convBackwardWeights(g, F32(info, 1, "x", inSize(g)), F32(info, 2, "dy", outSize(g)), F32(info, 3, "dfilter", filterSize(g)));
  return info.Env().Undefined();
}

// [input lanes, grad lanes]: element counts of the sparse kernels' batch-innermost buffers.
Napi::Value SparseConvLaneSizes(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  Napi::Array out = Napi::Array::New(info.Env(), 3);
  out.Set(uint32_t{0}, static_cast<double>(sparseConvInputLanesSize(g)));
  out.Set(uint32_t{1}, static_cast<double>(sparseConvGradLanesSize(g)));
  out.Set(uint32_t{2}, static_cast<double>(sparseConvOutputLanesSize(g)));
  return out;
}

// A pending output (PendingLanes, PendingGrad) handed to JavaScript by a `defer` argument, holding on to
// the arrays it reads and writes until the call that consumes it has written it. Kinds are tagged: an
// external of another kind is refused, not reinterpreted.
struct HandleBase {
  const char* kind;
  std::vector<Napi::ObjectReference> arrays;
  bool written = false;
  explicit HandleBase(const char* k) : kind(k) {}
  virtual ~HandleBase() = default;
};
template <class P>
struct Handle : HandleBase {
  static constexpr const char* kKind = std::is_same_v<P, PendingLanes> ? "pending lanes" : "pending dy";
  P pending;
  Handle() : HandleBase(kKind) {}
};

// A new handle as a JavaScript value, keeping the typed arrays among info[indices] alive.
template <class P>
Napi::Value NewHandle(const Napi::CallbackInfo& info, std::initializer_list<int> indices, Handle<P>*& handle) {
  handle = new Handle<P>();
  for (int i : indices)
    if (info.Length() > static_cast<size_t>(i) && info[i].IsTypedArray()) handle->arrays.push_back(Napi::Persistent(info[i].As<Napi::Object>()));
  return Napi::External<HandleBase>::New(info.Env(), handle, [](Napi::Env, HandleBase* h) { delete h; });
}

// The pending input at info[i] (undefined or null: none), of kind P and not yet written.
template <class P>
Handle<P>* TakeHandle(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  HandleBase* h = info[i].IsExternal() ? info[i].As<Napi::External<HandleBase>>().Data() : nullptr;
  if (!h || h->kind != Handle<P>::kKind)
    throw Napi::TypeError::New(info.Env(), std::string(fn) + ": argument " + std::to_string(i) + " must be a " + Handle<P>::kKind + " handle");
  if (h->written) throw Napi::Error::New(info.Env(), std::string(fn) + ": this " + h->kind + " handle was already written");
  return static_cast<Handle<P>*>(h);
}

// A pending input must be for this very convolution and buffer.
void CheckTarget(const Napi::CallbackInfo& info, const char* fn, const ConvGeometry& g, const ConvGeometry& target, const float* lanes,
                 const float* targetLanes) {
  if (targetLanes != lanes || std::memcmp(&target, &g, sizeof g) != 0)
    throw Napi::RangeError::New(info.Env(), std::string(fn) + ": the pending input is for another convolution (other geometry or lanes)");
}

// Drops a consumed handle's hold on its arrays.
void Written(HandleBase* h) {
  if (!h) return;
  h->written = true;
  h->arrays.clear();
}

// sparseConvBnForward(geometry, epsilon, relu, x | null | pending, filter, active, gamma, beta, z | null, mean, variance, xLanes, yLanes
//                     [, nextGeometry, nextLanes, skip, skipLanes, skipGeometry, inference, pool2, defer]): x null = xLanes
//                     already filled, a pending handle = xLanes written on the way by this call; with nextGeometry, z goes to
//                     nextLanes (with defer: returns a pending handle for the next convolution's call instead); skip (NHWC)
//                     or skipLanes (padded input lanes of skipGeometry) is added before the activation; inference: mean
//                     and variance are read (running statistics).
Napi::Value SparseConvBnForward(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  // Optional 21st argument: with nextGeometry, leave z pending for the next convolution's forward pass.
  const bool defer = info.Length() > 20 && !info[20].IsUndefined() && Bool(info, 20, "defer");
  // Optional 19th argument: evaluation, normalising with the given mean and variance (running statistics).
  const bool inference = info.Length() > 18 && !info[18].IsUndefined() && Bool(info, 18, "inference");
  // Optional 20th: z is the 2×2 max pool of the activation (pooledOutSize), in NHWC.
  const bool pool2 = info.Length() > 19 && !info[19].IsUndefined() && Bool(info, 19, "pool2");
  const BatchNormEpilogue bn{static_cast<float>(Real(info, 1, "epsilon")), Bool(info, 2, "relu"), inference, pool2};
  const int64_t c = g.outChannels;
  const bool chained = info.Length() > 13 && !info[13].IsUndefined() && !info[13].IsNull();
  ConvGeometry next{};
  float* nextLanes = nullptr;
  if (chained) {
    next = Geometry(info, 13);
    if (next.batch != g.batch || next.inHeight != g.outHeight || next.inWidth != g.outWidth || next.inChannels != g.outChannels)
      throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: the next convolution's input is not this one's output");
    // nextLanes null (with defer): a transient input, written a few rows at a time into its consumer's ring.
    nextLanes = info[14].IsNull() ? nullptr : F32(info, 14, "nextLanes", sparseConvInputLanesSize(next));
  }
  // Optional 16th argument: an identity shortcut added before the activation (NHWC, z's shape).
  const bool joined = info.Length() > 15 && !info[15].IsUndefined() && !info[15].IsNull();
  if (joined && chained) throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: a skip input needs z in NHWC (no next convolution)");
  const float* skip = joined ? F32(info, 15, "skip", outSize(g)) : nullptr;
  // Optional 17th and 18th: the identity shortcut in the padded input lanes of skipGeometry instead.
  const bool laneJoined = info.Length() > 16 && !info[16].IsUndefined() && !info[16].IsNull();
  ConvGeometry skipGeometry{};
  const float* skipLanes = nullptr;
  if (laneJoined) {
    if (joined) throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: give the skip in NHWC or in lanes, not both");
    skipGeometry = Geometry(info, 17);
    if (skipGeometry.batch != g.batch || skipGeometry.inHeight != g.outHeight || skipGeometry.inWidth != g.outWidth ||
        skipGeometry.inChannels != g.outChannels)
      throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: the skip geometry's input is not this convolution's output");
    skipLanes = F32(info, 16, "skipLanes", sparseConvInputLanesSize(skipGeometry));
  }
  if (pool2 && (chained || joined || laneJoined))
    throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: a pooled output is NHWC without a skip (no next convolution, no join)");
  if (defer && !chained) throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: only an output into the next convolution's lanes (nextGeometry) can be deferred");
  if (chained && !nextLanes && !defer) throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: nextLanes null (a transient input) needs defer");
  Handle<PendingLanes>* input = info[3].IsExternal() ? TakeHandle<PendingLanes>(info, 3, "sparseConvBnForward") : nullptr;
  // xLanes null with a transient pending input: never stored.
  const bool transientInput = input && !input->pending.lanes;
  if (transientInput && !info[11].IsNull()) throw Napi::RangeError::New(info.Env(), "sparseConvBnForward: a transient pending input goes with xLanes null");
  float* xLanes = transientInput ? nullptr : F32(info, 11, "xLanes", sparseConvInputLanesSize(g));
  if (input) CheckTarget(info, "sparseConvBnForward", g, input->pending.consumer, xLanes, input->pending.lanes);
  const float* yLanes = F32(info, 12, "yLanes", sparseConvOutputLanesSize(g));
  Handle<PendingLanes>* deferred = nullptr;
  // Keeps y, the destination and the skip alive while pending (JavaScript holds the handle).
  const Napi::Value result = defer ? NewHandle(info, {12, 14, 16}, deferred) : info.Env().Undefined();
  sparseConvBnForward(g, bn, input || info[3].IsNull() ? nullptr : F32(info, 3, "x", inSize(g)), F32(info, 4, "filter", filterSize(g)),
                      F32(info, 5, "active", filterSize(g)), F32(info, 6, "gamma", c), F32(info, 7, "beta", c),
                      chained ? nullptr : F32(info, 8, "z", pool2 ? pooledOutSize(g) : outSize(g)), F32(info, 9, "mean", c), F32(info, 10, "variance", c),
                      xLanes, const_cast<float*>(yLanes), chained ? &next : nullptr, nextLanes, skip, skipLanes, laneJoined ? &skipGeometry : nullptr,
                      deferred ? &deferred->pending : nullptr, input ? &input->pending : nullptr);
  Written(input);
  return result;
}

// sparseConvBnBackward(geometry, epsilon, relu, dz, dzInLanes, yLanes, mean, variance, gamma, beta, dyLanes, dgamma, dbeta
//                      [, poolLanes, defer, sums]): with poolLanes (output-lanes size), dz is a 2×2 max pool's
//                      gradient (NHWC), held there in lanes until dy is written; with defer, returns a pending dy handle for the first gradient that reads dyLanes; with
//                      sums (Float64Array, taken by the gather that wrote dz), no sums pass. dyLanes null (with defer):
//                      a transient dy, for sparseConvBackwardWeights with dyLanes null alone.
Napi::Value SparseConvBnBackward(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  const bool pool2 = info.Length() > 13 && !info[13].IsUndefined() && !info[13].IsNull();
  const BatchNormEpilogue bn{static_cast<float>(Real(info, 1, "epsilon")), Bool(info, 2, "relu"), false, pool2};
  const int64_t c = g.outChannels;
  const bool dzInLanes = Bool(info, 4, "dzInLanes");
  if (pool2 && dzInLanes) throw Napi::RangeError::New(info.Env(), "sparseConvBnBackward: a max pool's gradient comes in NHWC (dzInLanes false)");
  float* poolLanes = pool2 ? F32(info, 13, "poolLanes", sparseConvOutputLanesSize(g)) : nullptr;
  // Optional 15th argument: leave dy pending for the first convolution gradient that reads it.
  const bool defer = info.Length() > 14 && !info[14].IsUndefined() && Bool(info, 14, "defer");
  // dyLanes null: a transient dy (with defer), for the filter gradient alone.
  const bool transient = info[10].IsNull();
  if (transient && !defer) throw Napi::RangeError::New(info.Env(), "sparseConvBnBackward: dyLanes null (a transient dy) needs defer");
  const float* dz = F32(info, 3, "dz", pool2 ? pooledOutSize(g) : dzInLanes ? sparseConvOutputLanesSize(g) : outSize(g));
  Handle<PendingGrad>* deferred = nullptr;
  // Keeps dz, y, dy and the pool's gradient in lanes alive while pending.
  // Optional 16th: the gradient sums, already taken from dz by the gather that wrote it (Float64Array, 2·C).
  const bool summed = info.Length() > 15 && !info[15].IsUndefined() && !info[15].IsNull();
  if (summed && pool2) throw Napi::RangeError::New(info.Env(), "sparseConvBnBackward: a pooled layer takes its sums while routing (no given sums)");
  const double* sums = summed ? TypedOf<double, Napi::Float64Array>(info.Env(), info[15], napi_float64_array, "Float64Array", "sums", 2 * c) : nullptr;
  const Napi::Value result = defer ? NewHandle(info, {3, 5, 10, 13}, deferred) : info.Env().Undefined();
  sparseConvBnBackward(g, bn, dz, dzInLanes, F32(info, 5, "yLanes", sparseConvOutputLanesSize(g)), F32(info, 6, "mean", c),
                       F32(info, 7, "variance", c), F32(info, 8, "gamma", c), F32(info, 9, "beta", c),
                       transient ? nullptr : F32(info, 10, "dyLanes", sparseConvGradLanesSize(g)), F32(info, 11, "dgamma", c), F32(info, 12, "dbeta", c), poolLanes,
                       deferred ? &deferred->pending : nullptr, sums);
  return result;
}

// sparseConvPendingInput(producerGeometry, consumerGeometry, epsilon, relu, yLanes, mean, variance, gamma, beta): the
// consumer's input lanes act(BN(y)) as the producer's forward pass left them, as a transient pending lanes handle
// for sparseConvBackwardData's weights.xLanes (re-derived a few rows at a time, never stored).
Napi::Value SparseConvPendingInput(const Napi::CallbackInfo& info) {
  const ConvGeometry producer = Geometry(info, 0), consumer = Geometry(info, 1);
  if (consumer.batch != producer.batch || consumer.inHeight != producer.outHeight || consumer.inWidth != producer.outWidth ||
      consumer.inChannels != producer.outChannels)
    throw Napi::RangeError::New(info.Env(), "sparseConvPendingInput: the consumer's input is not the producer's output");
  const BatchNormEpilogue bn{static_cast<float>(Real(info, 2, "epsilon")), Bool(info, 3, "relu")};
  const int64_t c = producer.outChannels;
  Handle<PendingLanes>* handle = nullptr;
  const Napi::Value result = NewHandle(info, {4}, handle);
  handle->pending = sparseConvPendingInput(producer, consumer, bn, F32(info, 4, "yLanes", sparseConvOutputLanesSize(producer)), F32(info, 5, "mean", c),
                                           F32(info, 6, "variance", c), F32(info, 7, "gamma", c), F32(info, 8, "beta", c));
  return result;
}

Napi::Value SparseConvForward(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  sparseConvForward(g, F32(info, 1, "x", inSize(g)), F32(info, 2, "filter", filterSize(g)), F32(info, 3, "active", filterSize(g)),
                    F32(info, 4, "y", outSize(g)), F32(info, 5, "xLanes", sparseConvInputLanesSize(g)));
  return info.Env().Undefined();
}

Napi::Value SparseConvGradToLanes(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  sparseConvGradToLanes(g, F32(info, 1, "dy", outSize(g)), F32(info, 2, "dyLanes", sparseConvGradLanesSize(g)));
  return info.Env().Undefined();
}

// sparseConvBackwardData's sums targets: an array of { geometry, yLanes, mean, variance, gamma, beta,
// epsilon, relu, sums } (sums: a Float64Array of 2·outChannels, written), each a layer whose output
// gradient is dx (its output has x's shape); dx must be in lanes.
std::vector<GradientSums> SumsTargets(const Napi::CallbackInfo& info, size_t i, const ConvGeometry& g, bool dxInLanes) {
  std::vector<GradientSums> targets;
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return targets;
  const Napi::Env env = info.Env();
  if (!info[i].IsArray()) throw Napi::TypeError::New(env, "sparseConvBackwardData: argument 'sums' must be an array of targets");
  if (!dxInLanes) throw Napi::RangeError::New(env, "sparseConvBackwardData: gradient sums need dx in lanes");
  auto list = info[i].As<Napi::Array>();
  for (uint32_t k = 0; k < list.Length(); k++) {
    if (!list.Get(k).IsObject()) throw Napi::TypeError::New(env, "sparseConvBackwardData: sums target " + std::to_string(k) + " must be an object");
    auto o = list.Get(k).As<Napi::Object>();
    const std::string at = "sums[" + std::to_string(k) + "].";
    GradientSums t;
    t.g = GeometryOf(env, o.Get("geometry"));
    if (t.g.batch != g.batch || t.g.outHeight != g.inHeight || t.g.outWidth != g.inWidth || t.g.outChannels != g.inChannels)
      throw Napi::RangeError::New(env, "sparseConvBackwardData: " + at + "geometry's output is not this convolution's input");
    const int64_t c = t.g.outChannels;
    t.yLanes = TypedOf<float, Napi::Float32Array>(env, o.Get("yLanes"), napi_float32_array, "Float32Array", at + "yLanes", sparseConvOutputLanesSize(t.g));
    t.mean = TypedOf<float, Napi::Float32Array>(env, o.Get("mean"), napi_float32_array, "Float32Array", at + "mean", c);
    t.variance = TypedOf<float, Napi::Float32Array>(env, o.Get("variance"), napi_float32_array, "Float32Array", at + "variance", c);
    t.gamma = TypedOf<float, Napi::Float32Array>(env, o.Get("gamma"), napi_float32_array, "Float32Array", at + "gamma", c);
    t.beta = TypedOf<float, Napi::Float32Array>(env, o.Get("beta"), napi_float32_array, "Float32Array", at + "beta", c);
    if (!o.Get("epsilon").IsNumber() || !o.Get("relu").IsBoolean())
      throw Napi::TypeError::New(env, "sparseConvBackwardData: " + at + "epsilon must be a number and " + at + "relu a boolean");
    t.epsilon = static_cast<float>(o.Get("epsilon").As<Napi::Number>().DoubleValue());
    t.relu = o.Get("relu").As<Napi::Boolean>().Value();
    t.out = TypedOf<double, Napi::Float64Array>(env, o.Get("sums"), napi_float64_array, "Float64Array", at + "sums", 2 * c);
    targets.push_back(t);
  }
  return targets;
}

Napi::Value SparseConvBackwardData(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  // Optional 6th argument: dx in lanes ([chunk][inH][inW][inC][lanes]) for a chained producer.
  const bool dxInLanes = info.Length() > 5 && !info[5].IsUndefined() && Bool(info, 5, "dxInLanes");
  const int64_t dxSize = dxInLanes ? sparseConvInputDataLanesSize(g) : inSize(g);
  // Optional 7th argument: lanes of x's shape added to dx (an identity shortcut's gradient).
  const bool adding = info.Length() > 6 && !info[6].IsUndefined() && !info[6].IsNull();
  // Optional 8th: this convolution's padded input lanes; dx (in lanes) kept only where the input is positive.
  const bool gated = info.Length() > 7 && !info[7].IsUndefined() && !info[7].IsNull();
  if (gated && !dxInLanes) throw Napi::RangeError::New(info.Env(), "sparseConvBackwardData: gateLanes needs dx in lanes");
  // Optional 9th: a pending dy (sparseConvBnBackward's defer) for dyLanes, written on the way.
  Handle<PendingGrad>* input = TakeHandle<PendingGrad>(info, 8, "sparseConvBackwardData");
  // Optional 11th: {xLanes, dfilter}, the filter gradient taken in the same pass over dy's rows.
  const bool withWeights = info.Length() > 10 && !info[10].IsUndefined() && !info[10].IsNull();
  const bool transient = input && !input->pending.dyLanes;
  if (transient && !withWeights)
    throw Napi::RangeError::New(info.Env(), "sparseConvBackwardData: a transient dy (no dyLanes) needs the filter gradient taken in the same call (weights)");
  if (transient && !info[1].IsNull()) throw Napi::RangeError::New(info.Env(), "sparseConvBackwardData: a transient pending dy goes with dyLanes null");
  const float* dyLanes = transient ? nullptr : F32(info, 1, "dyLanes", sparseConvGradLanesSize(g));
  if (input) CheckTarget(info, "sparseConvBackwardData", g, input->pending.g, dyLanes, input->pending.dyLanes);
  // Optional 10th: BatchNorm gradient sums to take from dx (in lanes) on the way (GradientSums).
  const std::vector<GradientSums> sums = SumsTargets(info, 9, g, dxInLanes);
  FilterGradient weights{};
  Handle<PendingLanes>* xInput = nullptr;
  if (withWeights) {
    if (!info[10].IsObject()) throw Napi::TypeError::New(info.Env(), "sparseConvBackwardData: argument 'weights' must be {xLanes, dfilter}");
    auto o = info[10].As<Napi::Object>();
    const Napi::Value x = o.Get("xLanes");
    if (x.IsExternal()) {
      // x re-derived (sparseConvPendingInput): a transient pending input of this convolution.
      HandleBase* h = x.As<Napi::External<HandleBase>>().Data();
      if (h->kind != Handle<PendingLanes>::kKind) throw Napi::TypeError::New(info.Env(), "sparseConvBackwardData: weights.xLanes must be a Float32Array or a pending lanes handle");
      if (h->written) throw Napi::Error::New(info.Env(), "sparseConvBackwardData: this pending lanes handle was already written");
      xInput = static_cast<Handle<PendingLanes>*>(h);
      if (xInput->pending.lanes) throw Napi::RangeError::New(info.Env(), "sparseConvBackwardData: weights.xLanes as a handle must be transient (sparseConvPendingInput)");
      CheckTarget(info, "sparseConvBackwardData", g, xInput->pending.consumer, nullptr, nullptr);
      weights.x = &xInput->pending;
    } else {
      weights.xLanes = TypedOf<float, Napi::Float32Array>(info.Env(), x, napi_float32_array, "Float32Array", "weights.xLanes", sparseConvInputLanesSize(g));
    }
    weights.dw = TypedOf<float, Napi::Float32Array>(info.Env(), o.Get("dfilter"), napi_float32_array, "Float32Array", "weights.dfilter", filterSize(g));
  }
  sparseConvBackwardData(g, dyLanes, F32(info, 2, "filter", filterSize(g)), F32(info, 3, "active", filterSize(g)), F32(info, 4, "dx", dxSize),
                         dxInLanes, adding ? F32(info, 6, "addLanes", sparseConvInputDataLanesSize(g)) : nullptr,
                         gated ? F32(info, 7, "gateLanes", sparseConvInputLanesSize(g)) : nullptr, input ? &input->pending : nullptr, sums,
                         withWeights ? &weights : nullptr);
  Written(input);
  Written(xInput);
  return info.Env().Undefined();
}

// hugePageBuffer(bytes): a zero-filled ArrayBuffer of fresh anonymous memory starting on a 2 MiB
// boundary, advised to the kernel as transparent-huge-page memory before anything touches it (Linux;
// elsewhere, or with THP off, plain pages). The sparse kernels' gathers read their activations in
// scattered 512-byte runs across megabytes; on 4 KiB pages that costs a TLB miss per run or two (a
// resnet20 step measured about 4% faster with huge pages, sparse or dense). Freed when the buffer is
// collected; its size counts as V8 external memory, as an ordinary ArrayBuffer's does.
Napi::Value HugePageBuffer(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const int64_t bytes = Int(info, 0, "bytes");
  if (bytes <= 0) throw Napi::RangeError::New(env, "hugePageBuffer: bytes must be positive, got " + std::to_string(bytes));
  constexpr size_t kHugePage = size_t{2} << 20;
  const size_t length = static_cast<size_t>(bytes);
  // Over-map by one huge page so that the buffer can start on a boundary; the spare ends are unmapped.
  const size_t mapped = length + kHugePage;
  void* raw = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw Napi::Error::New(env, "hugePageBuffer: mmap of " + std::to_string(mapped) + " bytes failed");
  const uintptr_t start = reinterpret_cast<uintptr_t>(raw), aligned = (start + kHugePage - 1) & ~(kHugePage - 1);
  if (aligned > start) munmap(raw, aligned - start);
  const uintptr_t end = aligned + length, mappedEnd = start + mapped;
  const size_t kept = (end + 4095) & ~size_t{4095};
  if (mappedEnd > kept) munmap(reinterpret_cast<void*>(kept), mappedEnd - kept);
#ifdef MADV_HUGEPAGE
  madvise(reinterpret_cast<void*>(aligned), kept - aligned, MADV_HUGEPAGE);
#endif
  const size_t unmapLength = kept - aligned;
  Napi::ArrayBuffer buffer;
  try {
    buffer = Napi::ArrayBuffer::New(env, reinterpret_cast<void*>(aligned), length, [unmapLength, bytes](Napi::Env env, void* data) {
      munmap(data, unmapLength);
      Napi::MemoryManagement::AdjustExternalMemory(env, -bytes);
    });
  } catch (...) {
    // A runtime that refuses external buffers (V8's sandbox): give the memory back; the caller falls back.
    munmap(reinterpret_cast<void*>(aligned), unmapLength);
    throw;
  }
  Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
  return buffer;
}

// byteAlignment(array): the array's data address modulo 64 (bytes), for allocating cache-line-aligned views.
Napi::Value ByteAlignment(const Napi::CallbackInfo& info) {
  const float* data = F32(info, 0, "array", 0);
  return Napi::Number::New(info.Env(), static_cast<double>(reinterpret_cast<uintptr_t>(data) % 64));
}

// reluGradToLanes(geometry, dz, out, gLanes): dz ⊙ [out > 0] (NHWC, the convolution's output shape) in output lanes.
Napi::Value ReluGradToLanes(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  reluGradToLanes(g, F32(info, 1, "dz", outSize(g)), F32(info, 2, "out", outSize(g)), F32(info, 3, "gLanes", sparseConvOutputLanesSize(g)));
  return info.Env().Undefined();
}

Napi::Value SparseConvBackwardWeights(const Napi::CallbackInfo& info) {
  const ConvGeometry g = Geometry(info, 0);
  // Optional 6th: a pending dy (sparseConvBnBackward's defer) for dyLanes, written on the way; dyLanes null
  // with a transient pending dy (never stored whole).
  Handle<PendingGrad>* input = TakeHandle<PendingGrad>(info, 5, "sparseConvBackwardWeights");
  const bool transient = input && !input->pending.dyLanes;
  if (transient && !info[2].IsNull())
    throw Napi::RangeError::New(info.Env(), "sparseConvBackwardWeights: a transient pending dy goes with dyLanes null");
  const float* dyLanes = transient ? nullptr : F32(info, 2, "dyLanes", sparseConvGradLanesSize(g));
  if (input) CheckTarget(info, "sparseConvBackwardWeights", g, input->pending.g, dyLanes, input->pending.dyLanes);
  sparseConvBackwardWeights(g, F32(info, 1, "xLanes", sparseConvInputLanesSize(g)), dyLanes, F32(info, 3, "active", filterSize(g)),
                            F32(info, 4, "dfilter", filterSize(g)), input ? &input->pending : nullptr);
  Written(input);
  return info.Env().Undefined();
}

// (rows, channels, epsilon, relu, ...) prefix shared by the BatchNorm entry points.
BatchNormShape BnShape(const Napi::CallbackInfo& info) {
  if (!info[2].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument 'epsilon' must be a number");
  return BatchNormShape{Int(info, 0, "rows"), Int(info, 1, "channels"), info[2].As<Napi::Number>().FloatValue(),
                        Bool(info, 3, "relu")};
}

Napi::Value BatchNormTrainForward(const Napi::CallbackInfo& info) {
  const BatchNormShape s = BnShape(info);
  const int64_t n = s.rows * s.channels, c = s.channels;
  batchNormTrainForward(s, F32(info, 4, "y", n), F32(info, 5, "gamma", c), F32(info, 6, "beta", c), F32(info, 7, "z", n),
                        F32(info, 8, "mean", c), F32(info, 9, "variance", c));
  return info.Env().Undefined();
}

Napi::Value BatchNormInferForward(const Napi::CallbackInfo& info) {
  const BatchNormShape s = BnShape(info);
  const int64_t n = s.rows * s.channels, c = s.channels;
  batchNormInferForward(s, F32(info, 4, "y", n), F32(info, 5, "mean", c), F32(info, 6, "variance", c),
                        F32(info, 7, "gamma", c), F32(info, 8, "beta", c), F32(info, 9, "z", n));
  return info.Env().Undefined();
}

// (…, dz, z, y, mean, variance, gamma, dy, dgamma, dbeta): both modes' backward passes.
template <void (*Backward)(const BatchNormShape&, const float*, const float*, const float*, const float*, const float*,
                           const float*, float*, float*, float*)>
Napi::Value BatchNormBackward(const Napi::CallbackInfo& info) {
  const BatchNormShape s = BnShape(info);
  const int64_t n = s.rows * s.channels, c = s.channels;
  Backward(s, F32(info, 4, "dz", n), F32(info, 5, "z", n), F32(info, 6, "y", n), F32(info, 7, "mean", c), F32(info, 8, "variance", c),
           F32(info, 9, "gamma", c), F32(info, 10, "dy", n), F32(info, 11, "dgamma", c), F32(info, 12, "dbeta", c));
  return info.Env().Undefined();
}

// binary(op, size, a, b, z): op 0 add, 1 sub, 2 mul; a and b hold `size` elements or a single one.
Napi::Value Binary(const Napi::CallbackInfo& info) {
  const int64_t op = Int(info, 0, "op"), n = Int(info, 1, "size");
  if (op < 0 || op > 2) throw Napi::RangeError::New(info.Env(), "binary: op must be 0 (add), 1 (sub) or 2 (mul)");
  auto length = [&](size_t i, const char* name) {
    const float* p = F32(info, i, name, 1);
    const int64_t len = static_cast<int64_t>(info[i].As<Napi::Float32Array>().ElementLength());
    if (len != 1 && len < n) throw Napi::RangeError::New(info.Env(), std::string("binary: '") + name + "' must hold 1 or " + std::to_string(n) + " elements");
    return std::make_pair(p, len == 1 ? int64_t{1} : n);
  };
  const auto [a, aLength] = length(2, "a");
  const auto [b, bLength] = length(3, "b");
  binary(static_cast<BinaryOp>(op), n, a, aLength, b, bLength, F32(info, 4, "z", n));
  return info.Env().Undefined();
}

// sgdMomentumStep(size, lr, momentum, weightDecay, nesterov, w, buf, grad, mask | null, wOut, bufOut).
// Hyper-parameters are rounded to float32 as tfjs rounds a number it multiplies a float32 tensor by.
Napi::Value SgdMomentumStep(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info, 0, "size");
  const SgdHyper h{static_cast<float>(Real(info, 1, "lr")), static_cast<float>(Real(info, 2, "momentum")),
                   static_cast<float>(Real(info, 3, "weightDecay")), Bool(info, 4, "nesterov")};
  const float* mask = info[8].IsNull() || info[8].IsUndefined() ? nullptr : F32(info, 8, "mask", n);
  // Optional 12th argument: gradScale (grad is then ∂L/∂W_eff for W_eff = w ⊙ gradScale).
  const float* gradScale = info.Length() > 11 && !info[11].IsNull() && !info[11].IsUndefined() ? F32(info, 11, "gradScale", n) : nullptr;
  sgdMomentumStep(n, h, F32(info, 5, "w", n), F32(info, 6, "buf", n), F32(info, 7, "grad", n), mask, F32(info, 9, "wOut", n),
                  F32(info, 10, "bufOut", n), gradScale);
  return info.Env().Undefined();
}

Napi::Value AddRelu(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info, 0, "size");
  addRelu(n, F32(info, 1, "a", n), F32(info, 2, "b", n), F32(info, 3, "z", n));
  return info.Env().Undefined();
}

Napi::Value ReluBackward(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info, 0, "size");
  reluBackward(n, F32(info, 1, "dz", n), F32(info, 2, "out", n), F32(info, 3, "g", n));
  return info.Env().Undefined();
}

PoolShape Pool(const Napi::CallbackInfo& info) {
  return PoolShape{Int(info, 0, "batch"), Int(info, 1, "height"), Int(info, 2, "width"), Int(info, 3, "channels")};
}

int64_t poolIn(const PoolShape& s) { return s.batch * s.height * s.width * s.channels; }
int64_t poolOut(const PoolShape& s) { return s.batch * (s.height / 2) * (s.width / 2) * s.channels; }

Napi::Value MaxPool2Forward(const Napi::CallbackInfo& info) {
  const PoolShape s = Pool(info);
  maxPool2Forward(s, F32(info, 4, "x", poolIn(s)), F32(info, 5, "y", poolOut(s)));
  return info.Env().Undefined();
}

Napi::Value MaxPool2Backward(const Napi::CallbackInfo& info) {
  const PoolShape s = Pool(info);
  maxPool2Backward(s, F32(info, 4, "x", poolIn(s)), F32(info, 5, "dy", poolOut(s)), F32(info, 6, "dx", poolIn(s)));
  return info.Env().Undefined();
}

Napi::Value GlobalAvgPoolForward(const Napi::CallbackInfo& info) {
  const PoolShape s = Pool(info);
  globalAvgPoolForward(s, F32(info, 4, "x", poolIn(s)), F32(info, 5, "y", s.batch * s.channels));
  return info.Env().Undefined();
}

Napi::Value GlobalAvgPoolBackward(const Napi::CallbackInfo& info) {
  const PoolShape s = Pool(info);
  globalAvgPoolBackward(s, F32(info, 4, "dy", s.batch * s.channels), F32(info, 5, "dx", poolIn(s)));
  return info.Env().Undefined();
}

DenseShape Dense(const Napi::CallbackInfo& info) {
  return DenseShape{Int(info, 0, "batch"), Int(info, 1, "in"), Int(info, 2, "out")};
}

Napi::Value DenseForward(const Napi::CallbackInfo& info) {
  const DenseShape s = Dense(info);
  denseForward(s, F32(info, 3, "x", s.batch * s.in), F32(info, 4, "w", s.in * s.out), F32(info, 5, "b", s.out),
               Bool(info, 6, "relu"), F32(info, 7, "y", s.batch * s.out));
  return info.Env().Undefined();
}

Napi::Value DenseBackwardData(const Napi::CallbackInfo& info) {
  const DenseShape s = Dense(info);
  denseBackwardData(s, F32(info, 3, "g", s.batch * s.out), F32(info, 4, "w", s.in * s.out), F32(info, 5, "dx", s.batch * s.in));
  return info.Env().Undefined();
}

Napi::Value DenseBackwardWeights(const Napi::CallbackInfo& info) {
  const DenseShape s = Dense(info);
  denseBackwardWeights(s, F32(info, 3, "x", s.batch * s.in), F32(info, 4, "g", s.batch * s.out), F32(info, 5, "dw", s.in * s.out));
  return info.Env().Undefined();
}

Napi::Value ColumnSums(const Napi::CallbackInfo& info) {
  const int64_t rows = Int(info, 0, "rows"), cols = Int(info, 1, "cols");
  columnSums(rows, cols, F32(info, 2, "g", rows * cols), F32(info, 3, "sums", cols));
  return info.Env().Undefined();
}

Napi::Value SoftmaxCrossEntropy(const Napi::CallbackInfo& info) {
  const int64_t rows = Int(info, 0, "rows"), classes = Int(info, 1, "classes");
  try {
    return Napi::Number::New(info.Env(), softmaxCrossEntropy(rows, classes, F32(info, 2, "logits", rows * classes), I32(info, 3, "labels", rows)));
  } catch (const std::range_error& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  }
}

Napi::Value SoftmaxCrossEntropyBackward(const Napi::CallbackInfo& info) {
  const int64_t rows = Int(info, 0, "rows"), classes = Int(info, 1, "classes");
  if (!info[4].IsNumber()) throw Napi::TypeError::New(info.Env(), "argument 'scale' must be a number");
  try {
    softmaxCrossEntropyBackward(rows, classes, F32(info, 2, "logits", rows * classes), I32(info, 3, "labels", rows),
                                info[4].As<Napi::Number>().FloatValue(), F32(info, 5, "dlogits", rows * classes));
  } catch (const std::range_error& e) {
    throw Napi::RangeError::New(info.Env(), e.what());
  }
  return info.Env().Undefined();
}

// GFLOP/s of an n×n×n sgemm (best of `repeats`), the machine's practical ceiling for the benchmark.
Napi::Value MeasureSgemm(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info, 0, "n"), repeats = Int(info, 1, "repeats");
  std::vector<float> a(n * n), b(n * n), c(n * n);
  for (int64_t i = 0; i < n * n; i++) {
    a[i] = static_cast<float>(i % 7) * 0.1f;
    b[i] = static_cast<float>(i % 5) * 0.1f;
  }
  double best = 1e30;
  for (int64_t r = 0; r < repeats; r++) {
    const auto t0 = std::chrono::steady_clock::now();
    sgemm(false, false, n, n, n, a.data(), b.data(), c.data());
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return Napi::Number::New(info.Env(), 2.0 * n * n * n / best / 1e9);
}

// CPU seconds of the calling thread (profiling with one thread: GC and other threads excluded).
Napi::Value ThreadCpuSeconds(const Napi::CallbackInfo& info) {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return Napi::Number::New(info.Env(), static_cast<double>(t.tv_sec) + t.tv_nsec * 1e-9);
}

std::string isaName(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_sse41: return "SSE4.1";
    case dnnl_cpu_isa_avx: return "AVX";
    case dnnl_cpu_isa_avx2: return "AVX2";
    case dnnl_cpu_isa_avx2_vnni: return "AVX2-VNNI";
    case dnnl_cpu_isa_avx512_core: return "AVX-512";
    case dnnl_cpu_isa_avx512_core_vnni: return "AVX-512 VNNI";
    case dnnl_cpu_isa_avx512_core_bf16: return "AVX-512 BF16";
    case dnnl_cpu_isa_avx512_core_amx: return "AVX-512 AMX";
    default: return "ISA " + std::to_string(static_cast<int>(isa));
  }
}

Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const dnnl_version_t* v = dnnl_version();
  Napi::Object out = Napi::Object::New(env);
  out.Set("onednn", std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch));
  out.Set("isa", isaName(dnnl_get_effective_cpu_isa()));
  out.Set("threads", omp_get_max_threads());
  out.Set("convPlans", static_cast<double>(convPlanCount()));
  return out;
}

Napi::Value SetWinograd(const Napi::CallbackInfo& info) {
  setWinograd(Bool(info, 0, "enabled"));
  return info.Env().Undefined();
}

Napi::Value ConvUsesWinograd(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), convUsesWinograd(Geometry(info, 0)));
}

// setPhaseTiming(enabled): starts (from zero) or stops the sparse kernels' phase timers (phase_timer.h).
Napi::Value SetPhaseTiming(const Napi::CallbackInfo& info) {
  const bool on = Bool(info, 0, "enabled");
  PhaseTotals& t = phaseTotals();
  if (on) {
    for (int i = 0; i < static_cast<int>(Phase::kCount); i++) t.seconds[i] = 0, t.calls[i] = 0;
  }
  t.enabled.store(on);
  return info.Env().Undefined();
}

// phaseTimes(): { phase: { ms, calls } } accumulated since setPhaseTiming(true), phases that ran only.
Napi::Value PhaseTimes(const Napi::CallbackInfo& info) {
  const PhaseTotals& t = phaseTotals();
  Napi::Object out = Napi::Object::New(info.Env());
  for (int i = 0; i < static_cast<int>(Phase::kCount); i++) {
    if (t.calls[i] == 0) continue;
    Napi::Object entry = Napi::Object::New(info.Env());
    entry.Set("ms", t.seconds[i] * 1e3);
    entry.Set("calls", static_cast<double>(t.calls[i]));
    out.Set(phaseName(static_cast<Phase>(i)), entry);
  }
  return out;
}

// Denormal floats (|x| < 1.2e-38) are read and written as zero inside the kernels (MXCSR's DAZ and FTZ
// bits), as TensorFlow's CPU kernels do: an arithmetic operation on a denormal takes a microcode assist of
// ~100 cycles, and training makes denormals wherever gradients fade (a well-fit batch's softmax gradient:
// a cnn step's classifier gradient took 1.9 ms instead of 0.1 ms). Only values below 1.2e-38 change,
// to 0, which leaves training unaffected in practice. JavaScript keeps IEEE arithmetic: the calling thread's MXCSR is set for the duration
// of each call and restored after it. The OpenMP worker threads run nothing but these kernels and keep
// the bits (set in every worker whenever the team may have grown; Linux threads also inherit them from
// the thread that creates them, which is always inside a call).
constexpr unsigned kFlushDenormals = 0x8040;  // FTZ (bit 15) | DAZ (bit 6)

class DenormalsFlushed {
 public:
  DenormalsFlushed() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kFlushDenormals); }
  ~DenormalsFlushed() { _mm_setcsr(saved_); }
  DenormalsFlushed(const DenormalsFlushed&) = delete;
  DenormalsFlushed& operator=(const DenormalsFlushed&) = delete;

 private:
  unsigned saved_;
};

// Run whenever the OpenMP team may have grown: each worker flushes denormals and never takes an
// asynchronous signal (see signal_guard.h); thread 0 is the JavaScript thread and keeps its own mask.
void prepareWorkers() {
#pragma omp parallel
  {
    _mm_setcsr(_mm_getcsr() | kFlushDenormals);
    if (omp_get_thread_num() != 0) refuseAsynchronousSignals();
  }
}

Napi::Value SetNumThreads(const Napi::CallbackInfo& info) {
  const int64_t n = Int(info, 0, "threads");
  if (n < 1) throw Napi::RangeError::New(info.Env(), "threads must be at least 1, got " + std::to_string(n));
  omp_set_num_threads(static_cast<int>(n));
  prepareWorkers();
  return info.Env().Undefined();
}

// mxcsrFlushesDenormals(): [whether the calling thread flushes denormals inside this call, whether every
// OpenMP worker does] (between calls the calling thread does not: JavaScript's arithmetic stays IEEE).
Napi::Value MxcsrFlushesDenormals(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int workersFlush = 1;
#pragma omp parallel reduction(&& : workersFlush)
  workersFlush = workersFlush && (_mm_getcsr() & kFlushDenormals) == kFlushDenormals;
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(uint32_t{0}, Napi::Boolean::New(env, (_mm_getcsr() & kFlushDenormals) == kFlushDenormals));
  out.Set(uint32_t{1}, Napi::Boolean::New(env, workersFlush != 0));
  return out;
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  const std::pair<const char*, Napi::Value (*)(const Napi::CallbackInfo&)> functions[] = {
      {"convForward", ConvForward},
      {"convBackwardData", ConvBackwardData},
      {"convBackwardWeights", ConvBackwardWeights},
      {"sparseConvLaneSizes", SparseConvLaneSizes},
      {"sparseConvForward", SparseConvForward},
      {"sparseConvGradToLanes", SparseConvGradToLanes},
      {"sparseConvBnForward", SparseConvBnForward},
      {"sparseConvBnBackward", SparseConvBnBackward},
      {"sparseConvPendingInput", SparseConvPendingInput},
      {"reluGradToLanes", ReluGradToLanes},
      {"byteAlignment", ByteAlignment},
      {"hugePageBuffer", HugePageBuffer},
      {"sparseConvBackwardData", SparseConvBackwardData},
      {"sparseConvBackwardWeights", SparseConvBackwardWeights},
      {"batchNormTrainForward", BatchNormTrainForward},
      {"batchNormTrainBackward", BatchNormBackward<batchNormTrainBackward>},
      {"batchNormInferForward", BatchNormInferForward},
      {"batchNormInferBackward", BatchNormBackward<batchNormInferBackward>},
      {"binary", Binary},
      {"addRelu", AddRelu},
      {"sgdMomentumStep", SgdMomentumStep},
      {"reluBackward", ReluBackward},
      {"maxPool2Forward", MaxPool2Forward},
      {"maxPool2Backward", MaxPool2Backward},
      {"globalAvgPoolForward", GlobalAvgPoolForward},
      {"globalAvgPoolBackward", GlobalAvgPoolBackward},
      {"denseForward", DenseForward},
      {"denseBackwardData", DenseBackwardData},
      {"denseBackwardWeights", DenseBackwardWeights},
      {"columnSums", ColumnSums},
      {"softmaxCrossEntropy", SoftmaxCrossEntropy},
      {"softmaxCrossEntropyBackward", SoftmaxCrossEntropyBackward},
      {"measureSgemm", MeasureSgemm},
      {"info", Info},
      {"threadCpuSeconds", ThreadCpuSeconds},
      {"setNumThreads", SetNumThreads},
      {"mxcsrFlushesDenormals", MxcsrFlushesDenormals},
      {"setPhaseTiming", SetPhaseTiming},
      {"phaseTimes", PhaseTimes},
      {"setWinograd", SetWinograd},
      {"convUsesWinograd", ConvUsesWinograd},
  };
  for (const auto& [name, fn] : functions) {
    exports.Set(name, Napi::Function::New(
                          env,
                          [fn](const Napi::CallbackInfo& info) {
                            const DenormalsFlushed flushed;
                            return fn(info);
                          },
                          name));
  }
  const DenormalsFlushed flushed;
  prepareWorkers();
  return exports;
}

}  // namespace

NODE_API_MODULE(cigl_native, Init)
