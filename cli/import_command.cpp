// ppnet import: a run from a ProtoPNet trained by the reference implementation.
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "model/names.h"
#include "pipeline/stages/import_model.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

int run(Options& o) {
  pipeline::ImportConfig c;
  o.add()
      ("reference", po::value(&c.reference)->value_name("FILE"),
       "the model: the reference's torch.save(ppnet) file (zip or legacy format), or a state dict "
       "(.pth, .safetensors) with the reference's names")
      ("run", po::value(&c.run)->value_name("RUN"), "new run folder")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data the model was trained on (its classes are the run's)")
      ("class-names", po::value(&c.class_names)->value_name("FILE"),
       "without --data: one class name per line, in the model's class order (default: 0, 1, …)")
      ("arch", po::value(&c.arch)->value_name("ARCH"), "backbone of a state dict (checked against a whole model's)")
      ("img-size", po::value(&c.img_size)->value_name("N"), "image size of a state dict (checked against a whole model's)")
      ("activation", po::value(&c.activation)->value_name("log|linear"),
       "prototype activation of a state dict, log (default) or linear (checked against a whole model's)");
  o.add_json(c.json);
  o.add_runtime(c.runtime, false);
  if (!o.parse()) return 0;
  o.require({"reference", "run"});
  if (o.given("data") && o.given("class-names")) throw o.error("--class-names is for a run without --data (the data names its classes)");
  if (o.given("img-size")) o.within("img-size", c.img_size, 8, 4096);
  if (o.given("activation")) o.choice("activation", c.activation, model::parse_activation, "log or linear");
  print_result(std::cout, pipeline::run_import(c), c.json);
  return 0;
}

}  // namespace

extern const Command kImportCommand = {
    "import", "make a run from a ProtoPNet trained by the reference implementation (whole model or state dict)",
    "ppnet import --reference FILE --run RUN [--data DATA | --class-names FILE] [--arch NAME --img-size N] [options]",
    "ppnet import --reference saved_models/vgg19/10push0.7413.pth --run runs/imported --data data/cub\nppnet import --reference state.safetensors --run runs/imported --img-size 224 --class-names classes.txt",
    false, &run};

}  // namespace ppnet::cli
