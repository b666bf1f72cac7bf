// oneDNN's generated f32 GEMM kernels (dnnl_sgemm and the gemm-based primitives: seen here with Debian's
// 2.6.3, reported upstream against 3.11 as uxlfoundation/oneDNN#4845, fixed by #4855) point the stack
// pointer at a heap workspace while they run, so a signal handled on that thread writes its frame into the
// heap and glibc aborts later ("corrupted size vs. prev_size"). Every signal can do it: the inspector's
// CPU profiler (SIGPROF every 100 µs), Ctrl-C, SIGTERM from a supervisor, SIGCHLD. So the thread that
// calls oneDNN holds back asynchronous signals for the call (they are delivered when it returns), and the
// OpenMP workers, which run nothing but kernels, never take them (the kernel then hands a process-wide
// signal to a thread that can take it).
#pragma once
#include <pthread.h>
#include <signal.h>

namespace cigl {

// Every signal except the ones a fault raises synchronously (blocking those would kill the process
// instead of running its handler). Built once; every oneDNN call reads it.
inline const sigset_t& asynchronousSignals() {
  static const sigset_t set = [] {
    sigset_t s;
    sigfillset(&s);
    for (int fault : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGABRT}) sigdelset(&s, fault);
    return s;
  }();
  return set;
}

// Holds back asynchronous signals on the calling thread for its lifetime; restores the mask it found.
class SignalsHeld {
 public:
  SignalsHeld() { pthread_sigmask(SIG_BLOCK, &asynchronousSignals(), &saved_); }
  ~SignalsHeld() { pthread_sigmask(SIG_SETMASK, &saved_, nullptr); }
  SignalsHeld(const SignalsHeld&) = delete;
  SignalsHeld& operator=(const SignalsHeld&) = delete;

 private:
  sigset_t saved_;
};

// For a thread that only ever runs kernels (an OpenMP worker): never take an asynchronous signal.
inline void refuseAsynchronousSignals() { pthread_sigmask(SIG_BLOCK, &asynchronousSignals(), nullptr); }

}  // namespace cigl
