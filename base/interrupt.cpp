#include "base/interrupt.h"

#include <csignal>

namespace ppnet {
namespace {
// The one piece of process-wide state a signal handler can write to.
volatile std::sig_atomic_t g_signal = 0;
struct sigaction g_old_int, g_old_term;
extern "C" void on_signal(int sig) { g_signal = sig; }
}  // namespace

InterruptScope::InterruptScope() {
  g_signal = 0;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

InterruptScope::~InterruptScope() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

bool InterruptScope::stop_requested() { return g_signal != 0; }
int InterruptScope::signal_number() { return static_cast<int>(g_signal); }

void stop_if_requested(const char* message) {
  if (InterruptScope::stop_requested()) throw Interrupted(InterruptScope::signal_number(), message);
}

}  // namespace ppnet
