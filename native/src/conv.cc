#include "conv.h"

#include <dnnl.hpp>
#include <map>
#include <stdexcept>
#include <memory>
#include <tuple>

#include "signal_guard.h"

namespace cigl {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

dnnl::engine& cpuEngine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpuStream() {
  static dnnl::stream stream(cpuEngine());
  return stream;
}

// A buffer in a oneDNN-chosen layout plus the reorder that fills it from (or drains it to) the user
// layout. Empty when the layouts already agree.
struct Relayout {
  memory::desc internal;
  std::unique_ptr<memory> buffer;
  std::unique_ptr<dnnl::reorder> reorder;

  void init(const memory::desc& user, const memory::desc& chosen, bool toInternal) {
    if (user == chosen) return;
    internal = chosen;
    buffer = std::make_unique<memory>(chosen, cpuEngine());
    const memory::desc& from = toInternal ? user : chosen;
    const memory::desc& to = toInternal ? chosen : user;
    reorder = std::make_unique<dnnl::reorder>(dnnl::reorder::primitive_desc(cpuEngine(), from, cpuEngine(), to));
  }
  bool active() const { return static_cast<bool>(reorder); }
};

// Winograd F(4×4, 3×3) halves the multiplications of 3×3 stride-1 convolutions. oneDNN runs it only on
// channel-blocked activations (nChw16c), so those convolutions reorder their NHWC inputs and outputs
// around the call (a reorder of 16 MB costs ~1 ms; Winograd saves 5–15 ms on such a layer). The choice is
// a fixed rule, never timing, so a run is reproducible. Results differ from direct convolution by ~2e-6
// relative. Below 32 channels it is not faster; AVX-512 only (oneDNN has no other Winograd kernel).
// Off by default: with oneDNN 2.6 a convolution followed by BatchNorm got wrong gradients on this path
// for some geometries (batch 128, 16×16, 32→32 channels, resnet20's second stage: input gradient off by
// 6% relative; batch 16, 6×5, 64→64), where direct convolution agrees with tfjs to 1e-6. Opt-in only.
bool winogradEnabled = false;

bool wantsWinograd(const ConvGeometry& g) {
  return winogradEnabled && g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideHeight == 1 && g.strideWidth == 1 &&
         g.inChannels >= 32 && g.outChannels >= 32 && g.inChannels % 16 == 0 && g.outChannels % 16 == 0;
}

// Everything oneDNN needs for one geometry; backward parts are created on first use.
struct ConvPlan {
  memory::desc src, weights, dst;  // user layouts: nhwc, hwio, nhwc
  memory::desc convSrc, convDst;   // what the primitives take: the user layout, or nChw16c for Winograd
  dnnl::algorithm algorithm = dnnl::algorithm::convolution_direct;
  memory::dims strides, padL, padR;
  std::unique_ptr<dnnl::convolution_forward::primitive_desc> fwdPd;
  std::unique_ptr<dnnl::convolution_forward> fwd;
  Relayout fwdWeights, srcIn, dstOut, diffDstIn, diffSrcOut;
  std::unique_ptr<dnnl::convolution_backward_data> bwdData;
  Relayout bwdDataWeights;
  std::unique_ptr<dnnl::convolution_backward_weights> bwdWeights;
  Relayout bwdWeightsDiff;

  explicit ConvPlan(const ConvGeometry& g)
      : src({g.batch, g.inChannels, g.inHeight, g.inWidth}, dt::f32, tag::nhwc),
        weights({g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth}, dt::f32, tag::hwio),
        dst({g.batch, g.outChannels, g.outHeight, g.outWidth}, dt::f32, tag::nhwc),
        convSrc(src),
        convDst(dst),
        strides({g.strideHeight, g.strideWidth}),
        padL({g.padTop, g.padLeft}),
        padR({g.padBottom, g.padRight}) {
    if (wantsWinograd(g) && createForward(dnnl::algorithm::convolution_winograd,
                                          memory::desc(src.dims(), dt::f32, tag::nChw16c),
                                          memory::desc(dst.dims(), dt::f32, tag::nChw16c))) {
      srcIn.init(src, convSrc, true);
      dstOut.init(dst, convDst, false);
      diffDstIn.init(dst, convDst, true);
      diffSrcOut.init(src, convSrc, false);
    } else if (!createForward(dnnl::algorithm::convolution_direct, src, dst)) {
      throw std::runtime_error("oneDNN has no convolution for this geometry");
    }
    fwd = std::make_unique<dnnl::convolution_forward>(*fwdPd);
    fwdWeights.init(weights, fwdPd->weights_desc(), true);
  }

