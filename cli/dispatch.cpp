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
    kWeightsCommand, kImportCommand, kExportCommand;

namespace {

// In the order `ppnet --help` lists them.
const std::vector<const Command*>& commands() {
  static const std::vector<const Command*> kCommands = {
      &kPrepareCommand, &kTrainCommand,    &kProjectCommand, &kLastLayerCommand,
      &kAnalyzeCommand, &kPruneCommand,    &kForbidCommand,  &kRememberCommand,
      &kExplainCommand, &kEvaluateCommand, &kInfoCommand,    &kReportCommand,
      &kWeightsCommand, &kImportCommand,  &kExportCommand,
  };
  return kCommands;
}

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
         "the command line wins). Exit status: 0 success, 1 failure, 2 usage error,\n"
         "130/143 interrupted after saving a resumable state.\n";
}

const Command& command_named(const std::string& name) {
  for (const Command* c : commands()) {
    if (name == c->name) return *c;
  }
  throw UsageError("unknown command '" + name + "'", "");
}

// A rank other than 0 of a torchrun launch (WORLD_SIZE > 1, RANK ≠ 0).
bool secondary_rank() {
  const char* world = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  return world && rank && std::atoi(world) > 1 && std::string(rank) != "0";
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
