// ppnet train: the warm or joint stage of everything before the last layer, resumable.
#include <cmath>
#include <iostream>

#include "cli/command.h"
#include "cli/print_result.h"
#include "pipeline/stages/train.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;

// The options that name one of a closed set, as given; parsed into the config by validate().
struct Names {
  std::string add_on = "regular", activation = "log", resize = "bilinear", fine_annotation_form = "serial";
};

void add_options(Options& o, pipeline::TrainConfig& c, Names& n, bool& json) {
  o.add()
      ("stage", po::value(&c.stage)->value_name("warm|joint"), "warm or joint")
      ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
      ("run", po::value(&c.run)->value_name("RUN"), "run folder (created by the first train)")
      ("resume", po::bool_switch(&c.resume), "continue the interrupted stage from its last checkpoint "
       "(a finished stage: nothing to do)")
      ("arch", po::value(&c.arch)->default_value(c.arch)->value_name("ARCH"), "backbone architecture (new runs)")
      ("img-size", po::value(&c.img_size)->default_value(c.img_size)->value_name("N"), "model input size in pixels (new runs)")
      ("prototypes-per-class", po::value(&c.prototypes_per_class)->default_value(c.prototypes_per_class)->value_name("N"),
       "prototypes each class owns (new runs)")
      ("prototype-dim", po::value(&c.prototype_dim)->default_value(c.prototype_dim)->value_name("D"),
       "channels of a prototype (new runs)")
      ("add-on", po::value(&n.add_on)->default_value(n.add_on)->value_name("regular|bottleneck"), "regular or bottleneck (new runs)")
      ("activation", po::value(&n.activation)->default_value(n.activation)->value_name("log|linear"),
       "prototype activation (new runs): log, log((d+1)/(d+1e-4)) as the paper, or linear, -d")
      ("resize", po::value(&n.resize)->default_value(n.resize)->value_name("bilinear|antialias"),
       "how images are resized to --img-size (new runs): bilinear (OpenCV), or antialias, as PIL's bilinear filter "
       "and so the reference's transforms")
      ("weights", po::value(&c.weights)->value_name("FILE"),
       "pretrained backbone weights, .safetensors or torch.save .pth (new runs)")
      ("epochs", po::value<int>()->value_name("N"),
       "epochs of this stage (0 skips it); default warm 5, joint 10 with --weights, warm 0, joint 12 from scratch")
      ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "training batch size")
      ("eval-batch-size", po::value(&c.eval_batch_size)->default_value(c.eval_batch_size)->value_name("N"),
       "evaluation batch size")
      ("lr-backbone", po::value<double>()->value_name("LR"),
       "joint: backbone learning rate (default 1e-4 with --weights, 1e-3 from scratch)")
      ("lr-add-on", po::value(&c.lr_add_on)->default_value(c.lr_add_on)->value_name("LR"), "add-on layers learning rate")
      ("lr-prototypes", po::value(&c.lr_prototypes)->default_value(c.lr_prototypes)->value_name("LR"), "prototypes learning rate")
      ("weight-decay", po::value(&c.weight_decay)->default_value(c.weight_decay)->value_name("WD"),
       "weight decay of backbone and add-on layers")
      ("lr-schedule", po::value<std::string>()->value_name("step|cosine"),
       "joint: step (StepLR: --lr-step, --lr-gamma) or cosine (decay to 0 over the stage); "
       "default step with --weights, cosine from scratch")
      ("lr-step", po::value(&c.lr_step)->default_value(c.lr_step)->value_name("N"), "joint, step: StepLR step in epochs")
      ("lr-gamma", po::value(&c.lr_gamma)->default_value(c.lr_gamma)->value_name("G"), "joint, step: StepLR factor")
      ("lr-step-offset", po::value(&c.lr_step_offset)->default_value(c.lr_step_offset)->value_name("N"),
       "joint, step: epoch e runs at gamma^floor((e + N) / lr-step); 1 is the reference's schedule, which steps "
       "its scheduler before each epoch")
      ("cross-entropy", po::value(&c.cross_entropy)->default_value(c.cross_entropy)->value_name("C"), "loss coefficient")
      ("cluster", po::value(&c.cluster)->default_value(c.cluster)->value_name("C"), "loss coefficient")
      ("separation", po::value(&c.separation)->default_value(c.separation)->value_name("C"), "loss coefficient")
      ("l1", po::value(&c.l1)->default_value(c.l1)->value_name("C"), "loss coefficient of the off-class L1")
      ("fine-annotation", po::value(&c.fine_annotation)->default_value(c.fine_annotation)->value_name("C"),
       "loss coefficient of IAIA-BL's fine annotation: similarity outside the object masks of the data "
       "(DATA/masks/) is penalised; 0 is off, IAIA-BL used 0.001")
      ("annotated-fraction", po::value(&c.annotated_fraction)->default_value(c.annotated_fraction)->value_name("F"),
       "fine annotation: the seeded share of source images whose masks it uses")
      ("fine-annotation-form", po::value(&n.fine_annotation_form)->default_value(n.fine_annotation_form)->value_name("serial|l2"),
       "fine annotation: serial (one norm of an image's maps: other classes' everywhere, its class's off the "
       "object) or l2 (one norm per own-class prototype, off the object)")
      ("forget", po::value(&c.forget)->default_value(c.forget)->value_name("C"),
       "loss coefficient of ProtoPDebug's forgetting loss: similarity of a class's prototypes to the run's "
       "forbidden concepts ('ppnet forbid')")
      ("remember", po::value(&c.remember)->default_value(c.remember)->value_name("C"),
       "loss coefficient of ProtoPDebug's remembering loss: similarity to the remembered concepts is rewarded")
      ("forbid-threshold", po::value<double>()->value_name("S"),
       "the forgetting loss counts only similarity to a forbidden concept above S (default: the similarity at "
       "squared distance 1, 0.693 with the log activation, as 'ppnet project'; 0: ProtoPDebug's whole similarity)")
      ("flip", po::value(&c.flip)->default_value(c.flip)->value_name("P"),
       "online augmentation: flip each training image left to right with probability P, anew every epoch "
       "(0: off, as the reference; for data whose classes do not depend on the direction, such as garments or birds)")
      ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(0)->value_name("N"),
       "also checkpoint every N batches (0: at epoch ends only)")
      ("restart-optimizer", po::bool_switch(&c.restart_optimizer),
       "joint: begin with a fresh Adam state and StepLR schedule instead of continuing those of the "
       "run's previous joint stage (the reference keeps them across push cycles)")
      ("bucket-mb", po::value(&c.bucket_mb)->default_value(c.bucket_mb)->value_name("MB"),
       "data-parallel: gradients are summed across ranks in buckets of about MB megabytes (the first "
       "1 MB), each as soon as the backward pass has produced it");
  o.add_json(json);
  o.add_runtime(c.runtime);
}

