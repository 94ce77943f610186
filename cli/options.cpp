#include "cli/options.h"

#include <fstream>
#include <iostream>
#include <regex>

namespace ppnet::cli {

namespace po = boost::program_options;

namespace {

// More threads than this only thrash (and tens of thousands hang the machine starting them).
constexpr int kMaxThreads = 1024;

// The line of a config file that sets `name`, for error messages; 0 when not found.
int config_line_of(const std::string& path, std::string name) {
  while (!name.empty() && name[0] == '-') name.erase(0, 1);
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n) {
    const auto eq = line.find('=');
    std::string key = line.substr(0, eq);
    key.erase(0, key.find_first_not_of(" \t"));
    key.erase(key.find_last_not_of(" \t") + 1);
    if (key == name) return n;
  }
  return 0;
}

}  // namespace

void add_runtime(po::options_description& o, pipeline::RuntimeConfig& rt, bool model) {
  if (model) {
    o.add_options()
        ("amp", po::value<std::string>(&rt.amp)->default_value("off")->value_name("P"),
         "mixed precision of the backbone and add-on layers: off, bf16, or fp16 (CUDA, with a "
         "dynamic loss scale when training); the prototype layer stays float32")
        ("channels-last", po::bool_switch(&rt.channels_last), "run the convolutions in channels-last (NHWC) layout");
  }
  o.add_options()
      ("threads", po::value<int>(&rt.threads)->default_value(0, "all cores")->value_name("N"),
       "LibTorch threads (0: all cores)")
      ("device", po::value<std::string>(&rt.device)->default_value("cpu")->value_name("DEV"),
       "cpu, cuda or cuda:N")
      ("seed", po::value<uint64_t>(&rt.seed)->default_value(1)->value_name("S"), "random seed")
      ("keep-denormals", po::bool_switch(&rt.keep_denormals),
       "compute tiny (denormal) floats exactly instead of as zero: several times slower on x86 "
       "with trained weights; only to measure what flushing them saves");
}

void check_runtime(const std::string& cmd, const pipeline::RuntimeConfig& rt) {
  if (rt.threads < 0 || rt.threads > kMaxThreads) {
    throw UsageError("--threads must be 0 (all cores) or 1…" + std::to_string(kMaxThreads), cmd);
  }
  static const std::regex kDevice("cpu|cuda(:[0-9]+)?");
  if (!std::regex_match(rt.device, kDevice)) {
    throw UsageError("--device '" + rt.device + "': expected cpu, cuda or cuda:N", cmd);
  }
  if (rt.amp != "off" && rt.amp != "bf16" && rt.amp != "fp16") {
    throw UsageError("--amp '" + rt.amp + "': expected off, bf16 or fp16", cmd);
  }
  if (rt.amp == "fp16" && rt.device == "cpu") {
    throw UsageError("--amp fp16 needs --device cuda (on the CPU, use --amp bf16)", cmd);
  }
}

bool parse(const CommandInfo& info, const po::options_description& opts,
           const std::vector<std::string>& args, po::variables_map& vm) {
  const std::string cmd = info.name;
  bool help = false;
  std::string config;
  po::options_description general("General");
  general.add_options()("help,h", po::bool_switch(&help), "show this help")(
      "config", po::value<std::string>(&config)->value_name("FILE"),
      "read options from FILE (name = value lines; the command line wins)");
  po::options_description all;
  all.add(opts).add(general);
  try {
    // No positional arguments: a stray word is an error, not silently ignored.
    po::store(po::command_line_parser(args).options(all).positional({}).run(), vm);
  } catch (const po::error& e) {
    throw UsageError(e.what(), cmd);
  }
  if (vm["help"].as<bool>()) {
    std::cout << info.summary << "\n\nUsage: " << info.synopsis << "\n" << all << '\n';
    return false;
  }
  if (vm.count("config")) {
    const std::string path = vm["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) throw UsageError("--config " + path + ": cannot open the file", cmd);
    try {
      po::store(po::parse_config_file(in, opts), vm);
    } catch (const po::error_with_option_name& e) {
      const int line = config_line_of(path, e.get_option_name());
      throw UsageError("config file " + path + (line ? ", line " + std::to_string(line) : "") +
                           ": " + e.what(),
                       cmd);
    } catch (const po::error& e) {
      throw UsageError("config file " + path + ": " + e.what(), cmd);
    }
  }
  try {
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(e.what(), cmd);
  }
  return true;
}

void require(const std::string& cmd, const po::variables_map& vm,
             const std::vector<std::string>& names) {
  for (const auto& n : names) {
    if (!vm.count(n) || vm[n].defaulted()) throw UsageError("missing --" + n, cmd);
  }
}

}  // namespace ppnet::cli
