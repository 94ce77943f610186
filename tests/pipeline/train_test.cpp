#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "db/run_store.h"
#include "model/protopnet.h"
#include "pipeline/data/prepare.h"
#include "pipeline/run/info.h"
#include "pipeline/stages/train.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/image_data.h"
#include "pipeline/stages/stage_settings.h"
#include "tests/common/fixtures.h"
#include "tests/common/test_util.h"

#include "test_paths.h"

namespace ppnet::pipeline {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

// A prepared 3-class pattern data set in dir/data.
fs::path prepared(const TempDir& dir, int classes = 3, int per_class = 20) {
  test::make_pattern_folder(dir.path() / "images", classes, per_class);
  PrepareConfig p;
  p.folder = (dir.path() / "images").string();
  p.out = (dir.path() / "data").string();
  p.copies = 0;
  p.test_fraction = 0.25;
  run_prepare(p);
  return dir.path() / "data";
}

TrainConfig small_train(const fs::path& data, const fs::path& run, const std::string& stage, int epochs) {
  TrainConfig c;
  c.stage = stage;
  c.data = data.string();
  c.run = run.string();
  c.arch = "small_bn";
  c.img_size = 28;
  c.prototypes_per_class = 2;
  c.prototype_dim = 16;
  c.epochs = epochs;
  c.batch_size = 8;
  c.runtime.threads = 2;
  return c;
}

std::map<std::string, torch::Tensor> state_at(RunFolder& run, const std::string& rel) {
  model::ProtoPNet net(to_model_options(run.model_config()));
  load_checkpoint(run.absolute(rel), *net, torch::kCPU, nullptr, nullptr);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : net->named_parameters()) out[p.key()] = p.value().detach().clone();
  for (const auto& b : net->named_buffers()) out[b.key()] = b.value().clone();
  return out;
}

TEST(Train, LossFallsAndEveryEpochIsRecorded) {
  TempDir dir;
  const auto data = prepared(dir);
  const auto warm = run_train(small_train(data, dir.path() / "run", "warm", 2));
  EXPECT_TRUE(warm.created_run);
  const auto joint = run_train(small_train(data, dir.path() / "run", "joint", 4));
  ASSERT_EQ(joint.epochs.size(), 4u);
  EXPECT_LT(joint.epochs.back().train_loss, warm.epochs.front().train_loss * 0.8);
  EXPECT_GT(joint.epochs.back().eval_accuracy, 0.5);  // chance is 1/3

  RunFolder run = RunFolder::open(dir.path() / "run");
  const auto stages = run.store().stages();
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].kind, db::StageKind::kWarm);
  EXPECT_EQ(stages[1].status, db::StageStatus::kDone);
  const auto epochs = run.store().epochs();
  ASSERT_EQ(epochs.size(), 6u);
  EXPECT_EQ(epochs[0].eval_split, "test");
  EXPECT_GT(epochs[0].prototype_distance, 0.0);
  EXPECT_GT(epochs[0].l1, 0.0);
  // One checkpoint survives per finished stage, and the initial model.
  EXPECT_EQ(run.store().checkpoints(stages[0].id).size(), 1u);
  EXPECT_TRUE(run.store().checkpoints(stages[0].id)[0].final);

  const auto info = run_info({(dir.path() / "run").string(), false});
  EXPECT_EQ(info.epochs.size(), 6u);
  EXPECT_EQ(info.stages[1].epochs_done, 4);
}

TEST(RandomFlip, DecidedByTheEntryAndTheSeedAlone) {
  int half = 0, differ = 0;
  for (int64_t i = 0; i < 10000; ++i) {
    EXPECT_FALSE(flipped({0.0, 5}, i));
    EXPECT_TRUE(flipped({1.0, 5}, i));
    const bool f = flipped({0.5, 5}, i);
    EXPECT_EQ(f, flipped({0.5, 5}, i));
    half += f ? 1 : 0;
    differ += f != flipped({0.5, 6}, i) ? 1 : 0;
  }
  // Binomial(10000, 0.5): ±300 is six standard deviations.
  EXPECT_NEAR(half, 5000, 300);
  EXPECT_NEAR(differ, 5000, 300);  // another seed (another epoch) flips other images
}

