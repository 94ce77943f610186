#pragma once
// One subcommand of ppnet: its entry (name, summary, synopsis, examples, which ranks run it, and
// the function that states its options, validates them and runs it), and the Options helper
// that every command's function uses for what they share: --help, --config files, --quiet,
// --verbose, --log-json, --json and the runtime options (--threads, --device, --seed,
// --keep-denormals, --amp, --channels-last).
// A new command is one file, cli/<name>_command.cpp, defining its entry
// (`extern const Command kNameCommand = {…};`), plus its name in dispatch.cpp's list; CMake picks
// the file up by its name.

#include <boost/program_options.hpp>
#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/dispatch.h"
#include "pipeline/runtime/runtime_config.h"
#include "pipeline/stages/attribution.h"

namespace ppnet::cli {

class Options;

struct Command {
  const char* name;
  const char* summary;
  const char* synopsis;
  /// Shell lines showing it at work, one per line (the man page's EXAMPLES).
  const char* examples;
  /// Under torchrun: true when every rank runs it (data-parallel), false when rank 0 alone does.
  bool data_parallel;
  /// Adds the command's options to `o`, parses and validates them, runs the command and prints
  /// its report; returns the exit status. Throws UsageError for what the user got wrong.
  int (*run)(Options& o);
};

/// Every command, in the order `ppnet --help` lists them (dispatch.cpp).
const std::vector<const Command*>& commands();

/// A rank other than 0 of a torchrun launch (WORLD_SIZE > 1, RANK ≠ 0).
bool secondary_rank();

/// A command's options as the parser holds them: its own, then the general ones (--help,
/// --config, --quiet, --verbose, --log-json).
using OptionTable = std::vector<boost::shared_ptr<boost::program_options::option_description>>;

/// One command line being parsed for one command.
class Options {
 public:
  Options(const Command& command, std::vector<std::string> args)
      : command_(command), args_(std::move(args)) {}
  /// Options that describe instead of parsing: parse() fills `table` and returns false, so the
  /// command's function returns without doing anything.
  Options(const Command& command, OptionTable& table) : command_(command), described_(&table) {}

  /// Adds to the command's table: o.add()("name", po::value(&x)->value_name("N"), "help")...
  /// The value name tells the shell completion and the man pages what the value is (see
  /// cli/describe.h): FILE, PATH, OUT or LIST a file; RUN, DATA, DIR or IMGS a folder; ARCH a
  /// backbone name; "a|b|c" one of those words.
  boost::program_options::options_description_easy_init add() { return table_.add_options(); }
  /// --threads, --device, --seed, --keep-denormals; with `model` also --amp and --channels-last.
  /// parse() checks them.
  void add_runtime(pipeline::RuntimeConfig& rt, bool model = true);
  /// The first argument that is no option is the value of option --`name` (`ppnet completion
  /// bash`); without this call such an argument is an error.
  void positional(const char* name) { positional_ = name; }
  const std::string& positional_name() const { return positional_; }
  /// --json: machine-readable report on stdout.
  void add_json(bool& json);
  /// --attribution upsample|saliency|smoothgrad, --samples N and the smoothgrad noise as
  /// --`noise_option` (evaluate's --noise is stability's). parse() checks them; the noise seed is
  /// --seed's when add_runtime was called.
  void add_attribution(pipeline::AttributionSettings& s, const char* noise_option = "noise");

  /// Parses the arguments and any --config file into the bound variables. Returns false when
  /// --help was shown (the command then exits 0). Throws UsageError naming the option (and
  /// the config file's line) at fault.
  bool parse();

  /// Throws "missing --NAME" for the first of `names` not given.
  void require(std::initializer_list<const char*> names) const;
  /// Throw "--NAME must be at least MIN" / "--NAME must be in LO…HI" for a value outside.
  void at_least(const char* name, int64_t value, int64_t min = 1) const;
  void within(const char* name, int64_t value, int64_t lo, int64_t hi) const;
  /// `parse(value)` for option --`name`; a UsageError "--NAME 'VALUE': expected EXPECTED" when it
  /// throws std::invalid_argument (the value is none of the names it knows).
  template <class Parse>
  auto choice(const char* name, const std::string& value, Parse parse, const char* expected) const
      -> decltype(parse(value)) {
    try {
      return parse(value);
    } catch (const std::invalid_argument&) {
      throw error(std::string("--") + name + " '" + value + "': expected " + expected);
    }
  }
  /// Whether the user gave `name` (on the command line or in a config file), not its default.
  bool given(const char* name) const;
  const boost::program_options::variables_map& values() const { return vm_; }
  /// A UsageError about this command: `throw o.error("--k must be …")`.
  UsageError error(const std::string& message) const { return UsageError(message, command_.name); }
  const char* name() const { return command_.name; }

 private:
  const Command& command_;
  std::vector<std::string> args_;
  boost::program_options::options_description table_{"Options"};
  pipeline::AttributionSettings* attribution_ = nullptr;
  std::string attribution_method_, noise_option_;
  boost::program_options::variables_map vm_;
  pipeline::RuntimeConfig* runtime_ = nullptr;
  std::string amp_ = "off";  // --amp as given, parsed into runtime_->amp
  std::string memory_budget_;  // --memory-budget as given, parsed into runtime_->memory_budget
  OptionTable* described_ = nullptr;
  std::string positional_;
};

}  // namespace ppnet::cli
