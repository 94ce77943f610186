#pragma once
// Images of a prepared data set as model input: decoding, resizing and normalisation on worker
// threads, batches prefetched in a fixed order so compute does not wait for the disk.

#include <torch/types.h>

#include <opencv2/core.hpp>

#include <condition_variable>
#include <deque>
#include <exception>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pipeline/data/manifest.h"
#include "pipeline/data/resize.h"
#include "pipeline/run/run_folder.h"

namespace ppnet::pipeline {

/// ImageNet statistics, RGB order: what every backbone here is normalised with.
inline constexpr float kImageMean[3] = {0.485f, 0.456f, 0.406f};
inline constexpr float kImageStd[3] = {0.229f, 0.224f, 0.225f};

/// How an image file becomes the model's input: resized to size × size by `resize`.
struct ModelInput {
  int size = 224;
  ResizeMethod resize = ResizeMethod::kBilinear;
};
/// The model input a run's model takes (its img_size and resize method).
ModelInput model_input(const ModelConfig& m);

/// Decodes `path` into a 3×size×size float tensor: RGB (grey is replicated), resized as `input`
/// says, [0,1] then ImageNet-normalised. Throws std::runtime_error naming the file when unreadable.
torch::Tensor load_image_tensor(const std::filesystem::path& path, const ModelInput& input);
/// The same for decoded 8-bit BGR pixels.
torch::Tensor image_tensor(const cv::Mat& bgr, const ModelInput& input);

/// The object mask of prepared image `path` (relative to `data`; pipeline/data/masks.h) as a
/// size×size float tensor of 0 and 1 (object where the area-resized mask is at least half);
/// undefined when the image has none. Throws naming the file when it is unreadable or not the
/// image's size.
torch::Tensor load_mask_tensor(const std::filesystem::path& data, const std::string& path, const ModelInput& input);

/// Whether source image `source_id` is among the `fraction` of images whose masks a stage uses
/// (--annotated-fraction): a function of the id and seed alone, so an image and all its
/// augmented copies are in or out together, on every rank and every resume.
bool among_annotated(const std::string& source_id, double fraction, uint64_t seed);

/// A H×W tensor (any device, any floating dtype) as a CV_32F matrix, for rendering.
cv::Mat tensor_to_mat(const torch::Tensor& map);

struct Batch {
  torch::Tensor images;  // B×3×size×size float (CPU)
  torch::Tensor labels;  // B int64
  int64_t index = 0;     // batch number within the epoch
  int64_t global_size = 0;  // images in the whole batch, all ranks' slices together
  std::vector<std::string> errors;  // with tolerate_errors: per image, "" or why it failed
  // With masks asked for: B×size×size float object masks (0 where an image has none) and B bools.
  torch::Tensor masks, has_mask;
};

/// Online augmentation of a training pass: each image is flipped left to right (its mask with it)
/// with `probability`, decided by the image's entry and `seed` alone, so every rank and every
/// resume flips the same images; a new seed per epoch gives each epoch its own flips.
struct RandomFlip {
  double probability = 0;
  uint64_t seed = 0;
};
/// Whether `flip` turns entry `entry` over.
bool flipped(const RandomFlip& flip, int64_t entry);

/// One rank's part of every batch in data-parallel work: of a batch of L images, rank r of
/// `ranks` takes the contiguous slice [L·r/ranks, L·(r+1)/ranks) (it may be empty).
struct Shard {
  int rank = 0, ranks = 1;
};

/// Streams batches of `entries` (paths relative to `data`) in `order`, starting at batch
/// `first_batch`. A background thread decodes up to `prefetch` batches ahead (each batch's
/// images in parallel). Errors surface from next(), unless `tolerate_errors`: then an
/// unreadable image becomes zeros and its reason goes to Batch::errors. With a `shard`, each
/// batch holds only this rank's slice of it, and Batch::global_size the whole batch's size.
/// With `masked` (one flag per entry), the flagged entries' object masks come with the batch.
/// With a `flip`, images (and masks) are flipped as it says.
class BatchLoader {
 public:
  BatchLoader(std::filesystem::path data, std::vector<ListEntry> entries, std::vector<int64_t> order,
              ModelInput input, int batch_size, int64_t first_batch, int prefetch = 3, bool tolerate_errors = false,
              Shard shard = {}, std::vector<bool> masked = {}, RandomFlip flip = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// The next batch, or false when the epoch is done.
  bool next(Batch* batch);
  int64_t batches() const { return batches_; }

 private:
  void produce();
  std::filesystem::path data_;
  std::vector<ListEntry> entries_;
  std::vector<int64_t> order_;
  ModelInput input_;
  int batch_size_;
  int64_t first_batch_, batches_;
  size_t prefetch_;
  bool tolerate_errors_;
  Shard shard_;
  std::vector<bool> masked_;
  RandomFlip flip_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread worker_;
};

/// 0, 1, …, n−1: the order of a pass that is not shuffled (evaluation, projection, explanation).
std::vector<int64_t> sequential_order(size_t n);

/// The images of a sequential pass over n that rank `shard.rank` computes when whole batches of
/// `batch_size` go round-robin to the ranks (batch k to rank k mod ranks): every image sits in
/// the same batch as in one process, so its results are the same to the bit.
std::vector<int64_t> round_robin_batches(size_t n, int batch_size, Shard shard);

/// The permutation of [0, n) that epoch `epoch` of a run with `seed` visits: a function of
/// those numbers alone, so a resumed run sees the same batches.
std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch);

}  // namespace ppnet::pipeline
