#pragma once
// What every command's option parsing shares: its help text, --config files, the runtime
// options (--threads, --device, --seed, --keep-denormals) and required options. Each command
// states its own options table and validation with these.

#include <boost/program_options.hpp>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "pipeline/config.h"

namespace ppnet::cli {

struct CommandInfo {
  const char* name;
  const char* summary;
  const char* synopsis;
};

/// Parses `args` against `opts` plus --help and --config. Returns false when help was shown.
/// Throws UsageError naming the option (and the config file's line) at fault.
bool parse(const CommandInfo& info, const boost::program_options::options_description& opts,
           const std::vector<std::string>& args, boost::program_options::variables_map& vm);

/// --threads, --device, --seed, --keep-denormals; with `model` also --amp and --channels-last.
void add_runtime(boost::program_options::options_description& o, pipeline::RuntimeConfig& rt, bool model = true);
/// Throws UsageError for a negative --threads or an unknown --device.
void check_runtime(const std::string& cmd, const pipeline::RuntimeConfig& rt);
/// Throws UsageError "missing --NAME" for the first of `names` not given.
void require(const std::string& cmd, const boost::program_options::variables_map& vm,
             const std::vector<std::string>& names);

/// The commands that live in a file of their own (cli/<name>_command.cpp).
int run_analyze_command(const CommandInfo& info, const std::vector<std::string>& args);
int run_prune_command(const CommandInfo& info, const std::vector<std::string>& args);

}  // namespace ppnet::cli
