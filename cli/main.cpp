// ppnet: the one place that catches. Usage errors exit 2, other failures 1.
#include <c10/util/Exception.h>

#include <iostream>
#include <new>
#include <regex>

#include "base/interrupt.h"
#include "base/log.h"
#include "cli/dispatch.h"

namespace {

// A message for people: JSON's "[json.exception.type_error.302] " tags go (the text after them
// says what was wrong, and the message already names the file).
std::string readable(const std::string& what) {
  static const std::regex kJsonTag(R"(\[json\.exception\.[a-z_]+\.[0-9]+\] )");
  return std::regex_replace(what, kJsonTag, "");
}

// The message goes to stderr and, with --log-json, into an "error" (or "interrupted") event;
// returns `code`.
int fail(const std::string& message, int code, const char* event = "error") {
  std::cerr << message << '\n';
  ppnet::log::event(event, {{"message", message}, {"exit_code", code}});
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    const int code = ppnet::cli::run(args);
    ppnet::log::event("finished", {{"exit_code", code}});
    return code;
  } catch (const ppnet::cli::UsageError& e) {
    const std::string cmd = e.command().empty() ? "ppnet" : "ppnet " + e.command();
    return fail(cmd + ": " + e.what() + "\nTry '" + cmd + " --help'.", 2);
  } catch (const ppnet::Interrupted& e) {
    return fail(std::string("ppnet: ") + e.what(), 128 + e.signal(), "interrupted");
  } catch (const c10::Error& e) {  // LibTorch's own: its message without the C++ backtrace
    return fail(std::string("ppnet: error: ") + e.what_without_backtrace(), 1);
  } catch (const std::bad_alloc&) {
    return fail("ppnet: error: out of memory", 1);
  } catch (const std::exception& e) {
    return fail("ppnet: error: " + readable(e.what()), 1);
  }
}