// A flipped batch holds the mirror images (and mirror masks) of the batch as decoded, on the
// same entries in the same order.
TEST(RandomFlip, TheLoaderMirrorsTheChosenImagesAndTheirMasks) {
  TempDir dir;
  test::make_pattern_folder(dir.path() / "images", 2, 6);
  PrepareConfig p;
  p.folder = (dir.path() / "images").string();
  p.out = (dir.path() / "data").string();
  p.copies = 0;
  p.test_fraction = 0.25;
  p.foreground_threshold = 100;
  run_prepare(p);
  const fs::path data = dir.path() / "data";
  const auto list = read_list(data, "train");
  const std::vector<bool> masked(list.size(), true);
  auto batch = [&](RandomFlip flip) {
    BatchLoader loader(data, list, sequential_order(list.size()), ModelInput{28}, static_cast<int>(list.size()), 0, 1,
                       false, {}, masked, flip);
    Batch b;
    EXPECT_TRUE(loader.next(&b));
    return b;
  };
  const Batch plain = batch({}), all = batch({1.0, 3}), some = batch({0.5, 3});
  ASSERT_TRUE(plain.has_mask.all().item<bool>());
  EXPECT_FALSE(torch::equal(plain.images, all.images));  // the patterns are not symmetric
  EXPECT_TRUE(torch::equal(all.images, plain.images.flip({3})));
  EXPECT_TRUE(torch::equal(all.masks, plain.masks.flip({2})));
  EXPECT_FALSE(torch::equal(all.masks, plain.masks));
  EXPECT_TRUE(torch::equal(all.labels, plain.labels));
  int turned = 0;
  for (int64_t i = 0; i < plain.images.size(0); ++i) {
    const bool f = flipped({0.5, 3}, i);
    turned += f ? 1 : 0;
    EXPECT_TRUE(torch::equal(some.images[i], f ? all.images[i] : plain.images[i])) << i;
    EXPECT_TRUE(torch::equal(some.masks[i], f ? all.masks[i] : plain.masks[i])) << i;
  }
  EXPECT_GT(turned, 0);
  EXPECT_LT(turned, plain.images.size(0));
}

TEST(Train, FlipIsRecordedAndChangesTheTrainingNotItsRepeatability) {
  TempDir dir;
  const auto data = prepared(dir);
  auto joint = [&](const std::string& name, double flip) {
    auto c = small_train(data, dir.path() / name, "joint", 2);
    c.flip = flip;
    run_train(c);
    RunFolder run = RunFolder::open(dir.path() / name);
    const auto stage = run.store().stages().back();
    EXPECT_EQ(train_settings_from_json(stage.config_json, stage.id).flip, flip);
    return state_at(run, run.store().checkpoints(stage.id).back().path);
  };
  const auto plain = joint("plain", 0), a = joint("a", 0.5), b = joint("b", 0.5);
  bool differs = false;
  for (const auto& [name, t] : a) {
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
    differs |= !torch::equal(t, plain.at(name));
  }
  EXPECT_TRUE(differs);
}

TEST(Train, WarmLeavesTheBackboneBitIdentical) {
  TempDir dir;
  const auto data = prepared(dir);
  run_train(small_train(data, dir.path() / "run", "warm", 2));
  RunFolder run = RunFolder::open(dir.path() / "run");
  const auto before = state_at(run, "checkpoints/init.pt");
  const auto after = state_at(run, run.store().latest_final_checkpoint()->path);
  int backbone = 0;
  for (const auto& [name, t] : before) {
    if (name.rfind("features.", 0) == 0) {
      ++backbone;
      EXPECT_TRUE(torch::equal(t, after.at(name))) << name;  // weights and BatchNorm statistics
    }
  }
  EXPECT_GE(backbone, 3 * 5);  // three conv+BN stages, BN buffers included
  EXPECT_FALSE(torch::equal(before.at("prototype_vectors"), after.at("prototype_vectors")));
  EXPECT_FALSE(torch::equal(before.at("add_on_layers.0.weight"), after.at("add_on_layers.0.weight")));
  EXPECT_TRUE(torch::equal(before.at("last_layer.weight"), after.at("last_layer.weight")));
}

