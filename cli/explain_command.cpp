// ppnet explain: every image of a folder explained (heatmaps, JSON, an HTML gallery).
#include <iostream>
#include <regex>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/explain.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

// "--shard I/N" with 0 ≤ I < N.
void parse_shard(const Options& o, const std::string& shard, pipeline::ExplainConfig& c) {
  static const std::regex kShard("([0-9]{1,9})/([0-9]{1,9})");
  std::smatch sm;
  if (!std::regex_match(shard, sm, kShard) || std::stoi(sm[2]) < 1 || std::stoi(sm[1]) >= std::stoi(sm[2])) {
    throw o.error("--shard '" + shard + "': expected I/N with 0 <= I < N");
  }
  c.shard_index = std::stoi(sm[1]);
  c.shard_count = std::stoi(sm[2]);
}

int run(Options& o) {
  pipeline::ExplainConfig c;
  std::string shard = "0/1";
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder of a projected model")
      ("dir", po::value(&c.dir)->value_name("IMGS"),
       "folder of images to explain, recursively (jpg, jpeg, png, bmp, tif, tiff, webp)")
      ("out", po::value(&c.out)->value_name("OUT"), "folder to write the explanations to")
      ("top-k", po::value(&c.top_k)->default_value(c.top_k)->value_name("N"), "prototypes shown per image")
      ("top-classes", po::value(&c.top_classes)->default_value(c.top_classes)->value_name("N"),
       "classes listed with their logits")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "images per forward pass")
      ("shard", po::value(&shard)->default_value(shard)->value_name("I/N"),
       "explain only the I-th of N disjoint parts of the folder (0-based)")
      ("force", po::bool_switch(&c.force), "replace explanations made by a different command");
  o.add_json(c.json);
  o.add_runtime(c.runtime);
  o.add_attribution(c.attribution);
  if (!o.parse()) return 0;
  o.require({"run", "dir", "out"});
  parse_shard(o, shard, c);
  if (c.top_k < 1 || c.top_classes < 1 || c.batch_size < 1) {
    throw o.error("--top-k, --top-classes and --batch-size must be at least 1");
  }
  const auto report = pipeline::run_explain(c);
  for (const auto& f : report.failed) std::cerr << "ppnet explain: failed: " << f << '\n';
  print_result(std::cout, report, c.json);
  if (report.failed.empty()) return 0;
  std::cerr << "ppnet explain: " << report.failed.size() << " could not be read or explained (above); the "
            << report.explained + report.kept << " others are in " << c.out << '\n';
  return 1;
}

}  // namespace

extern const Command kExplainCommand = {
    "explain", "explain every image of a folder: heatmaps, JSON, an HTML gallery",
    "ppnet explain --run RUN --dir IMGS --out OUT [--top-k N] [options]",
    "ppnet explain --run runs/cub --dir photos/ --out explained/\nppnet explain --run runs/cub --dir photos/ --out explained/ --top-k 5 --attribution smoothgrad", false, &run};

}  // namespace ppnet::cli
