#include "conv.h"

#include <dnnl.hpp>
#include <map>
#include <memory>
#include <tuple>

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

// Everything oneDNN needs for one geometry; backward parts are created on first use.
struct ConvPlan {
  memory::desc src, weights, dst;  // user layouts: nhwc, hwio, nhwc
  memory::dims strides, padL, padR;
  std::unique_ptr<dnnl::convolution_forward::primitive_desc> fwdPd;
  std::unique_ptr<dnnl::convolution_forward> fwd;
  Relayout fwdWeights;
  std::unique_ptr<dnnl::convolution_backward_data> bwdData;
  Relayout bwdDataWeights;
  std::unique_ptr<dnnl::convolution_backward_weights> bwdWeights;
  Relayout bwdWeightsDiff;

  explicit ConvPlan(const ConvGeometry& g)
      : src({g.batch, g.inChannels, g.inHeight, g.inWidth}, dt::f32, tag::nhwc),
        weights({g.outChannels, g.inChannels, g.kernelHeight, g.kernelWidth}, dt::f32, tag::hwio),
        dst({g.batch, g.outChannels, g.outHeight, g.outWidth}, dt::f32, tag::nhwc),
        strides({g.strideHeight, g.strideWidth}),
        padL({g.padTop, g.padLeft}),
        padR({g.padBottom, g.padRight}) {
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, src, anyWeights,
                                      dst, strides, padL, padR);
    fwdPd = std::make_unique<dnnl::convolution_forward::primitive_desc>(d, cpuEngine());
    fwd = std::make_unique<dnnl::convolution_forward>(*fwdPd);
    fwdWeights.init(weights, fwdPd->weights_desc(), true);
  }

  void ensureBackwardData() {
    if (bwdData) return;
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, src, anyWeights, dst, strides, padL, padR);
    dnnl::convolution_backward_data::primitive_desc pd(d, cpuEngine(), *fwdPd);
    bwdData = std::make_unique<dnnl::convolution_backward_data>(pd);
    bwdDataWeights.init(weights, pd.weights_desc(), true);
  }

  void ensureBackwardWeights() {
    if (bwdWeights) return;
    const memory::desc anyWeights(weights.dims(), dt::f32, tag::any);
    dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, src, anyWeights, dst, strides, padL, padR);
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

// The weights in the layout `relayout` wants, reordered from the user's HWIO buffer when needed.
memory weightsFor(ConvPlan& plan, Relayout& relayout, const float* w) {
  memory user(plan.weights, cpuEngine(), const_cast<float*>(w));
  if (!relayout.active()) return user;
  relayout.reorder->execute(cpuStream(), user, *relayout.buffer);
  return *relayout.buffer;
}

}  // namespace

void convForward(const ConvGeometry& g, const float* x, const float* w, float* y) {
  ConvPlan& plan = planFor(g);
  memory weights = weightsFor(plan, plan.fwdWeights, w);
  memory src(plan.src, cpuEngine(), const_cast<float*>(x));
  memory dst(plan.dst, cpuEngine(), y);
  plan.fwd->execute(cpuStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}});
  cpuStream().wait();
}

void convBackwardData(const ConvGeometry& g, const float* dy, const float* w, float* dx) {
  ConvPlan& plan = planFor(g);
  plan.ensureBackwardData();
  memory weights = weightsFor(plan, plan.bwdDataWeights, w);
  memory diffDst(plan.dst, cpuEngine(), const_cast<float*>(dy));
  memory diffSrc(plan.src, cpuEngine(), dx);
  plan.bwdData->execute(cpuStream(), {{DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DIFF_SRC, diffSrc}});
  cpuStream().wait();
}

void convBackwardWeights(const ConvGeometry& g, const float* x, const float* dy, float* dw) {
  ConvPlan& plan = planFor(g);
  plan.ensureBackwardWeights();
  memory src(plan.src, cpuEngine(), const_cast<float*>(x));
  memory diffDst(plan.dst, cpuEngine(), const_cast<float*>(dy));
  memory user(plan.weights, cpuEngine(), dw);
  memory diffWeights = plan.bwdWeightsDiff.active() ? *plan.bwdWeightsDiff.buffer : user;
  plan.bwdWeights->execute(cpuStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, diffDst}, {DNNL_ARG_DIFF_WEIGHTS, diffWeights}});
  if (plan.bwdWeightsDiff.active()) plan.bwdWeightsDiff.reorder->execute(cpuStream(), diffWeights, user);
  cpuStream().wait();
}

int64_t convPlanCount() { return static_cast<int64_t>(plans().size()); }

}  // namespace cigl
