#include "base/log.h"

#include <algorithm>
#include <chrono>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <mutex>
#include <stdexcept>

#include "base/paths.h"

namespace ppnet::log {
namespace {

struct State {
  Verbosity verbosity = Verbosity::kNormal;
  std::FILE* json = nullptr;
  std::string command;
  std::mutex mutex;
};

// elapsed_s counts from here: the program's start (static initialisation).
const auto kProcessStart = std::chrono::steady_clock::now();

State& state() {
  static State s;
  return s;
}

// `text` as a JSON string; bytes that are not UTF-8 (a file name on disk) shown as printable() shows them.
std::string json_string(const std::string& text) {
  std::string out = "\"";
  for (const char ch : printable(text)) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string utc_now() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&seconds, &tm);
  char text[80];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return text;
}

void print_line(const std::string& line) {
  std::lock_guard<std::mutex> lock(state().mutex);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace

Field::Field(const char* k, const std::string& value) : key(k), json(json_string(value)) {}
Field::Field(const char* k, const char* value) : key(k), json(json_string(value)) {}
Field::Field(const char* k, int64_t value) : key(k), json(std::to_string(value)) {}
Field::Field(const char* k, bool value) : key(k), json(value ? "true" : "false") {}
Field::Field(const char* k, double value) : key(k) {
  if (!std::isfinite(value)) {
    json = "null";  // JSON has no NaN or infinity
    return;
  }
  char text[32];
  std::snprintf(text, sizeof text, "%.9g", value);
  json = text;
}

void configure(Verbosity verbosity, const std::string& json_path, const std::string& command) {
  State& s = state();
  s.verbosity = verbosity;
  s.command = command;
  if (json_path.empty()) return;
  s.json = std::fopen(json_path.c_str(), "a");
  if (!s.json) throw std::runtime_error("--log-json " + json_path + ": cannot open for appending: " + std::strerror(errno));
  event("started");
}

bool progress_shown() { return state().verbosity != Verbosity::kQuiet; }

std::string format(const char* format, ...) {
  va_list args;
  va_start(args, format);
  va_list again;
  va_copy(again, args);
  const int size = std::vsnprintf(nullptr, 0, format, args);
  va_end(args);
  std::string out(static_cast<size_t>(std::max(size, 0)) + 1, '\0');
  std::vsnprintf(out.data(), out.size(), format, again);
  va_end(again);
  out.resize(static_cast<size_t>(std::max(size, 0)));
  return out;
}

void info(const std::string& line) {
  if (state().verbosity != Verbosity::kQuiet) print_line(line);
}

void detail(const std::string& line) {
  if (state().verbosity == Verbosity::kVerbose) print_line(line);
}

void event(const char* name, std::initializer_list<Field> fields) {
  State& s = state();
  if (!s.json) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - kProcessStart).count();
  std::string line = "{\"time\":" + json_string(utc_now()) + ",\"elapsed_s\":" + Field("", elapsed).json +
                     ",\"command\":" + json_string(s.command) + ",\"event\":" + json_string(name);
  for (const Field& f : fields) line += "," + json_string(f.key) + ":" + f.json;
  line += "}\n";
  std::lock_guard<std::mutex> lock(s.mutex);
  std::fputs(line.c_str(), s.json);
  std::fflush(s.json);
}

}  // namespace ppnet::log
