// ppnet evaluate: accuracy, loss terms and interpretability metrics of a run on a data split.
#include <cmath>
#include <iostream>
#include <set>
#include <sstream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/evaluate.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

// "--metrics a,b": the names, each known; "all" is every metric.
std::set<std::string> parse_metrics(const Options& o, const std::string& list) {
  static const std::set<std::string> kKnown = {"consistency", "stability", "pointing", "purity", "precision", "sparsity"};
  std::set<std::string> out;
  std::string item;
  std::istringstream is(list);
  while (std::getline(is, item, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item == "all" || kKnown.count(item)) {
      out.insert(item);
    } else {
      throw o.error("--metrics: unknown metric '" + item +
                    "' (expected consistency, stability, pointing, purity, precision, sparsity or all)");
    }
  }
  return out;
}

void add_options(Options& o, pipeline::EvaluateConfig& c, std::string& metrics) {
  o.add()
      ("run", po::value(&c.run)->value_name("RUN"), "run folder")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
      ("split", po::value(&c.split)->default_value(c.split)->value_name("test|val|train"), "test, val or train")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
      ("confusion-csv", po::value(&c.confusion_csv)->value_name("FILE"), "also write the confusion matrix as CSV")
      ("predictions-csv", po::value(&c.predictions_csv)->value_name("FILE"),
       "also write each image's label and prediction as CSV")
      ("metrics", po::value(&metrics)->value_name("LIST"),
       "interpretability metrics, comma-separated: consistency, stability, pointing, purity (these need "
       "part annotations), precision (needs object masks), sparsity; or all (every metric the data "
       "has annotations for)")
      ("precision-k", po::value(&c.precision_k)->default_value(c.precision_k)->value_name("K"),
       "precision: each image's most similar prototypes examined")
      ("part-box", po::value(&c.part_box)->default_value(c.part_box)->value_name("F"),
       "part metrics: side of the box around a map's peak as a share of the image (EvalProtoPNet: 72/224); "
       "0: the 95th-percentile box explain draws")
      ("consistency-threshold", po::value(&c.consistency_threshold)->default_value(c.consistency_threshold)->value_name("F"),
       "consistency: share of a class's images in which one part must lie in the prototype's box")
      ("noise", po::value(&c.noise)->default_value(c.noise)->value_name("SIGMA"),
       "stability: standard deviation of the Gaussian noise added to the normalised input")
      ("purity-k", po::value(&c.purity_k)->default_value(c.purity_k)->value_name("K"),
       "purity: nearest patches examined per prototype");
  o.add_json(c.json);
  o.add_runtime(c.runtime);
  o.add_attribution(c.attribution, "smoothgrad-noise");
}

void validate(const Options& o, const pipeline::EvaluateConfig& c) {
  if (!(c.consistency_threshold > 0 && c.consistency_threshold <= 1)) {
    throw o.error("--consistency-threshold must be in (0, 1]");
  }
  if (!(c.part_box >= 0 && c.part_box <= 1)) throw o.error("--part-box must be in [0, 1]");
  if (!(c.noise >= 0 && std::isfinite(c.noise))) throw o.error("--noise must be a finite number ≥ 0");
  o.within("purity-k", c.purity_k, 1, 1000);
  o.within("precision-k", c.precision_k, 1, 1000);
  if (c.split != "test" && c.split != "val" && c.split != "train") {
    throw o.error("--split '" + c.split + "': expected test, val or train");
  }
  o.require({"run", "data"});
  o.at_least("batch-size", c.batch_size);
}

int run(Options& o) {
  pipeline::EvaluateConfig c;
  std::string metrics;
  add_options(o, c, metrics);
  if (!o.parse()) return 0;
  c.metrics = parse_metrics(o, metrics);
  validate(o, c);
  print_result(std::cout, pipeline::run_evaluate(c), c.json);
  return 0;
}

}  // namespace

extern const Command kEvaluateCommand = {
    "evaluate", "accuracy and loss terms of a run on a data split",
    "ppnet evaluate --run RUN --data DATA [--split test|val|train] [--json] [options]",
    "ppnet evaluate --run runs/cub --data data/cub --split test\nppnet evaluate --run runs/cub --data data/cub --predictions-csv predictions.csv --confusion-csv confusion.csv", true, &run};

}  // namespace ppnet::cli
