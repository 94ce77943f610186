// ppnet: the one place that catches. Usage errors exit 2, other failures 1.
#include <c10/util/Exception.h>

#include <iostream>

#include "cli/dispatch.h"
#include "base/interrupt.h"

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
  } catch (const std::exception& e) {
    std::cerr << "ppnet: error: " << e.what() << '\n';
    return 1;
  }
}
