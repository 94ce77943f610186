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

// `text` as a JSON string. Bytes that are not valid UTF-8 (a file name on disk) become U+FFFD.
std::string quoted(const std::string& text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20) {
      char escaped[8];
      std::snprintf(escaped, sizeof escaped, "\\u%04x", c);
      out += escaped;
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      const size_t length = c >= 0xf0 && c < 0xf5 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
      bool valid = length > 0 && i + length <= text.size();
      for (size_t k = 1; valid && k < length; ++k) valid = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
      if (valid) {
        out.append(text, i, length);
        i += length;
        continue;
      }
      out += "\xef\xbf\xbd";
    }
    ++i;
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

Field::Field(const char* k, const std::string& value) : key(k), json(quoted(value)) {}
Field::Field(const char* k, const char* value) : key(k), json(quoted(value)) {}
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

Verbosity verbosity() { return state().verbosity; }

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

bool events_on() { return state().json != nullptr; }

void event(const char* name, std::initializer_list<Field> fields) {
  State& s = state();
  if (!s.json) return;
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - kProcessStart).count();
  std::string line = "{\"time\":" + quoted(utc_now()) + ",\"elapsed_s\":" + Field("", elapsed).json +
                     ",\"command\":" + quoted(s.command) + ",\"event\":" + quoted(name);
  for (const Field& f : fields) line += "," + quoted(f.key) + ":" + f.json;
  line += "}\n";
  std::lock_guard<std::mutex> lock(s.mutex);
  std::fputs(line.c_str(), s.json);
  std::fflush(s.json);
}

}  // namespace ppnet::log
