// Wall-clock totals of the sparse kernels' phases (layout passes, gathers, BatchNorm passes), for
// bench:step's "where the time goes". Off by default: a disabled scope costs one relaxed load.
// Phases inside a parallel region are timed on thread 0 only (rows are split evenly, so thread 0's
// time is the region's time up to imbalance).
#pragma once
#include <omp.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace cigl {

enum class Phase : int {
  kInputToLanes,     // NHWC → padded input lanes at a block's entry
  kCompressFilter,   // active weights → lists
  kForwardGather,    // the forward convolution into yLanes (thread 0)
  kForwardMoments,   // BatchNorm batch statistics from yLanes (thread 0)
  kNormalizeToNhwc,  // z = act(BN(y) [+ skip]) transposed to NHWC
  kNormalizeToLanes, // z into the next convolution's input lanes
  kBnGradientSums,   // Σ g, Σ g·(y − mean) of the fused BatchNorm backward
  kBnGradientApply,  // dy into the padded grad lanes
  kDataGather,       // input gradient gather (thread 0)
  kDataFromLanes,    // input gradient transposed to NHWC (thread 0)
  kWeightsGather,    // filter gradient partial sums (thread 0)
  kWeightsReduce,    // filter gradient partial sums combined
  kReluGradToLanes,  // a residual join's ReLU backward into lanes
  kPoolGradToLanes,  // a max pool's gradient into lanes, with BatchNorm's gradient sums of it routed
  kCount
};

inline const char* phaseName(Phase p) {
  static const char* const names[] = {"inputToLanes",     "compressFilter",   "forwardGather",   "forwardMoments", "normalizeToNhwc",
                                      "normalizeToLanes", "bnGradientSums",   "bnGradientApply", "dataGather",     "dataFromLanes",
                                      "weightsGather",    "weightsReduce",    "reluGradToLanes", "poolGradToLanes"};
  return names[static_cast<int>(p)];
}

struct PhaseTotals {
  std::atomic<bool> enabled{false};
  double seconds[static_cast<int>(Phase::kCount)] = {};
  int64_t calls[static_cast<int>(Phase::kCount)] = {};
};

inline PhaseTotals& phaseTotals() {
  static PhaseTotals totals;
  return totals;
}

// Adds the scope's duration to `phase` when timing is on and this is the master thread (thread 0 of a
// parallel region, or the caller outside one).
class PhaseScope {
 public:
  explicit PhaseScope(Phase phase)
      : phase_(phase), on_(phaseTotals().enabled.load(std::memory_order_relaxed) && omp_get_thread_num() == 0) {
    if (on_) start_ = std::chrono::steady_clock::now();
  }
  ~PhaseScope() { stop(); }
  void stop() {
    if (!on_) return;
    on_ = false;
    PhaseTotals& t = phaseTotals();
    t.seconds[static_cast<int>(phase_)] += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    t.calls[static_cast<int>(phase_)]++;
  }
  PhaseScope(const PhaseScope&) = delete;
  PhaseScope& operator=(const PhaseScope&) = delete;

 private:
  Phase phase_;
  bool on_;
  std::chrono::steady_clock::time_point start_;
};

}  // namespace cigl