std::string error_of(const TrainConfig& c) {
  try {
    run_train(c);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

TEST(Train, MismatchedModelOrDataIsRefused) {
  TempDir dir;
  const auto data = prepared(dir);
  run_train(small_train(data, dir.path() / "run", "warm", 1));

  auto c = small_train(data, dir.path() / "run", "joint", 1);
  c.arch = "vgg11";
  c.given = {"arch"};
  std::string msg = error_of(c);
  EXPECT_NE(msg.find("has --arch small_bn; this command asks for vgg11"), std::string::npos) << msg;

  TempDir other;
  const auto other_data = prepared(other, 4, 10);
  msg = error_of(small_train(other_data, dir.path() / "run", "joint", 1));
  EXPECT_NE(msg.find("differs in its classes"), std::string::npos) << msg;

  c = small_train(data, dir.path() / "run", "joint", 1);
  c.weights = "whatever.pth";
  msg = error_of(c);
  EXPECT_NE(msg.find("--weights applies only when a run is created"), std::string::npos) << msg;

  // Options that agree with the run are fine to repeat.
  c = small_train(data, dir.path() / "run", "joint", 1);
  c.given = {"arch", "img-size"};
  EXPECT_EQ(error_of(c), "");
}

TEST(Train, ResumeOfAFinishedStageDoesNothing) {
  TempDir dir;
  const auto data = prepared(dir);
  run_train(small_train(data, dir.path() / "run", "warm", 1));
  auto c = small_train(data, dir.path() / "run", "warm", 1);
  c.resume = true;
  const auto r = run_train(c);
  EXPECT_TRUE(r.already_done);
  EXPECT_EQ(RunFolder::open(dir.path() / "run").store().stages().size(), 1u);
}

// The largest Adam step count in a checkpoint's optimizer state: how many steps that state has
// taken, whatever stage took them.
int64_t adam_steps(RunFolder& run, const std::string& rel) {
  model::ProtoPNet net(to_model_options(run.model_config()));
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(net->backbone().parameters());
  groups.emplace_back(net->add_on_layers()->parameters());
  groups.emplace_back(std::vector<torch::Tensor>{net->prototype_vectors()});
  torch::optim::Adam adam(groups, torch::optim::AdamOptions(1e-3));
  load_optimizer_state(run.absolute(rel), adam, torch::kCPU);
  int64_t steps = 0;
  for (const auto& [key, state] : adam.state()) {
    steps = std::max(steps, static_cast<int64_t>(static_cast<torch::optim::AdamParamState&>(*state).step()));
  }
  return steps;
}

// The reference keeps one Adam state and one StepLR schedule across its push cycles: a second
// joint stage continues the first's (its step counts go on, the schedule counts the earlier
// epochs), unless --restart-optimizer; a warm stage never does.
TEST(Train, AJointStageContinuesThePreviousOnesOptimizerAndSchedule) {
  TempDir dir;
  const auto data = prepared(dir);  // 45 training images: 6 batches of 8 per epoch
  for (const bool restart : {false, true}) {
    const fs::path run_dir = dir.path() / (restart ? "restarted" : "continued");
    auto c = small_train(data, run_dir, "joint", 2);
    c.lr_schedule = LrSchedule::kStep;
    c.lr_step = 1;
    run_train(c);
    c.epochs = 1;
    c.restart_optimizer = restart;
    run_train(c);
    RunFolder run = RunFolder::open(run_dir);
    const auto stages = run.store().stages();
    ASSERT_EQ(stages.size(), 2u);
    const auto first = run.store().checkpoints(stages[0].id).back(), second = run.store().checkpoints(stages[1].id).back();
    EXPECT_EQ(adam_steps(run, first.path), 12);
    EXPECT_EQ(adam_steps(run, second.path), restart ? 6 : 18);
    const auto settings = train_settings_from_json(stages[1].config_json, stages[1].id);
    EXPECT_EQ(settings.continue_optimizer.empty(), restart);
    if (!restart) {
      EXPECT_EQ(settings.continue_optimizer, first.path);
      EXPECT_EQ(settings.continue_stage, stages[0].id);
      EXPECT_EQ(settings.schedule_offset, 2);
    }
  }
}

// A batch's sums, written out from its per-image losses and predictions.
model::LossTerms terms_of(double ce, double cluster, double separation, double avg_separation) {
  return {torch::tensor(ce), torch::tensor(cluster), torch::tensor(separation), torch::tensor(avg_separation),
          torch::tensor(0.0)};
}

// The learning rate the optimizer applied in each joint epoch, against PyTorch's own schedulers
// run by the oracle (tests/oracle/lr_schedules.py): StepLR as documented (offset 0), StepLR as
// the reference steps it, before each epoch (--lr-step-offset 1), and CosineAnnealingLR over
// every batch of the stage.
TEST(TrainSchedule, AppliedRatesMatchPyTorchsSchedulers) {
  TempDir dir;
  const auto data = prepared(dir);
  constexpr int kEpochs = 4, kStep = 2;
  constexpr double kBase = 1e-3, kGamma = 0.5;
  const int64_t batches = (static_cast<int64_t>(read_list(data, "train").size()) + 7) / 8;
  const std::string out = dir.file("oracle.json");
  const std::string cmd = std::string(PPNET_ORACLE_PYTHON) + " " + PPNET_SOURCE_DIR + "/tests/oracle/lr_schedules.py " +
                          std::to_string(kBase) + " " + std::to_string(kEpochs) + " " + std::to_string(batches) + " " +
                          std::to_string(kStep) + " " + std::to_string(kGamma) + " > " + out;
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  const auto oracle = nlohmann::json::parse(test::read_file(out));
  struct Case {
    const char* name;
    LrSchedule schedule;
    int offset;
  };
  for (const Case& k : {Case{"step", LrSchedule::kStep, 0}, Case{"step_reference", LrSchedule::kStep, 1},
                       Case{"cosine", LrSchedule::kCosine, 0}}) {
    TrainConfig c = small_train(data, dir.path() / k.name, "joint", kEpochs);
    c.lr_schedule = k.schedule;
    c.lr_step = kStep;
    c.lr_gamma = kGamma;
    c.lr_step_offset = k.offset;
    c.lr_backbone = kBase;
    const auto r = run_train(c);
    ASSERT_EQ(r.epochs.size(), static_cast<size_t>(kEpochs)) << k.name;
    const auto& want = oracle.at(k.name);
    for (int e = 0; e < kEpochs; ++e) {
      const double expected = want.at(static_cast<size_t>(e)).get<double>();
      EXPECT_NEAR(r.epochs[static_cast<size_t>(e)].learning_rate, expected, 1e-9 * kBase + 1e-6 * expected)
          << k.name << " epoch " << e;
    }
  }
}

TEST(EpochMetrics, BatchesAndRanksAddUpToTheEpochsMeans) {
  // Two batches of 3 and 1 images: the epoch's means weight each batch by its images.
  const auto labels_a = torch::tensor({0, 1, 1}, torch::kInt64), labels_b = torch::tensor({2}, torch::kInt64);
  const auto logits_a = torch::tensor({{5.0, 1.0, 0.0}, {0.0, 1.0, 3.0}, {0.0, 2.0, 1.0}});  // 2 of 3 right
  const auto logits_b = torch::tensor({{0.0, 0.0, 1.0}});                                      // right
  EpochMetrics whole, rank0, rank1;
  whole.add(terms_of(1.0, 2.0, 3.0, 4.0), torch::tensor(10.0), logits_a, labels_a);
  whole.add(terms_of(5.0, 6.0, 7.0, 8.0), torch::tensor(20.0), logits_b, labels_b);
  rank0.add(terms_of(1.0, 2.0, 3.0, 4.0), torch::tensor(10.0), logits_a, labels_a);
  rank1.add(terms_of(5.0, 6.0, 7.0, 8.0), torch::tensor(20.0), logits_b, labels_b);
  db::EpochRow row;
  write_train_metrics(whole, row);
  write_eval_metrics(whole, row);
  EXPECT_DOUBLE_EQ(row.train_loss, (3 * 10.0 + 20.0) / 4);
  EXPECT_DOUBLE_EQ(row.train_cross_entropy, (3 * 1.0 + 5.0) / 4);
  EXPECT_DOUBLE_EQ(row.train_cluster, (3 * 2.0 + 6.0) / 4);
  EXPECT_DOUBLE_EQ(row.train_separation, (3 * 3.0 + 7.0) / 4);
  EXPECT_DOUBLE_EQ(row.train_avg_separation, (3 * 4.0 + 8.0) / 4);
  EXPECT_DOUBLE_EQ(row.train_accuracy, 3.0 / 4);
  EXPECT_DOUBLE_EQ(row.eval_cross_entropy, row.train_cross_entropy);
  EXPECT_DOUBLE_EQ(row.eval_accuracy, 3.0 / 4);
  // What an all-reduce of the ranks' vectors gives is the whole epoch's.
  auto v = rank0.to_vector();
  const auto w = rank1.to_vector();
  for (size_t i = 0; i < v.size(); ++i) v[i] += w[i];
  EXPECT_EQ(EpochMetrics::from_vector(v).to_vector(), whole.to_vector());
  EXPECT_TRUE(whole.finite());
  whole.add(terms_of(NAN, 0, 0, 0), torch::tensor(1.0), logits_b, labels_b);
  EXPECT_FALSE(whole.finite());
  EXPECT_DOUBLE_EQ(EpochMetrics().accuracy(), 0.0);  // no images: 0, not NaN
  EXPECT_THROW(EpochMetrics::from_vector({1, 2, 3}), std::invalid_argument);
}

TEST(EpochMetrics, ACheckpointWithOtherSumsIsRefusedNamingTheFile) {
  TempDir dir;
  model::ProtoPNetOptions o;
  o.arch = "small";
  o.num_classes = 2;
  o.prototypes_per_class = 1;
  o.prototype_dim = 4;
  model::ProtoPNet net(o);
  TrainingPosition pos;
  pos.epoch = 3;
  pos.sums.loss = 7;
  pos.sums.images = 2;
  const auto path = dir.path() / "good.pt";
  save_checkpoint(path, *net, nullptr, &pos);
  TrainingPosition back;
  load_checkpoint(path, *net, torch::kCPU, nullptr, &back);
  EXPECT_EQ(back.epoch, 3);
  EXPECT_EQ(back.sums.to_vector(), pos.sums.to_vector());
  // The same archive with six sums, as a damaged or foreign file could hold.
  torch::serialize::OutputArchive archive, model_archive;
  net->save(model_archive);
  archive.write("model", model_archive);
  archive.write("position", torch::tensor({int64_t{0}, int64_t{3}, int64_t{0}}, torch::kInt64));
  archive.write("sums", torch::zeros({6}, torch::kFloat64));
  const auto bad = dir.path() / "six.pt";
  archive.save_to(bad.string());
  try {
    load_checkpoint(bad, *net, torch::kCPU, nullptr, &back);
    FAIL() << "a checkpoint with six sums was loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad.string() + ": not a checkpoint of this model (expected 7 epoch sums, found 6)"),
              std::string::npos)
        << e.what();
  }
}

TEST(RunStore, AVersionOneDatabaseMigratesToTheLatest) {
  TempDir dir;
  const std::string path = dir.file("run.sqlite");
  {
    db::Database v1(path, db::Migrations{db::run_migrations()[0]});
    ASSERT_EQ(v1.schema_version(), 1);
  }
  db::RunStore store(path);
  EXPECT_EQ(store.database().schema_version(), static_cast<int>(db::run_migrations().size()));
  EXPECT_FALSE(store.run().has_value());
  store.create_run({"t", "v", "{}", "/d", "{}"}, {});
  const int64_t s = store.begin_stage(db::StageKind::kWarm, "{}", "checkpoints/init.pt");
  const std::string sha_a(64, 'a'), sha_b(64, 'b');
  store.add_checkpoint({0, s, 1, 0, "checkpoints/a.pt", false, "", sha_a}, {}, std::nullopt);
  const auto a = store.checkpoints(s);
  EXPECT_EQ(store.file_sha256("checkpoints/a.pt"), sha_a);
  store.add_checkpoint({0, s, 2, 0, "checkpoints/b.pt", true, "", sha_b}, {a[0].id}, std::nullopt);
  const auto b = store.checkpoints(s);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].path, "checkpoints/b.pt");
  EXPECT_EQ(b[0].sha256, sha_b);  // the checksum comes back with the row
  EXPECT_EQ(store.file_sha256("checkpoints/a.pt"), "");  // forgotten with the superseded checkpoint
  EXPECT_THROW(store.add_checkpoint({0, s, 3, 0, "checkpoints/c.pt", false, "", "short"}, {}, std::nullopt),
               std::runtime_error);  // a checksum is 64 hex digits
  const auto final = store.latest_final_checkpoint();
  ASSERT_TRUE(final.has_value());
  EXPECT_EQ(final->path, "checkpoints/b.pt");
  EXPECT_THROW(store.create_run({"t", "v", "{}", "/d", "{}"}, {}), std::runtime_error);  // one run per database
}

}  // namespace
}  // namespace ppnet::pipeline