// The options whose default depends on the run (a pretrained backbone or not) are optional.
void read_optional(const Options& o, pipeline::TrainConfig& c) {
  const auto& vm = o.values();
  if (vm.count("epochs")) c.epochs = vm["epochs"].as<int>();
  if (vm.count("lr-backbone")) c.lr_backbone = vm["lr-backbone"].as<double>();
  if (vm.count("lr-schedule")) {
    c.lr_schedule = o.choice("lr-schedule", vm["lr-schedule"].as<std::string>(), pipeline::parse_schedule, "step or cosine");
  }
  for (const char* opt : {"arch", "img-size", "prototypes-per-class", "prototype-dim", "add-on", "activation", "resize"}) {
    if (o.given(opt)) c.given.insert(opt);
  }
}

void validate(const Options& o, pipeline::TrainConfig& c, const Names& n) {
  if (o.values().count("stage") && c.stage != "warm" && c.stage != "joint") {
    throw o.error("--stage '" + c.stage + "': expected warm or joint");
  }
  o.require({"stage", "data", "run"});
  c.resize = o.choice("resize", n.resize, pipeline::parse_resize, "bilinear or antialias");
  c.activation = o.choice("activation", n.activation, model::parse_activation, "log or linear");
  c.add_on = o.choice("add-on", n.add_on, model::parse_add_on_type, "regular or bottleneck");
  c.fine_annotation_form =
      o.choice("fine-annotation-form", n.fine_annotation_form, model::parse_fine_annotation_form, "serial or l2");
  if (!(c.fine_annotation >= 0 && c.fine_annotation <= 1000)) throw o.error("--fine-annotation must be a number in [0, 1000]");
  if (!(c.flip >= 0 && c.flip <= 1)) throw o.error("--flip must be a probability in [0, 1]");
  if (!(c.annotated_fraction > 0 && c.annotated_fraction <= 1)) throw o.error("--annotated-fraction must be in (0, 1]");
  if (!(c.forget >= 0 && c.forget <= 1e6)) throw o.error("--forget must be a number in [0, 1e6]");
  if (!(c.remember >= 0 && c.remember <= 1e6)) throw o.error("--remember must be a number in [0, 1e6]");
  if (o.values().count("forbid-threshold")) {
    c.forbid_threshold = o.values()["forbid-threshold"].as<double>();
    if (!std::isfinite(*c.forbid_threshold)) throw o.error("--forbid-threshold must be a finite number");
  }
  for (const auto& [opt, v] : {std::pair<const char*, int>{"batch-size", c.batch_size}, {"eval-batch-size", c.eval_batch_size},
                               {"img-size", c.img_size}, {"prototypes-per-class", c.prototypes_per_class},
                               {"prototype-dim", c.prototype_dim}, {"lr-step", c.lr_step}}) {
    o.at_least(opt, v);
  }
  if (!(c.bucket_mb > 0 && c.bucket_mb <= 4096)) throw o.error("--bucket-mb must be in (0, 4096]");
  if (c.epochs.value_or(0) < 0 || c.checkpoint_every < 0) {
    throw o.error("--epochs and --checkpoint-every must be 0 or more");
  }
  o.within("lr-step-offset", c.lr_step_offset, 0, 1000);
  // Ranges wide enough for any sensible recipe, narrow enough that float32 cannot overflow.
  for (const auto& [opt, v] : {std::pair<const char*, double>{"lr-backbone", c.lr_backbone.value_or(1.0)},
                               {"lr-add-on", c.lr_add_on}, {"lr-prototypes", c.lr_prototypes}, {"lr-gamma", c.lr_gamma}}) {
    if (!(v > 0 && v <= 100)) throw o.error(std::string("--") + opt + " must be a number in (0, 100]");
  }
  for (const auto& [opt, v] : {std::pair<const char*, double>{"weight-decay", c.weight_decay}, {"l1", c.l1}}) {
    if (!(v >= 0 && v <= 1000)) throw o.error(std::string("--") + opt + " must be a number in [0, 1000]");
  }
  for (const auto& [opt, v] : {std::pair<const char*, double>{"cross-entropy", c.cross_entropy}, {"cluster", c.cluster},
                               {"separation", c.separation}}) {
    if (!(std::abs(v) <= 1000)) throw o.error(std::string("--") + opt + " must be a number in [-1000, 1000]");
  }
}

int run(Options& o) {
  pipeline::TrainConfig c;
  Names names;
  bool json = false;
  add_options(o, c, names, json);
  if (!o.parse()) return 0;
  read_optional(o, c);
  validate(o, c, names);
  print_result(std::cout, pipeline::run_train(c), json);
  return 0;
}

}  // namespace

extern const Command kTrainCommand = {
    "train", "train everything before the last layer, stage warm or joint (resumable)",
    "ppnet train --stage warm|joint --data DATA --run RUN [options]",
    "ppnet train --stage warm --data data/cub --run runs/cub --arch vgg19 --weights vgg19.safetensors\nppnet train --stage joint --data data/cub --run runs/cub --resume\ntorchrun --standalone --nproc_per_node 2 --redirects 2 --tee 2 --no_python ppnet train --stage joint --data data/cub --run runs/cub", true, &run};

}  // namespace ppnet::cli
