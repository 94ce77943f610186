#pragma once
// One epoch of a training stage as the commands that ran it report it.

#include <cstdint>
#include <string>

namespace ppnet::pipeline {

struct EpochSummary {
  int64_t epoch = 0;
  double train_loss = 0, train_accuracy = 0, eval_accuracy = 0, images_per_second = 0, seconds = 0;
  std::string eval_split;
  /// The learning rate the optimizer applied in the epoch's last batch, of its first parameter
  /// group (train: the backbone in joint, the add-on layers in warm; last-layer: its one group).
  double learning_rate = 0;
};

}  // namespace ppnet::pipeline
