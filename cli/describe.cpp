#include "cli/describe.h"

#include <set>
#include <sstream>

#include "cli/command.h"
#include "model/names.h"

namespace ppnet::cli {

namespace po = boost::program_options;

namespace {

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::stringstream in(text);
  for (std::string part; std::getline(in, part, separator);) parts.push_back(part);
  return parts;
}

// What a value named `value_name` is, and the words it can be.
ValueKind kind_of(const std::string& value_name, std::vector<std::string>& choices) {
  static const std::set<std::string> kFiles = {"FILE", "PATH", "OUT", "LIST"};
  static const std::set<std::string> kFolders = {"RUN", "DATA", "DIR", "IMGS"};
  if (value_name.find('|') != std::string::npos) {
    choices = split(value_name, '|');
    return ValueKind::kChoice;
  }
  if (value_name == "ARCH") {
    choices = model::backbone_names();
    return ValueKind::kChoice;
  }
  if (kFiles.count(value_name)) return ValueKind::kFile;
  if (kFolders.count(value_name)) return ValueKind::kFolder;
  return ValueKind::kAny;
}

OptionDoc describe(const po::option_description& option) {
  OptionDoc doc;
  doc.name = option.long_name();
  // format_name() is "-h [ --help ]" for an option with a short name, "--help" without.
  const std::string shown = option.format_name();
  if (shown.size() >= 2 && shown[0] == '-' && shown[1] != '-') doc.short_name = shown[1];
  doc.help = option.description();
  const auto& semantic = *option.semantic();
  if (semantic.max_tokens() == 0) return doc;  // a switch
  // The semantic's name is "VALUE" or "VALUE (=DEFAULT)".
  const std::string name = semantic.name();
  const auto open = name.find(" (=");
  doc.value_name = name.substr(0, open);
  if (open != std::string::npos && name.size() > open + 4) doc.default_text = name.substr(open + 3, name.size() - open - 4);
  doc.kind = kind_of(doc.value_name, doc.choices);
  return doc;
}

}  // namespace

std::string join(const std::vector<std::string>& words, const char* separator) {
  std::string out;
  for (const auto& w : words) out += (out.empty() ? "" : separator) + w;
  return out;
}

std::vector<CommandDoc> describe_commands() {
  std::vector<CommandDoc> docs;
  for (const Command* command : commands()) {
    CommandDoc doc;
    doc.name = command->name;
    doc.summary = command->summary;
    doc.synopsis = command->synopsis;
    doc.examples = split(command->examples, '\n');
    OptionTable table;
    Options options(*command, table);
    command->run(options);
    for (const auto& option : table) doc.options.push_back(describe(*option));
    doc.positional = options.positional_name();
    docs.push_back(std::move(doc));
  }
  return docs;
}

}  // namespace ppnet::cli
