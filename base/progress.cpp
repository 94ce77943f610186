#include "base/progress.h"

#include "base/log.h"

#include <unistd.h>

#include <cstdio>

namespace ppnet {

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), tty_(::isatty(STDERR_FILENO) == 1) {
  start_ = last_print_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

void Progress::advance(uint64_t n) {
  done_ += n;
  const auto now = std::chrono::steady_clock::now();
  const auto interval = tty_ ? std::chrono::milliseconds(200) : std::chrono::milliseconds(5000);
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock() || finished_ || now - last_print_ < interval) return;
  last_print_ = now;
  print(false);
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  print(true);
}

void Progress::print(bool final) {
  if (!log::progress_shown()) return;
  const uint64_t done = done_.load();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  const double rate = secs > 0 ? static_cast<double>(done) / secs : 0.0;
  const double frac = total_ ? static_cast<double>(done) / static_cast<double>(total_) : 1.0;
  const double eta = rate > 0 ? static_cast<double>(total_ - std::min(done, total_)) / rate : 0.0;
  if (tty_) {
    constexpr int kWidth = 30;
    const int filled = static_cast<int>(frac * kWidth);
    std::fprintf(stderr, "\r%s [%.*s%*s] %llu/%llu %.1f/s ETA %.0fs%s", label_.c_str(), filled,
                 "##############################", kWidth - filled, "",
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), rate,
                 eta, final ? "\n" : "  ");
  } else {
    std::fprintf(stderr, "%s: %llu/%llu (%.0f%%) %.1f/s %s%.0fs\n", label_.c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_),
                 100.0 * frac, rate, final ? "in " : "ETA ", final ? secs : eta);
  }
  std::fflush(stderr);
}

}  // namespace ppnet
