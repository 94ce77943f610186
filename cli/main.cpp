// ppnet: the one place that catches. Usage errors exit 2, other failures 1.
#include <c10/util/Exception.h>

#include <iostream>
#include <new>
#include <regex>

#include "cli/dispatch.h"
#include "base/interrupt.h"

namespace {

// A message for people: JSON's "[json.exception.type_error.302] " tags go (the text after them
// says what was wrong, and the message already names the file).
std::string readable(const std::string& what) {
  static const std::regex kJsonTag(R"(\[json\.exception\.[a-z_]+\.[0-9]+\] )");
  return std::regex_replace(what, kJsonTag, "");
}

}  // namespace

int main(int argc, char** argv) {
  const std::vector<std::string> args(argv + 1, argv + argc);
  try {
    return ppnet::cli::run(args);
  } catch (const ppnet::cli::UsageError& e) {
    const std::string cmd = e.command().empty() ? "ppnet" : "ppnet " + e.command();
    std::cerr << cmd << ": " << e.what() << "\nTry '" << cmd << " --help'.\n";
    return 2;
  } catch (const ppnet::Interrupted& e) {
    std::cerr << "ppnet: " << e.what() << '\n';
    return 128 + e.signal();
  } catch (const c10::Error& e) {  // LibTorch's own: its message without the C++ backtrace
    std::cerr << "ppnet: error: " << e.what_without_backtrace() << '\n';
    return 1;
  } catch (const std::bad_alloc&) {
    std::cerr << "ppnet: error: out of memory\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ppnet: error: " << readable(e.what()) << '\n';
    return 1;
  }
}
