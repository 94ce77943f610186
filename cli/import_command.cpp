// ppnet import: a run from a ProtoPNet trained by the reference implementation.
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "model/names.h"
#include "pipeline/stages/import_model.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

void print(std::ostream& out, const pipeline::ImportResult& r, bool json) {
  if (json) {
    out << nlohmann::json{{"run", r.run},
                          {"reference", r.reference},
                          {"sha256", r.sha256},
                          {"format", r.format},
                          {"arch", r.arch},
                          {"img_size", r.img_size},
                          {"classes", r.classes},
                          {"prototypes", r.prototypes},
                          {"prototype_dim", r.prototype_dim},
                          {"add_on", r.add_on},
                          {"activation", r.activation},
                          {"class_names_from", r.class_names_from},
                          {"found", r.found},
                          {"stage_id", r.stage_id},
                          {"checkpoint", r.checkpoint},
                          {"seconds", r.seconds}}
               .dump(2, ' ', false, nlohmann::json::error_handler_t::replace)
        << '\n';
    return;
  }
  out << r.run << ": imported " << r.reference << " (" << r.format << ") as stage #" << r.stage_id << " in " << r.seconds
      << " s\n"
      << "  " << r.arch << ", " << r.img_size << " px, " << r.classes << " classes (names from " << r.class_names_from << "), "
      << r.prototypes << " prototypes of " << r.prototype_dim << " channels, " << r.add_on << " add-on layers, " << r.activation
      << " activation\n"
      << "  sha256 " << r.sha256 << "\n"
      << "  next: ppnet evaluate --run " << r.run << " --data DATA, or ppnet explain --run " << r.run << " --dir IMAGES\n";
}

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
      ("arch", po::value(&c.arch)->value_name("NAME"), "backbone of a state dict (checked against a whole model's)")
      ("img-size", po::value(&c.img_size)->value_name("N"), "image size of a state dict (checked against a whole model's)")
      ("activation", po::value(&c.activation)->value_name("A"),
       "prototype activation of a state dict, log (default) or linear (checked against a whole model's)");
  o.add_json(c.json);
  o.add_runtime(c.runtime, false);
  if (!o.parse()) return 0;
  o.require({"reference", "run"});
  if (o.given("data") && o.given("class-names")) throw o.error("--class-names is for a run without --data (the data names its classes)");
  if (o.given("img-size")) o.within("img-size", c.img_size, 8, 4096);
  if (o.given("activation")) o.choice("activation", c.activation, model::parse_activation, "log or linear");
  print(std::cout, pipeline::run_import(c), c.json);
  return 0;
}

}  // namespace

extern const Command kImportCommand = {
    "import", "make a run from a ProtoPNet trained by the reference implementation (whole model or state dict)",
    "ppnet import --reference FILE --run RUN [--data DATA | --class-names FILE] [--arch NAME --img-size N] [options]",
    false, &run};

}  // namespace ppnet::cli
