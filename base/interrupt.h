#pragma once
// SIGINT/SIGTERM as a request to stop at the next safe point rather than an instant death.

#include <stdexcept>
#include <string>

namespace ppnet {

/// While alive, SIGINT and SIGTERM only record the signal; long loops poll stop_requested().
/// The previous handlers come back on destruction.
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
  static bool stop_requested();
  static int signal_number();
};

/// Thrown once the work is in a resumable state after a signal; main() exits 128 + signal.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& what) : std::runtime_error(what), signal_(signal) {}
  int signal() const { return signal_; }

 private:
  int signal_;
};

/// Work that stopped for a cause outside it — a rank lost, a full disk — with all it committed
/// intact: a stage that stops so stays as it was, for --resume once the cause is gone (any other
/// failure marks the stage failed).
class Resumable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A loop's safe point: throws Interrupted(signal, message) when a stop was requested.
void stop_if_requested(const char* message);

}  // namespace ppnet