  // The forward primitive descriptor for an algorithm and activation layouts; false if unsupported.
  bool createForward(dnnl::algorithm alg, const memory::desc& s, const memory::desc& d) {
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    try {
      dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_training, alg, s, anyWeights, d, strides, padL, padR);
      fwdPd = std::make_unique<dnnl::convolution_forward::primitive_desc>(desc, cpuEngine());
    } catch (const dnnl::error&) {
      return false;
    }
    algorithm = alg;
    convSrc = s;
    convDst = d;
    return true;
  }

  void ensureBackwardData() {
    if (bwdData) return;
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    dnnl::convolution_backward_data::desc d(algorithm, convSrc, anyWeights, convDst, strides, padL, padR);
    dnnl::convolution_backward_data::primitive_desc pd(d, cpuEngine(), *fwdPd);
    bwdData = std::make_unique<dnnl::convolution_backward_data>(pd);
    bwdDataWeights.init(weights, pd.weights_desc(), true);
  }

  void ensureBackwardWeights() {
    if (bwdWeights) return;
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    dnnl::convolution_backward_weights::desc d(algorithm, convSrc, anyWeights, convDst, strides, padL, padR);
    dnnl::convolution_backward_weights::primitive_desc pd(d, cpuEngine(), *fwdPd);
    bwdWeights = std::make_unique<dnnl::convolution_backward_weights>(pd);
    bwdWeightsDiff.init(weights, pd.diff_weights_desc(), false);
  }
};

using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t>;

std::map<Key, std::unique_ptr<ConvPlan>>& plans() {
  static std::map<Key, std::unique_ptr<ConvPlan>> cache;
  return cache;
}

ConvPlan& planFor(const ConvGeometry& g) {
  const Key key{g.batch, g.inHeight, g.inWidth, g.inChannels, g.outChannels, g.kernelHeight, g.kernelWidth, g.strideHeight,
                g.strideWidth, g.outHeight, g.outWidth, g.padTop, g.padLeft, g.padBottom, g.padRight};
  auto& slot = plans()[key];
  if (!slot) slot = std::make_unique<ConvPlan>(g);
  return *slot;
}

// `user` in the layout `relayout` wants: reordered into its buffer when the layouts differ.
memory toInternal(Relayout& relayout, const memory::desc& desc, const float* user) {
  memory m(desc, cpuEngine(), const_cast<float*>(user));
  if (!relayout.active()) return m;
  relayout.reorder->execute(cpuStream(), m, *relayout.buffer);
  return *relayout.buffer;
}

// Where a primitive should write an output that ends up in `user`: the user buffer itself, or the
// relayout's buffer (then drained into `user` by fromInternal).
memory outputFor(Relayout& relayout, const memory::desc& desc, float* user) {
  return relayout.active() ? *relayout.buffer : memory(desc, cpuEngine(), user);
}

void fromInternal(Relayout& relayout, const memory::desc& desc, float* user) {
  if (!relayout.active()) return;
  memory m(desc, cpuEngine(), user);
  relayout.reorder->execute(cpuStream(), *relayout.buffer, m);
}

}  // namespace

void convForward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  const SignalsHeld held;
  ConvPlan& plan = planFor(g);
  memory weights = toInternal(plan.fwdWeights, plan.weights, w);
  memory src = toInternal(plan.srcIn, plan.src, x);
  memory dst = outputFor(plan.dstOut, plan.dst, y);
  plan.fwd->execute(cpuStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
  fromInternal(plan.dstOut, plan.dst, y);
  cpuStream().wait();
}

void convBackwardData(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  const SignalsHeld held;
  ConvPlan& plan = planFor(g);
  plan.ensureBackwardData();
  memory weights = toInternal(plan.bwdDataWeights, plan.weights, w);
  memory diffDst = toInternal(plan.diffDstIn, plan.dst, dy);
  memory diffSrc = outputFor(plan.diffSrcOut, plan.src, dx);
  plan.bwdData->execute(cpuStream(), {{DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diffSrc}});
  fromInternal(plan.diffSrcOut, plan.src, dx);
  cpuStream().wait();
}

void convBackwardWeights(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  const SignalsHeld held;
  ConvPlan& plan = planFor(g);
  plan.ensureBackwardWeights();
  memory src = toInternal(plan.srcIn, plan.src, x);
  memory diffDst = toInternal(plan.diffDstIn, plan.dst, dy);
  memory diffWeights = outputFor(plan.bwdWeightsDiff, plan.weights, dw);
  plan.bwdWeights->execute(cpuStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_DIFF_WEIGHTS, diffWeights}});
  fromInternal(plan.bwdWeightsDiff, plan.weights, dw);
  cpuStream().wait();
}

void setWinograd(bool enabled) {
  if (enabled != winogradEnabled) plans().clear();
  winogradEnabled = enabled;
}

bool convUsesWinograd(const ConvGeometry& g) { return planFor(g).algorithm == dnnl::algorithm::convolution_winograd; }

int64_t convPlanCount() { return static_cast<int64_t>(plans().size()); }

}  // namespace cigl
