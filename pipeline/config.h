#pragma once
// Plain configuration structs, one per command, filled by cli/ and read by pipeline/.
// Defaults here are the reference implementation's (shared/DESIGN.md §3).

#include <cstdint>
#include <optional>
#include <set>
#include <string>

namespace ppnet::pipeline {

struct RuntimeConfig {
  int threads = 0;             // LibTorch intra-op threads; 0 = all cores
  std::string device = "cpu";  // "cpu", "cuda" or "cuda:N"
  uint64_t seed = 1;
  bool keep_denormals = false;  // compute denormal floats exactly (slow); only to measure what flushing saves
  std::string amp = "off";      // mixed precision of the backbone and add-on: "off", "bf16" or "fp16" (CUDA)
  bool channels_last = false;   // NHWC convolutions
};

struct PrepareConfig {
  std::string cub, folder, idx;  // exactly one input
  std::string out;
  int copies = 10;              // augmented copies per operation and training image
  double val_fraction = 0.0;    // seeded share of each class's training images held out
  double test_fraction = 0.2;   // --folder without train/ and test/: seeded test share
  int size = 0;                 // resize every output to size×size; 0 keeps the crop's size
  double rotation = 15.0;       // augmentation ranges (see pipeline/augment.h)
  double skew = 0.2;
  double shear = 10.0;
  double flip = 0.5;
  std::string parts;            // --folder: a folder with parts.txt and part_locs.txt (CUB's format)
  std::string class_names;      // --idx: fashion-mnist, mnist or a file; "" guesses from the path
  bool force = false;
  RuntimeConfig runtime;
};

struct TrainConfig {
  std::string stage;  // "warm" or "joint"
  std::string data, run;
  // The model: fixed when the run is created; later commands may repeat, not change, them.
  std::string arch = "vgg19";
  int img_size = 224;
  int prototypes_per_class = 10;
  int prototype_dim = 128;
  std::string add_on = "regular";
  std::string activation = "log";  // new runs: the prototype activation, log or linear
  std::set<std::string> given;  // model options given explicitly (cli fills it)
  std::string weights;          // pretrained backbone, when the run is created
  // The stage (recorded with it; --resume continues with the recorded values). Defaults are the
  // reference's. The three left unset depend on the run: the reference's values with a
  // pretrained backbone, the from-scratch recipe otherwise (pipeline/train.cpp, README).
  std::optional<int> epochs;               // 0 skips the stage
  std::optional<double> lr_backbone;       // joint
  std::optional<std::string> lr_schedule;  // joint: "step" (StepLR) or "cosine" (to 0 over the stage)
  int batch_size = 80;
  int eval_batch_size = 100;
  double lr_add_on = 3e-3;
  double lr_prototypes = 3e-3;
  double weight_decay = 1e-3;  // backbone and add-on layers
  int lr_step = 5;             // joint, step: StepLR step size in epochs
  double lr_gamma = 0.1;
  double cross_entropy = 1.0, cluster = 0.8, separation = -0.08, l1 = 1e-4;
  int checkpoint_every = 0;  // also checkpoint every N batches (0: only at epoch ends)
  double bucket_mb = 25;     // data-parallel: gradient bucket size, as DDP's bucket_cap_mb
  bool restart_optimizer = false;  // joint: fresh Adam state and schedule, not the previous joint stage's
  bool resume = false;
  RuntimeConfig runtime;
};

struct ProjectConfig {
  std::string data, run;
  int batch_size = 75;
  bool save_images = true;  // the patch, box and heatmap PNGs of every prototype
  bool resume = false;       // nothing to do when the latest stage is a finished projection
  RuntimeConfig runtime;
};

struct LastLayerConfig {
  std::string data, run;
  std::string solver = "prox";   // "prox": full-batch FISTA to the optimum; "adam": the reference's epochs
  int64_t max_iterations = 10000;  // prox: iteration limit
  double tolerance = 1e-5;         // prox: stop at this optimality residual
  int epochs = 20;                 // adam (and its --lr, --batch-size, --recompute)
  int batch_size = 80;
  int eval_batch_size = 100;
  double lr = 1e-4;
  double l1 = 1e-4;
  bool recompute = false;  // recompute similarities through the network every epoch (no cache)
  bool resume = false;
  RuntimeConfig runtime;
};

struct ExplainConfig {
  std::string run, dir, out;
  int top_k = 10;
  int top_classes = 3;
  int batch_size = 16;
  int shard_index = 0, shard_count = 1;  // --shard I/N
  bool force = false;
  bool json = false;
  RuntimeConfig runtime;
};

struct EvaluateConfig {
  std::string run, data;
  std::string split = "test";
  int batch_size = 100;
  std::string confusion_csv;   // also write the confusion matrix here
  std::string predictions_csv; // also write one line per image: path, label, predicted, logit
  // Interpretability metrics (any of consistency, stability, pointing, purity, sparsity); all but
  // sparsity need the data's part annotations (README, "Auditing a model").
  std::set<std::string> metrics;
  double part_box = 0.32;              // side of the box around a map's peak, as a share of the image
                                       // (EvalProtoPNet: 72 of 224 px); 0: the 95th-percentile box
  double consistency_threshold = 0.8;  // EvalProtoPNet
  double noise = 0.2;                  // stability: σ of the Gaussian noise on the normalised input
  int purity_k = 10;                   // PIP-Net: a prototype's nearest patches examined
  bool json = false;
  RuntimeConfig runtime;
};

/// `ppnet analyze`: each prototype's nearest patches over a split (the reference's global analysis).
struct AnalyzeConfig {
  std::string run, data;
  std::string split = "push";  // push, test, val or train
  int k = 5;
  int batch_size = 75;
  bool save_images = true;  // a patch and a boxed image per nearest patch
  bool json = false;
  RuntimeConfig runtime;
};

/// `ppnet prune`: the reference's prototype pruning (prune.py), and duplicate removal.
struct PruneConfig {
  std::string run, data;
  int k = 6;          // nearest push patches examined per prototype
  int threshold = 3;  // remove a prototype with fewer than this many of them from its class (0: never)
  bool duplicates = false;  // also remove prototypes projected onto the same image and cell as
                            // an earlier prototype of their class (its last-layer weights merged)
  int batch_size = 75;
  bool dry_run = false;  // report what would be removed, change nothing
  bool json = false;
  RuntimeConfig runtime;
};

struct InfoConfig {
  std::string run;
  bool json = false;
  bool prototypes = false;  // list the latest projection's prototypes
};

struct ReportConfig {
  std::string run;
  std::string out;  // default: RUN/report.html
};

/// `ppnet weights`: check a pretrained weights file against a backbone before training.
struct WeightsConfig {
  std::string arch;
  std::string weights;
  int img_size = 224;
  bool json = false;
  RuntimeConfig runtime;
};

}  // namespace ppnet::pipeline
