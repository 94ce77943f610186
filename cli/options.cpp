#include "cli/command.h"

#include <fstream>
#include <iostream>
#include <regex>

#include "base/log.h"
#include "base/memory_size.h"

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

void Options::add_runtime(pipeline::RuntimeConfig& rt, bool model) {
  runtime_ = &rt;
  if (model) {
    add()("amp", po::value<std::string>(&amp_)->default_value("off")->value_name("off|bf16|fp16"),
          "mixed precision of the backbone and add-on layers: off, bf16, or fp16 (CUDA, with a "
          "dynamic loss scale when training); the prototype layer stays float32")
        ("channels-last", po::bool_switch(&rt.channels_last), "run the convolutions in channels-last (NHWC) layout")
        ("memory-budget", po::value<std::string>(&memory_budget_)->value_name("SIZE"),
         "memory the process may hold while it computes features, such as 6G or 512M (default: a "
         "quarter of the machine's): passes over images take smaller batches to stay within it");
  }
  add()("threads", po::value<int>(&rt.threads)->default_value(0, "all cores")->value_name("N"),
        "LibTorch threads (0: all cores)")
      ("device", po::value<std::string>(&rt.device)->default_value("cpu")->value_name("DEV"),
       "cpu, cuda or cuda:N")
      ("seed", po::value<uint64_t>(&rt.seed)->default_value(1)->value_name("S"), "random seed")
      ("keep-denormals", po::bool_switch(&rt.keep_denormals),
       "compute tiny (denormal) floats exactly instead of as zero: several times slower on x86 "
       "with trained weights; only to measure what flushing them saves");
}

void Options::add_attribution(pipeline::AttributionSettings& s, const char* noise_option) {
  attribution_ = &s;
  noise_option_ = noise_option;
  add()("attribution",
        po::value<std::string>(&attribution_method_)->default_value("upsample")->value_name("upsample|saliency|smoothgrad"),
        "where a prototype looks: upsample (the reference's: the similarity map upsampled bicubically), "
        "saliency (|gradient of its max similarity| per input pixel) or smoothgrad (saliency averaged "
        "over noisy copies); the box is the map's top 5 %")
      ("samples", po::value<int>(&s.samples)->default_value(s.samples)->value_name("N"),
       "smoothgrad: noisy copies per image (one forward, one backward per prototype)")
      (noise_option, po::value<double>(&s.noise)->default_value(s.noise)->value_name("F"),
       "smoothgrad: σ of the Gaussian noise as a share of the input's range");
}

void Options::add_json(bool& json) {
  add()("json", po::bool_switch(&json), "machine-readable output on stdout");
}

namespace {

void check_runtime(const Options& o, pipeline::RuntimeConfig& rt, const std::string& amp, const std::string& budget) {
  if (rt.threads < 0 || rt.threads > kMaxThreads) {
    throw o.error("--threads must be 0 (all cores) or 1…" + std::to_string(kMaxThreads));
  }
  static const std::regex kDevice("cpu|cuda(:[0-9]+)?");
  if (!std::regex_match(rt.device, kDevice)) {
    throw o.error("--device '" + rt.device + "': expected cpu, cuda or cuda:N");
  }
  try {
    rt.amp = pipeline::parse_amp(amp);
  } catch (const std::invalid_argument& e) {
    throw o.error(std::string("--amp ") + e.what());
  }
  if (rt.amp == pipeline::Amp::kFp16 && rt.device == "cpu") {
    throw o.error("--amp fp16 needs --device cuda (on the CPU, use --amp bf16)");
  }
  if (!budget.empty()) {
    try {
      rt.memory_budget = parse_memory_size(budget);
    } catch (const std::invalid_argument& e) {
      throw o.error(std::string("--memory-budget ") + e.what());
    }
  }
}

}  // namespace

bool Options::parse() {
  bool help = false, quiet = false, verbose = false;
  std::string config, log_json;
  po::options_description general("General");
  general.add_options()("help,h", po::bool_switch(&help), "show this help")(
      "config", po::value<std::string>(&config)->value_name("FILE"),
      "read options from FILE (name = value lines; the command line wins)")(
      "quiet,q", po::bool_switch(&quiet), "errors only on stderr: no progress, no notes")(
      "verbose,v", po::bool_switch(&verbose), "also details on stderr: the runtime, every file saved")(
      "log-json", po::value<std::string>(&log_json)->value_name("FILE"),
      "append one JSON object per event to FILE: started, stage, epoch, checkpoint, finished or error, each "
      "with its time");
  po::options_description all;
  all.add(table_).add(general);
  if (described_) {
    for (const auto& option : all.options()) described_->push_back(option);
    return false;
  }
  try {
    // A stray word is an error, not silently ignored (unless the command takes one).
    po::positional_options_description positional;
    if (!positional_.empty()) positional.add(positional_.c_str(), 1);
    po::store(po::command_line_parser(args_).options(all).positional(positional).run(), vm_);
  } catch (const po::error& e) {
    throw error(e.what());
  }
  if (vm_["help"].as<bool>()) {
    std::cout << command_.summary << "\n\nUsage: " << command_.synopsis << "\n" << all << '\n';
    return false;
  }
  if (vm_.count("config")) {
    const std::string path = vm_["config"].as<std::string>();
    std::ifstream in(path);
    if (!in) throw error("--config " + path + ": cannot open the file");
    try {
      po::store(po::parse_config_file(in, table_), vm_);
    } catch (const po::error_with_option_name& e) {
      const int line = config_line_of(path, e.get_option_name());
      throw error("config file " + path + (line ? ", line " + std::to_string(line) : "") + ": " + e.what());
    } catch (const po::error& e) {
      throw error("config file " + path + ": " + e.what());
    }
  }
  try {
    po::notify(vm_);
  } catch (const po::error& e) {
    throw error(e.what());
  }
  if (quiet && verbose) throw error("--quiet and --verbose contradict each other: give one");
  try {
    // Rank 0 alone writes the events, as it alone writes the run.
    log::configure(quiet ? log::Verbosity::kQuiet : verbose ? log::Verbosity::kVerbose : log::Verbosity::kNormal,
                   secondary_rank() ? "" : log_json, command_.name);
  } catch (const std::runtime_error& e) {
    throw error(e.what());
  }
  if (runtime_) check_runtime(*this, *runtime_, amp_, memory_budget_);
  if (attribution_) {
    attribution_->method = choice("attribution", attribution_method_, pipeline::parse_attribution,
                                  "upsample, saliency or smoothgrad");
    within("samples", attribution_->samples, 1, 1024);
    if (!(attribution_->noise >= 0 && attribution_->noise <= 10)) throw error("--" + noise_option_ + " must be in 0…10");
    if (runtime_) attribution_->seed = runtime_->seed;
  }
  return true;
}

void Options::require(std::initializer_list<const char*> names) const {
  for (const char* n : names) {
    if (!given(n)) throw error(std::string("missing --") + n);
  }
}

void Options::at_least(const char* name, int64_t value, int64_t min) const {
  if (value < min) throw error(std::string("--") + name + " must be at least " + std::to_string(min));
}

void Options::within(const char* name, int64_t value, int64_t lo, int64_t hi) const {
  if (value < lo || value > hi) {
    throw error(std::string("--") + name + " must be in " + std::to_string(lo) + "…" + std::to_string(hi));
  }
}

bool Options::given(const char* name) const { return vm_.count(name) && !vm_[name].defaulted(); }

}  // namespace ppnet::cli
