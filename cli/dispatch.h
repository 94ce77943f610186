#pragma once
// The ppnet command line: parses arguments (and --config files) into pipeline config structs
// and dispatches to pipeline::run_<command>.

#include <stdexcept>
#include <string>
#include <vector>

namespace ppnet::cli {

/// A mistake in how ppnet was called (unknown command or option, bad or missing value).
/// main() prints it with a hint and exits 2.
class UsageError : public std::runtime_error {
 public:
  UsageError(const std::string& message, std::string command)
      : std::runtime_error(message), command_(std::move(command)) {}
  /// The subcommand whose --help would help, or empty for the top level.
  const std::string& command() const { return command_; }

 private:
  std::string command_;
};

/// Runs `ppnet args...` (args excludes the program name) and returns the exit status.
/// Throws UsageError for usage mistakes and std::exception for failures of the work itself.
int run(const std::vector<std::string>& args);

}  // namespace ppnet::cli
