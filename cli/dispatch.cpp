// The list of commands, the top-level usage, and dispatch (which ranks run what).
#include "cli/dispatch.h"

#include <cstdlib>
#include <iostream>

#include "base/version.h"
#include "cli/command.h"
#include "pipeline/runtime/build_info.h"

namespace ppnet::cli {

// Each defined in its cli/<name>_command.cpp.
extern const Command kPrepareCommand, kTrainCommand, kProjectCommand, kLastLayerCommand, kAnalyzeCommand,
    kPruneCommand, kForbidCommand, kRememberCommand, kExplainCommand, kEvaluateCommand, kInfoCommand, kReportCommand,
    kWeightsCommand, kImportCommand, kExportCommand, kCompletionCommand;

// In the order `ppnet --help` lists them.
const std::vector<const Command*>& commands() {
  static const std::vector<const Command*> kCommands = {
      &kPrepareCommand, &kTrainCommand,    &kProjectCommand, &kLastLayerCommand,
      &kAnalyzeCommand, &kPruneCommand,    &kForbidCommand,  &kRememberCommand,
      &kExplainCommand, &kEvaluateCommand, &kInfoCommand,    &kReportCommand,
      &kWeightsCommand, &kImportCommand,  &kExportCommand,   &kCompletionCommand,
  };
  return kCommands;
}

bool secondary_rank() {
  const char* world = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  return world && rank && std::atoi(world) > 1 && std::string(rank) != "0";
}

namespace {

void print_usage(std::ostream& out) {
  out << "ppnet " << kVersion
      << " - ProtoPNet (\"This Looks Like That\") for batch pipelines\n\n"
         "Usage: ppnet <command> [options]\n"
         "       ppnet <command> --help\n\n"
         "Commands:\n";
  for (const Command* c : commands()) {
    std::string name = c->name;
    name.resize(12, ' ');
    out << "  " << name << c->summary << '\n';
  }
  out << "\nOptions:\n"
         "  -h, --help     show this help\n"
         "  -V, --version  show the version and the LibTorch it runs on\n\n"
         "Every command takes --config FILE (name = value lines with the same option names;\n"
         "the command line wins), --quiet or --verbose, and --log-json FILE (one JSON object\n"
         "per event). Exit status: 0 success, 1 failure, 2 usage error, 130/143 interrupted\n"
         "after saving a resumable state. Manual: man ppnet; completion: ppnet completion bash.\n";
}

const Command& command_named(const std::string& name) {
  for (const Command* c : commands()) {
    if (name == c->name) return *c;
  }
  throw UsageError("unknown command '" + name + "'", "");
}

int run_command(const std::string& name, const std::vector<std::string>& args) {
  const Command& command = command_named(name);
  // Commands that are not data-parallel run on rank 0 alone, so that a pipeline launched whole
  // under torchrun does each of its steps once.
  if (!command.data_parallel && secondary_rank()) {
    std::cerr << "ppnet " << name << ": runs on rank 0 only; rank " << std::getenv("RANK") << " has nothing to do\n";
    return 0;
  }
  Options options(command, args);
  return command.run(options);
}

}  // namespace

int run(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string& first = args[0];
  if (first == "-h" || first == "--help") {
    print_usage(std::cout);
    return 0;
  }
  if (first == "-V" || first == "--version") {
    std::cout << pipeline::build_info() << '\n';
    return 0;
  }
  if (first == "help") {
    if (args.size() == 1) {
      print_usage(std::cout);
      return 0;
    }
    return run_command(args[1], {"--help"});
  }
  if (!first.empty() && first[0] == '-') throw UsageError("unknown option '" + first + "'", "");
  return run_command(first, std::vector<std::string>(args.begin() + 1, args.end()));
}

}  // namespace ppnet::cli
