#include "cli/commands.h"

#include <cstdlib>

#include <boost/program_options.hpp>
#include <cmath>
#include <fstream>
#include <iostream>
#include <regex>
#include <set>
#include <sstream>

#include "cli/options.h"
#include "cli/report_output.h"
#include "pipeline/commands.h"
#include "pipeline/config.h"

namespace ppnet::cli {
namespace {

namespace po = boost::program_options;


const std::vector<CommandInfo>& commands() {
  static const std::vector<CommandInfo> kCommands = {
      {"prepare", "turn raw data (CUB-200-2011, class folders, IDX) into a prepared data folder",
       "ppnet prepare (--cub PATH | --folder PATH | --idx PATH) --out DATA [options]"},
      {"train", "train everything before the last layer, stage warm or joint (resumable)",
       "ppnet train --stage warm|joint --data DATA --run RUN [options]"},
      {"project", "push each prototype onto its nearest training patch of its own class",
       "ppnet project --data DATA --run RUN [options]"},
      {"last-layer", "optimise the last layer with the features frozen",
       "ppnet last-layer --data DATA --run RUN [--solver prox|adam] [options]"},
      {"analyze", "each prototype's nearest patches over a split, recorded with pictures",
       "ppnet analyze --run RUN --data DATA [--k 5] [--split push|test|val|train] [--json] [options]"},
      {"prune", "remove prototypes whose nearest patches are of other classes, or duplicates",
       "ppnet prune --run RUN --data DATA [--k 6] [--threshold 3] [--duplicates] [--dry-run] [options]"},
      {"explain", "explain every image of a folder: heatmaps, JSON, an HTML gallery",
       "ppnet explain --run RUN --dir IMGS --out OUT [--top-k N] [options]"},
      {"evaluate", "accuracy and loss terms of a run on a data split",
       "ppnet evaluate --run RUN --data DATA [--split test|val|train] [--json] [options]"},
      {"info", "stages, epochs and metrics recorded in a run", "ppnet info --run RUN [--json]"},
      {"report", "one self-contained HTML page: training curves, evaluation, prototypes",
       "ppnet report --run RUN [--out FILE]"},
      {"weights", "check that a pretrained weights file fits a backbone, before training",
       "ppnet weights --arch NAME --weights FILE [--json] [options]"},
  };
  return kCommands;
}

void print_usage(std::ostream& out) {
  out << "ppnet " << PPNET_VERSION
      << " - ProtoPNet (\"This Looks Like That\") for batch pipelines\n\n"
         "Usage: ppnet <command> [options]\n"
         "       ppnet <command> --help\n\n"
         "Commands:\n";
  for (const auto& c : commands()) {
    std::string name = c.name;
    name.resize(12, ' ');
    out << "  " << name << c.summary << '\n';
  }
  out << "\nOptions:\n"
         "  -h, --help     show this help\n"
         "  -V, --version  show the version and the LibTorch it runs on\n\n"
         "Every command takes --config FILE (name = value lines with the same option names;\n"
         "the command line wins). Exit status: 0 success, 1 failure, 2 usage error,\n"
         "130/143 interrupted after saving a resumable state.\n";
}

// "--metrics a,b": the names, each known; "all" is every metric.
std::set<std::string> parse_metrics(const std::string& cmd, const std::string& list) {
  static const std::set<std::string> kKnown = {"consistency", "stability", "pointing", "purity", "sparsity"};
  std::set<std::string> out;
  std::string item;
  std::istringstream is(list);
  while (std::getline(is, item, ',')) {
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (item == "all") {
      out.insert(kKnown.begin(), kKnown.end());
    } else if (kKnown.count(item)) {
      out.insert(item);
    } else {
      throw UsageError("--metrics: unknown metric '" + item +
                           "' (expected consistency, stability, pointing, purity, sparsity or all)",
                       cmd);
    }
  }
  return out;
}

const CommandInfo& info_of(const std::string& name) {
  for (const auto& c : commands()) {
    if (name == c.name) return c;
  }
  throw UsageError("unknown command '" + name + "'", "");
}

// A rank other than 0 of a torchrun launch (WORLD_SIZE > 1, RANK ≠ 0).
bool secondary_rank() {
  const char* world = std::getenv("WORLD_SIZE");
  const char* rank = std::getenv("RANK");
  return world && rank && std::atoi(world) > 1 && std::string(rank) != "0";
}

int run_command(const std::string& name, const std::vector<std::string>& args) {
  // train, last-layer, project and evaluate work data-parallel; of the other commands rank 0
  // alone runs, so that a pipeline launched whole under torchrun does each of its steps once.
  const bool parallel = name == "train" || name == "last-layer" || name == "project" || name == "evaluate";
  if (!parallel && secondary_rank()) {
    std::cerr << "ppnet " << name << ": runs on rank 0 only; rank " << std::getenv("RANK") << " has nothing to do\n";
    return 0;
  }
  const CommandInfo& info = info_of(name);
  po::options_description o("Options");
  po::variables_map vm;

  if (name == "prepare") {
    pipeline::PrepareConfig c;
    bool json = false;
    o.add_options()
        ("cub", po::value(&c.cub)->value_name("PATH"), "CUB_200_2011.tgz or its extracted folder")
        ("folder", po::value(&c.folder)->value_name("PATH"),
         "a folder of class folders, or one with train/ and test/ trees of them")
        ("idx", po::value(&c.idx)->value_name("PATH"), "a folder of MNIST-format IDX files (gzipped or not)")
        ("out", po::value(&c.out)->value_name("DATA"), "the prepared data folder to write")
        ("copies", po::value(&c.copies)->default_value(c.copies)->value_name("N"),
         "augmented copies per operation (rotate, skew, shear) and training image; 0: none")
        ("val-fraction", po::value(&c.val_fraction)->default_value(c.val_fraction)->value_name("F"),
         "seeded share of each class's training images held out as val/")
        ("test-fraction", po::value(&c.test_fraction)->default_value(c.test_fraction)->value_name("F"),
         "--folder without train/ and test/: seeded share of each class used as test/")
        ("size", po::value(&c.size)->default_value(c.size)->value_name("N"),
         "resize every output to N×N pixels (0: keep the crop's size)")
        ("rotation", po::value(&c.rotation)->default_value(c.rotation)->value_name("DEG"), "rotation range ±DEG")
        ("skew", po::value(&c.skew)->default_value(c.skew)->value_name("M"), "perspective skew magnitude")
        ("shear", po::value(&c.shear)->default_value(c.shear)->value_name("DEG"), "shear range ±DEG")
        ("flip", po::value(&c.flip)->default_value(c.flip)->value_name("P"),
         "probability of a left-right flip after each operation")
        ("parts", po::value(&c.parts)->value_name("DIR"),
         "--folder: part annotations in CUB's format (DIR/parts.txt, DIR/part_locs.txt keyed by the "
         "image's path under the folder); --cub reads its parts/ folder itself")
        ("class-names", po::value(&c.class_names)->value_name("NAMES"),
         "--idx: fashion-mnist, mnist or a file with one name per line (default: from the path)")
        ("force", po::bool_switch(&c.force), "replace an output folder prepared by a different command")
        ("json", po::bool_switch(&json), "machine-readable report on stdout");
    add_runtime(o, c.runtime, /*model=*/false);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    if (vm.count("cub") + vm.count("folder") + vm.count("idx") != 1) {
      throw UsageError("give exactly one of --cub, --folder and --idx", name);
    }
    require(name, vm, {"out"});
    if (vm.count("parts") && c.folder.empty()) throw UsageError("--parts goes with --folder", name);
    if (c.copies < 0) throw UsageError("--copies must be 0 or more", name);
    if (c.size < 0) throw UsageError("--size must be 0 (keep) or a pixel count", name);
    for (const auto& [opt, v] : {std::pair<const char*, double>{"val-fraction", c.val_fraction},
                                 {"test-fraction", c.test_fraction}, {"flip", c.flip}}) {
      if (!(v >= 0 && v < 1)) throw UsageError(std::string("--") + opt + " must be in [0, 1)", name);  // NaN too
    }
    if (!(c.rotation >= 0 && c.rotation <= 360 && c.skew >= 0 && c.skew < 0.5 && c.shear >= 0 && c.shear < 60)) {
      throw UsageError("augmentation ranges: 0 ≤ --rotation ≤ 360, 0 ≤ --skew < 0.5, 0 ≤ --shear < 60", name);
    }
    const auto report = pipeline::run_prepare(c);
    for (const auto& f : report.failed) std::cerr << "ppnet prepare: failed: " << f << '\n';
    print_report(std::cout, report, json);
    if (!report.failed.empty()) {
      std::cerr << "ppnet prepare: " << report.failed.size()
                << " source images could not be read; the rest are prepared\n";
      return 1;
    }
    return 0;
  }
  if (name == "train") {
    pipeline::TrainConfig c;
    bool json = false;
    o.add_options()
        ("stage", po::value(&c.stage)->value_name("STAGE"), "warm or joint")
        ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
        ("run", po::value(&c.run)->value_name("RUN"), "run folder (created by the first train)")
        ("resume", po::bool_switch(&c.resume), "continue the interrupted stage from its last checkpoint "
         "(a finished stage: nothing to do)")
        ("arch", po::value(&c.arch)->default_value(c.arch)->value_name("NAME"), "backbone architecture (new runs)")
        ("img-size", po::value(&c.img_size)->default_value(c.img_size)->value_name("N"), "model input size in pixels (new runs)")
        ("prototypes-per-class", po::value(&c.prototypes_per_class)->default_value(c.prototypes_per_class)->value_name("N"),
         "prototypes each class owns (new runs)")
        ("prototype-dim", po::value(&c.prototype_dim)->default_value(c.prototype_dim)->value_name("D"),
         "channels of a prototype (new runs)")
        ("add-on", po::value(&c.add_on)->default_value(c.add_on)->value_name("TYPE"), "regular or bottleneck (new runs)")
        ("activation", po::value(&c.activation)->default_value(c.activation)->value_name("A"),
         "prototype activation (new runs): log, log((d+1)/(d+1e-4)) as the paper, or linear, -d")
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
        ("lr-schedule", po::value<std::string>()->value_name("NAME"),
         "joint: step (StepLR: --lr-step, --lr-gamma) or cosine (decay to 0 over the stage); "
         "default step with --weights, cosine from scratch")
        ("lr-step", po::value(&c.lr_step)->default_value(c.lr_step)->value_name("N"), "joint, step: StepLR step in epochs")
        ("lr-gamma", po::value(&c.lr_gamma)->default_value(c.lr_gamma)->value_name("G"), "joint, step: StepLR factor")
        ("cross-entropy", po::value(&c.cross_entropy)->default_value(c.cross_entropy)->value_name("C"), "loss coefficient")
        ("cluster", po::value(&c.cluster)->default_value(c.cluster)->value_name("C"), "loss coefficient")
        ("separation", po::value(&c.separation)->default_value(c.separation)->value_name("C"), "loss coefficient")
        ("l1", po::value(&c.l1)->default_value(c.l1)->value_name("C"), "loss coefficient of the off-class L1")
        ("checkpoint-every", po::value(&c.checkpoint_every)->default_value(0)->value_name("N"),
         "also checkpoint every N batches (0: at epoch ends only)")
        ("restart-optimizer", po::bool_switch(&c.restart_optimizer),
         "joint: begin with a fresh Adam state and StepLR schedule instead of continuing those of the "
         "run's previous joint stage (the reference keeps them across push cycles)")
        ("bucket-mb", po::value(&c.bucket_mb)->default_value(c.bucket_mb)->value_name("MB"),
         "data-parallel: gradients are summed across ranks in buckets of about MB megabytes (the first "
         "1 MB), each as soon as the backward pass has produced it")
        ("json", po::bool_switch(&json), "machine-readable report on stdout");
    add_runtime(o, c.runtime);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    if (vm.count("stage") && c.stage != "warm" && c.stage != "joint") {
      throw UsageError("--stage '" + c.stage + "': expected warm or joint", name);
    }
    require(name, vm, {"stage", "data", "run"});
    if (c.activation != "log" && c.activation != "linear") {
      throw UsageError("--activation '" + c.activation + "': expected log or linear", name);
    }
    if (c.add_on != "regular" && c.add_on != "bottleneck") {
      throw UsageError("--add-on '" + c.add_on + "': expected regular or bottleneck", name);
    }
    for (const auto& [opt, v] : {std::pair<const char*, int>{"batch-size", c.batch_size}, {"eval-batch-size", c.eval_batch_size},
                                 {"img-size", c.img_size}, {"prototypes-per-class", c.prototypes_per_class},
                                 {"prototype-dim", c.prototype_dim}, {"lr-step", c.lr_step}}) {
      if (v < 1) throw UsageError(std::string("--") + opt + " must be at least 1", name);
    }
    if (vm.count("epochs")) c.epochs = vm["epochs"].as<int>();
    if (vm.count("lr-backbone")) c.lr_backbone = vm["lr-backbone"].as<double>();
    if (vm.count("lr-schedule")) c.lr_schedule = vm["lr-schedule"].as<std::string>();
    if (!(c.bucket_mb > 0 && c.bucket_mb <= 4096)) throw UsageError("--bucket-mb must be in (0, 4096]", name);
    if (c.epochs.value_or(0) < 0 || c.checkpoint_every < 0) {
      throw UsageError("--epochs and --checkpoint-every must be 0 or more", name);
    }
    if (c.lr_schedule && *c.lr_schedule != "step" && *c.lr_schedule != "cosine") {
      throw UsageError("--lr-schedule '" + *c.lr_schedule + "': expected step or cosine", name);
    }
    // Ranges wide enough for any sensible recipe, narrow enough that float32 cannot overflow.
    for (const auto& [opt, v] : {std::pair<const char*, double>{"lr-backbone", c.lr_backbone.value_or(1.0)},
                                 {"lr-add-on", c.lr_add_on}, {"lr-prototypes", c.lr_prototypes}, {"lr-gamma", c.lr_gamma}}) {
      if (!(v > 0 && v <= 100)) throw UsageError(std::string("--") + opt + " must be a number in (0, 100]", name);
    }
    for (const auto& [opt, v] : {std::pair<const char*, double>{"weight-decay", c.weight_decay}, {"l1", c.l1}}) {
      if (!(v >= 0 && v <= 1000)) throw UsageError(std::string("--") + opt + " must be a number in [0, 1000]", name);
    }
    for (const auto& [opt, v] : {std::pair<const char*, double>{"cross-entropy", c.cross_entropy}, {"cluster", c.cluster},
                                 {"separation", c.separation}}) {
      if (!(std::abs(v) <= 1000)) throw UsageError(std::string("--") + opt + " must be a number in [-1000, 1000]", name);
    }
    for (const char* opt : {"arch", "img-size", "prototypes-per-class", "prototype-dim", "add-on", "activation"}) {
      if (vm.count(opt) && !vm[opt].defaulted()) c.given.insert(opt);
    }
    print_report(std::cout, pipeline::run_train(c), json);
    return 0;
  }
  if (name == "project") {
    pipeline::ProjectConfig c;
    bool json = false, no_images = false;
    o.add_options()
        ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder (its push/ images are searched)")
        ("run", po::value(&c.run)->value_name("RUN"), "run folder")
        ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "push batch size")
        ("no-images", po::bool_switch(&no_images), "record the prototypes without writing their PNGs")
        ("resume", po::bool_switch(&c.resume),
         "after an interruption: do nothing when the latest stage is a finished projection")
        ("json", po::bool_switch(&json), "machine-readable report on stdout");
    add_runtime(o, c.runtime);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    require(name, vm, {"data", "run"});
    if (c.batch_size < 1) throw UsageError("--batch-size must be at least 1", name);
    c.save_images = !no_images;
    print_report(std::cout, pipeline::run_project(c), json);
    return 0;
  }
  if (name == "last-layer") {
    pipeline::LastLayerConfig c;
    bool json = false;
    o.add_options()
        ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
        ("run", po::value(&c.run)->value_name("RUN"), "run folder")
        ("solver", po::value(&c.solver)->default_value(c.solver)->value_name("NAME"),
         "prox: full-batch proximal gradient (FISTA) to the convex optimum; adam: the reference's epochs")
        ("l1", po::value(&c.l1)->default_value(c.l1)->value_name("C"), "coefficient of the off-class L1")
        ("max-iterations", po::value(&c.max_iterations)->default_value(c.max_iterations)->value_name("N"),
         "prox: iteration limit")
        ("tolerance", po::value(&c.tolerance)->default_value(c.tolerance)->value_name("T"),
         "prox: stop once the optimality residual is at most T")
        ("epochs", po::value(&c.epochs)->default_value(c.epochs)->value_name("N"), "adam: epochs")
        ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "adam: batch size")
        ("lr", po::value(&c.lr)->default_value(c.lr)->value_name("LR"), "adam: learning rate")
        ("recompute", po::bool_switch(&c.recompute),
         "adam: recompute the similarities through the network every epoch instead of caching them")
        ("eval-batch-size", po::value(&c.eval_batch_size)->default_value(c.eval_batch_size)->value_name("N"),
         "batch size of the feature passes")
        ("resume", po::bool_switch(&c.resume), "continue an interrupted last-layer stage")
        ("json", po::bool_switch(&json), "machine-readable report on stdout");
    add_runtime(o, c.runtime);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    require(name, vm, {"data", "run"});
    if (c.solver != "prox" && c.solver != "adam") {
      throw UsageError("--solver '" + c.solver + "': expected prox or adam", name);
    }
    if (c.epochs < 1 || c.batch_size < 1 || c.eval_batch_size < 1 || c.max_iterations < 1) {
      throw UsageError("--epochs, --batch-size, --eval-batch-size and --max-iterations must be at least 1", name);
    }
    if (!(c.l1 >= 0 && c.l1 <= 1000)) throw UsageError("--l1 must be a number in [0, 1000]", name);
    if (!(c.lr > 0 && c.lr <= 100)) throw UsageError("--lr must be a number in (0, 100]", name);
    if (!(c.tolerance > 0 && c.tolerance <= 1)) throw UsageError("--tolerance must be a number in (0, 1]", name);
    if (c.solver == "prox") {
      for (const char* opt : {"epochs", "batch-size", "lr", "recompute"}) {
        if (vm.count(opt) && !vm[opt].defaulted()) {
          throw UsageError(std::string("--") + opt + " applies to --solver adam (the solver is prox)", name);
        }
      }
    }
    print_report(std::cout, pipeline::run_last_layer(c), json);
    return 0;
  }
  if (name == "explain") {
    pipeline::ExplainConfig c;
    std::string shard = "0/1";
    o.add_options()
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
        ("force", po::bool_switch(&c.force), "replace explanations made by a different command")
        ("json", po::bool_switch(&c.json), "machine-readable report on stdout");
    add_runtime(o, c.runtime);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    require(name, vm, {"run", "dir", "out"});
    static const std::regex kShard("([0-9]+)/([0-9]+)");
    std::smatch sm;
    if (!std::regex_match(shard, sm, kShard) || std::stoi(sm[2]) < 1 || std::stoi(sm[1]) >= std::stoi(sm[2])) {
      throw UsageError("--shard '" + shard + "': expected I/N with 0 <= I < N", name);
    }
    c.shard_index = std::stoi(sm[1]);
    c.shard_count = std::stoi(sm[2]);
    if (c.top_k < 1 || c.top_classes < 1 || c.batch_size < 1) {
      throw UsageError("--top-k, --top-classes and --batch-size must be at least 1", name);
    }
    const auto report = pipeline::run_explain(c);
    for (const auto& f : report.failed) std::cerr << "ppnet explain: failed: " << f << '\n';
    print_report(std::cout, report, c.json);
    if (!report.failed.empty()) {
      std::cerr << "ppnet explain: " << report.failed.size() << " of " << report.images
                << " images could not be explained; the rest are in " << c.out << '\n';
      return 1;
    }
    return 0;
  }
  if (name == "evaluate") {
    pipeline::EvaluateConfig c;
    std::string metrics;
    o.add_options()
        ("run", po::value(&c.run)->value_name("RUN"), "run folder")
        ("data", po::value(&c.data)->value_name("DATA"), "prepared data folder")
        ("split", po::value(&c.split)->default_value(c.split)->value_name("SPLIT"), "test, val or train")
        ("batch-size", po::value(&c.batch_size)->default_value(c.batch_size)->value_name("N"), "batch size")
        ("confusion-csv", po::value(&c.confusion_csv)->value_name("FILE"), "also write the confusion matrix as CSV")
        ("predictions-csv", po::value(&c.predictions_csv)->value_name("FILE"),
         "also write each image's label and prediction as CSV")
        ("metrics", po::value(&metrics)->value_name("LIST"),
         "interpretability metrics, comma-separated: consistency, stability, pointing, purity (these need "
         "part annotations), sparsity; or all")
        ("part-box", po::value(&c.part_box)->default_value(c.part_box)->value_name("F"),
         "part metrics: side of the box around a map's peak as a share of the image (EvalProtoPNet: 72/224); "
         "0: the 95th-percentile box explain draws")
        ("consistency-threshold", po::value(&c.consistency_threshold)->default_value(c.consistency_threshold)->value_name("F"),
         "consistency: share of a class's images in which one part must lie in the prototype's box")
        ("noise", po::value(&c.noise)->default_value(c.noise)->value_name("SIGMA"),
         "stability: standard deviation of the Gaussian noise added to the normalised input")
        ("purity-k", po::value(&c.purity_k)->default_value(c.purity_k)->value_name("K"),
         "purity: nearest patches examined per prototype")
        ("json", po::bool_switch(&c.json), "machine-readable output on stdout");
    add_runtime(o, c.runtime);
    if (!parse(info, o, args, vm)) return 0;
    check_runtime(name, c.runtime);
    c.metrics = parse_metrics(name, metrics);
    if (!(c.consistency_threshold > 0 && c.consistency_threshold <= 1)) {
      throw UsageError("--consistency-threshold must be in (0, 1]", name);
    }
    if (!(c.part_box >= 0 && c.part_box <= 1)) throw UsageError("--part-box must be in [0, 1]", name);
    if (!(c.noise >= 0 && std::isfinite(c.noise))) throw UsageError("--noise must be a finite number ≥ 0", name);
    if (c.purity_k < 1 || c.purity_k > 1000) throw UsageError("--purity-k must be in 1…1000", name);
    if (c.split != "test" && c.split != "val" && c.split != "train") {
      throw UsageError("--split '" + c.split + "': expected test, val or train", name);
    }
    require(name, vm, {"run", "data"});
    if (c.batch_size < 1) throw UsageError("--batch-size must be at least 1", name);
    print_report(std::cout, pipeline::run_evaluate(c), c.json);
    return 0;
  }
  if (name == "info") {
    pipeline::InfoConfig c;
    o.add_options()
        ("run", po::value(&c.run)->value_name("RUN"), "run folder")
        ("prototypes", po::bool_switch(&c.prototypes), "the latest projection's prototypes instead")
        ("json", po::bool_switch(&c.json), "machine-readable output on stdout");
    if (!parse(info, o, args, vm)) return 0;
    require(name, vm, {"run"});
    print_report(std::cout, pipeline::run_info(c), c.json);
    return 0;
  }
  if (name == "report") {
    pipeline::ReportConfig c;
    o.add_options()
        ("run", po::value(&c.run)->value_name("RUN"), "run folder")
        ("out", po::value(&c.out)->value_name("FILE"), "where to write the page (default RUN/report.html)");
    if (!parse(info, o, args, vm)) return 0;
    require(name, vm, {"run"});
    const auto r = pipeline::run_report(c);
    if (r.accuracy >= 0) std::cout << r.split << " accuracy " << r.accuracy << '\n';
    std::cout << "report: " << r.path << '\n';
    return 0;
  }
  if (name == "analyze") return run_analyze_command(info, args);
  if (name == "prune") return run_prune_command(info, args);
  if (name != "weights") throw std::logic_error("command '" + name + "' is listed but not dispatched");
  pipeline::WeightsConfig c;
  o.add_options()
      ("arch", po::value(&c.arch)->value_name("NAME"), "backbone architecture, e.g. resnet50")
      ("weights", po::value(&c.weights)->value_name("FILE"), ".safetensors or zip-format torch.save file")
      ("img-size", po::value(&c.img_size)->default_value(c.img_size)->value_name("N"),
       "input size for the reported feature grid")
      ("json", po::bool_switch(&c.json), "machine-readable output on stdout");
  add_runtime(o, c.runtime);
  if (!parse(info, o, args, vm)) return 0;
  check_runtime(name, c.runtime);
  require(name, vm, {"arch", "weights"});
  print_report(std::cout, pipeline::run_weights(c), c.json);
  return 0;
}

}  // namespace

int run(const std::vector<std::string>& args) {
  if (args.empty()) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string& first = args[0];
  if (first == "-h" || first == "--help") {
    print_usage(std::cout);
    return 0;
  }
  if (first == "-V" || first == "--version") {
    std::cout << pipeline::build_info() << '\n';
    return 0;
  }
  if (first == "help") {
    if (args.size() == 1) {
      print_usage(std::cout);
      return 0;
    }
    return run_command(args[1], {"--help"});
  }
  if (!first.empty() && first[0] == '-') throw UsageError("unknown option '" + first + "'", "");
  return run_command(first, std::vector<std::string>(args.begin() + 1, args.end()));
}

}  // namespace ppnet::cli
