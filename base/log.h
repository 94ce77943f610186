#pragma once
// What ppnet tells whoever watches it, beside a command's result on stdout: lines and progress
// for people on stderr at the verbosity the command line chose (--quiet, --verbose), and, with
// --log-json FILE, one JSON object per line for tools that watch runs: the command started, a
// stage begun, an epoch's metrics, a checkpoint saved, a stage finished, the command finished or
// failed, each with its time.

#include <cstdint>
#include <initializer_list>
#include <string>

namespace ppnet::log {

enum class Verbosity { kQuiet, kNormal, kVerbose };

/// Called once, before any work, by the command line. Opens `json_path` (when not empty) for
/// appending, creating it, and writes the "started" event with `command`. Throws
/// std::runtime_error naming the file when it cannot be opened.
void configure(Verbosity verbosity, const std::string& json_path, const std::string& command);

/// Whether progress (bars, periodic lines) goes to stderr: not under --quiet.
bool progress_shown();

/// printf into a string, for info() and detail().
std::string format(const char* format, ...) __attribute__((format(printf, 1, 2)));

/// A line for people on stderr (the newline is added): shown unless --quiet.
void info(const std::string& line);
/// A line only --verbose shows.
void detail(const std::string& line);

/// One field of an event: a key and its value written as JSON.
struct Field {
  Field(const char* key, const std::string& value);
  Field(const char* key, const char* value);
  Field(const char* key, double value);
  Field(const char* key, int64_t value);
  Field(const char* key, int value) : Field(key, static_cast<int64_t>(value)) {}
  Field(const char* key, bool value);
  std::string key, json;
};

/// Appends {"time": "…Z", "elapsed_s": …, "command": …, "event": `name`, fields…} as one line to
/// the --log-json file and flushes it; nothing without --log-json. Thread-safe.
void event(const char* name, std::initializer_list<Field> fields = {});

}  // namespace ppnet::log
