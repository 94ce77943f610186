// ppnet weights: whether a pretrained weights file fits a backbone, checked before training.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/formats/weights.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::WeightsConfig c;
  o.add()
      ("arch", po::value(&c.arch)->value_name("ARCH"), "backbone architecture, e.g. resnet50")
      ("weights", po::value(&c.weights)->value_name("FILE"), ".safetensors or zip-format torch.save file")
      ("img-size", po::value(&c.img_size)->default_value(c.img_size)->value_name("N"),
       "input size for the reported feature grid");
  o.add_json(c.json);
  o.add_runtime(c.runtime);
  if (!o.parse()) return 0;
  o.require({"arch", "weights"});
  print_result(std::cout, pipeline::run_weights(c), c.json);
  return 0;
}

}  // namespace

extern const Command kWeightsCommand = {"weights", "check that a pretrained weights file fits a backbone, before training",
                                 "ppnet weights --arch NAME --weights FILE [--json] [options]",
    "ppnet weights --arch resnet50 --weights resnet50.safetensors", false, &run};

}  // namespace ppnet::cli