namespace ppnet::pipeline {
namespace {

nlohmann::json stage_config(RunFolder& run, size_t index) {
  return nlohmann::json::parse(run.store().stages().at(index).config_json);
}

TEST(TrainRecipe, FromScratchSkipsWarmAndTrainsJointWithACosineDecay) {
  TempDir dir;
  const auto data = prepared(dir);
  TrainConfig warm = small_train(data, dir.path() / "run", "warm", 0);
  warm.epochs.reset();  // the recipe decides
  const auto w = run_train(warm);
  EXPECT_TRUE(w.epochs.empty());
  TrainConfig joint = small_train(data, dir.path() / "run", "joint", 0);
  joint.epochs.reset();
  const auto j = run_train(joint);
  ASSERT_EQ(j.epochs.size(), 12u);
  EXPECT_GT(j.epochs.back().eval_accuracy, 0.5);  // chance is 1/3

  RunFolder run = RunFolder::open(dir.path() / "run");
  EXPECT_FALSE(run.model_config().pretrained);
  EXPECT_EQ(run.store().stages().at(0).status, db::StageStatus::kDone);
  EXPECT_EQ(stage_config(run, 0)["epochs"], 0);
  const auto settings = stage_config(run, 1);
  EXPECT_EQ(settings["lr_backbone"], 1e-3);
  EXPECT_EQ(settings["lr_schedule"], "cosine");
  EXPECT_EQ(settings["lr_add_on"], 3e-3);  // the rest stays the reference's
}

TEST(TrainRecipe, PretrainedRunsKeepTheReferenceDefaultsAndGivenValuesWin) {
  TempDir dir;
  const auto data = prepared(dir);
  // A backbone file of the small_bn architecture, as a user would supply one.
  model::ProtoPNetOptions o;
  o.arch = "small_bn";
  o.num_classes = 3;
  model::ProtoPNet donor(o);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& p : donor->backbone().named_parameters()) tensors[p.key()] = p.value().detach();
  for (const auto& b : donor->backbone().named_buffers()) tensors[b.key()] = b.value();
  test::write_safetensors(dir.file("small_bn.safetensors"), tensors);

  TrainConfig warm = small_train(data, dir.path() / "run", "warm", 1);
  warm.weights = dir.file("small_bn.safetensors");
  run_train(warm);
  TrainConfig joint = small_train(data, dir.path() / "run", "joint", 0);
  joint.epochs.reset();
  joint.lr_schedule = LrSchedule::kCosine;  // given: wins over the recipe
  const auto j = run_train(joint);
  EXPECT_EQ(j.epochs.size(), 10u);

  RunFolder run = RunFolder::open(dir.path() / "run");
  EXPECT_TRUE(run.model_config().pretrained);
  const auto settings = stage_config(run, 1);
  EXPECT_EQ(settings["lr_backbone"], 1e-4);
  EXPECT_EQ(settings["lr_schedule"], "cosine");
  EXPECT_EQ(settings["lr_step"], 5);
}

}  // namespace
}  // namespace ppnet::pipeline
