#pragma once
// What the command line offers, read from the same option tables that parse it and print
// --help: the source of the man pages and the shell completions, so that neither can drift
// from the binary. No Boost or LibTorch in this header.

#include <string>
#include <vector>

namespace ppnet::cli {

/// What a shell should offer for an option's value.
enum class ValueKind {
  kNone,    // a switch: it takes no value
  kAny,     // a number, a name, a list: nothing to offer
  kFile,    // value names FILE, PATH, OUT, LIST
  kFolder,  // value names RUN, DATA, DIR, IMGS
  kChoice,  // one of `choices`: a value name "a|b|c", or ARCH (model::backbone_names())
};

struct OptionDoc {
  std::string name;        // "stage" for --stage
  char short_name = 0;     // 'h' for -h, else 0
  std::string value_name;  // "warm|joint", "N"; empty for a switch
  std::string default_text;  // empty when the option has no default
  std::string help;
  ValueKind kind = ValueKind::kNone;
  std::vector<std::string> choices;
};

struct CommandDoc {
  std::string name, summary, synopsis;
  std::vector<std::string> examples;  // shell lines
  std::vector<OptionDoc> options;     // the command's own, then the general ones (--help …)
  std::string positional;             // the option a first plain argument gives, if any
};

/// `words` with `separator` between them (a choice list, a command list).
std::string join(const std::vector<std::string>& words, const char* separator = " ");

/// Every command, in the order `ppnet --help` lists them, with its options as the parser knows
/// them (each command's option function runs without doing anything).
std::vector<CommandDoc> describe_commands();

}  // namespace ppnet::cli
