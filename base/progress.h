#pragma once
// Progress of long work on stderr: a redrawn bar on a terminal, a line every few seconds
// otherwise (logs, Make, CI). Thread-safe: workers call advance() from any thread.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

namespace ppnet {

class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  void advance(uint64_t n = 1);
  /// Prints the final state once (also done by the destructor).
  void finish();

 private:
  void print(bool final);
  std::string label_;
  uint64_t total_;
  std::atomic<uint64_t> done_{0};
  bool tty_;
  bool finished_ = false;
  std::mutex mutex_;
  std::chrono::steady_clock::time_point start_, last_print_;
};

}  // namespace ppnet
