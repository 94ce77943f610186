#include "pipeline/stages/image_data.h"

#include <oneapi/tbb/parallel_for.h>
#include <torch/torch.h>

#include <opencv2/imgproc.hpp>
#include <random>

#include "pipeline/data/image_file.h"
#include "pipeline/data/masks.h"

namespace ppnet::pipeline {

namespace fs = std::filesystem;

ModelInput model_input(const ModelConfig& m) { return {m.img_size, m.resize}; }

torch::Tensor load_image_tensor(const fs::path& path, const ModelInput& input) {
  return image_tensor(read_image_file(path), input);  // grey files come back as 3 channels
}

torch::Tensor image_tensor(const cv::Mat& bgr, const ModelInput& input) {
  const int size = input.size;
  cv::Mat rgb, f;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  const cv::Mat resized = resize_image(rgb, size, size, input.resize);
  resized.convertTo(f, CV_32FC3, 1.0 / 255.0);
  auto t = torch::from_blob(f.data, {size, size, 3}, torch::kFloat32).permute({2, 0, 1}).clone();
  const auto mean = torch::tensor({kImageMean[0], kImageMean[1], kImageMean[2]}).view({3, 1, 1});
  const auto stdev = torch::tensor({kImageStd[0], kImageStd[1], kImageStd[2]}).view({3, 1, 1});
  return (t - mean) / stdev;
}

torch::Tensor load_mask_tensor(const fs::path& data, const std::string& path, const ModelInput& input) {
  const cv::Mat mask = read_image_mask(data, path);
  if (mask.empty()) return {};
  cv::Mat resized, f;
  cv::resize(mask, resized, cv::Size(input.size, input.size), 0, 0, cv::INTER_AREA);
  binarize_mask(resized).convertTo(f, CV_32F, 1.0 / 255.0);
  return torch::from_blob(f.data, {input.size, input.size}, torch::kFloat32).clone();
}

bool among_annotated(const std::string& source_id, double fraction, uint64_t seed) {
  if (fraction >= 1) return true;
  uint64_t h = 1469598103934665603ull ^ (seed * 0x9e3779b97f4a7c15ull);  // FNV-1a, seeded
  for (const unsigned char ch : source_id) h = (h ^ ch) * 1099511628211ull;
  h ^= h >> 33;  // a finaliser (MurmurHash3's), so that nearby ids spread
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  return static_cast<double>(h >> 11) * 0x1.0p-53 < fraction;
}

bool flipped(const RandomFlip& flip, int64_t entry) {
  if (flip.probability <= 0) return false;
  uint64_t h = flip.seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(entry);  // SplitMix64's mix
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ull;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebull;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53 < flip.probability;
}

cv::Mat tensor_to_mat(const torch::Tensor& map) {
  const auto m = map.to(torch::kCPU).to(torch::kFloat32).contiguous();
  return cv::Mat(static_cast<int>(m.size(0)), static_cast<int>(m.size(1)), CV_32F, m.data_ptr<float>()).clone();
}

std::vector<int64_t> sequential_order(size_t n) {
  std::vector<int64_t> order(n);
  for (size_t i = 0; i < n; ++i) order[i] = static_cast<int64_t>(i);
  return order;
}

std::vector<int64_t> round_robin_batches(size_t n, int batch_size, Shard shard) {
  std::vector<int64_t> order;
  const auto total = static_cast<int64_t>(n), step = static_cast<int64_t>(batch_size);
  for (int64_t first = step * shard.rank; first < total; first += step * shard.ranks) {
    for (int64_t i = first; i < std::min(first + step, total); ++i) order.push_back(i);
  }
  return order;
}

std::vector<int64_t> epoch_order(int64_t n, uint64_t seed, int64_t epoch) {
  std::vector<int64_t> order = sequential_order(static_cast<size_t>(n));
  std::mt19937_64 rng(seed * 0x9e3779b97f4a7c15ull + static_cast<uint64_t>(epoch) + 1);
  for (size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

BatchLoader::BatchLoader(fs::path data, std::vector<ListEntry> entries, std::vector<int64_t> order, ModelInput input,
                         int batch_size, int64_t first_batch, int prefetch, bool tolerate_errors, Shard shard,
                         std::vector<bool> masked, RandomFlip flip)
    : data_(std::move(data)),
      entries_(std::move(entries)),
      order_(std::move(order)),
      input_(input),
      batch_size_(batch_size),
      first_batch_(first_batch),
      batches_((static_cast<int64_t>(order_.size()) + batch_size - 1) / batch_size),
      prefetch_(static_cast<size_t>(std::max(1, prefetch))),
      tolerate_errors_(tolerate_errors),
      shard_(shard),
      masked_(std::move(masked)),
      flip_(flip) {
  worker_ = std::thread([this] { produce(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  worker_.join();
}

void BatchLoader::produce() {
  try {
    for (int64_t b = first_batch_; b < batches_; ++b) {
      const int64_t first = b * batch_size_;
      const int64_t global = std::min<int64_t>(first + batch_size_, static_cast<int64_t>(order_.size())) - first;
      const int64_t begin = first + global * shard_.rank / shard_.ranks;
      const int64_t end = first + global * (shard_.rank + 1) / shard_.ranks;
      Batch batch;
      batch.index = b;
      batch.global_size = global;
      batch.images = torch::empty({end - begin, 3, input_.size, input_.size});
      batch.labels = torch::empty({end - begin}, torch::kInt64);
      if (tolerate_errors_) batch.errors.assign(static_cast<size_t>(end - begin), "");
      if (!masked_.empty()) {
        batch.masks = torch::zeros({end - begin, input_.size, input_.size});
        batch.has_mask = torch::zeros({end - begin}, torch::kBool);
      }
      tbb::parallel_for(begin, end, [&](int64_t i) {
        const auto entry = static_cast<size_t>(order_[static_cast<size_t>(i)]);
        const ListEntry& e = entries_[entry];
        batch.labels[i - begin] = static_cast<int64_t>(e.class_index);
        const bool flip = flipped(flip_, static_cast<int64_t>(entry));
        auto oriented = [flip](torch::Tensor t) { return flip ? t.flip({-1}) : t; };
        if (!masked_.empty() && masked_[entry]) {
          if (const auto mask = load_mask_tensor(data_, e.path, input_); mask.defined()) {
            batch.masks[i - begin].copy_(oriented(mask));
            batch.has_mask[i - begin] = true;
          }
        }
        const auto load = [&] { batch.images[i - begin].copy_(oriented(load_image_tensor(data_ / e.path, input_))); };
        if (!tolerate_errors_) return load();
        try {
          load();
        } catch (const std::exception& ex) {
          batch.images[i - begin].zero_();
          batch.errors[static_cast<size_t>(i - begin)] = ex.what();
        }
      });
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] { return stop_ || ready_.size() < prefetch_; });
      if (stop_) return;
      ready_.push_back(std::move(batch));
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  std::lock_guard<std::mutex> lock(mutex_);
  done_ = true;
  changed_.notify_all();
}

bool BatchLoader::next(Batch* batch) {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || done_; });
  if (!ready_.empty()) {
    *batch = std::move(ready_.front());
    ready_.pop_front();
    changed_.notify_all();
    return true;
  }
  if (error_) std::rethrow_exception(error_);
  return false;
}

}  // namespace ppnet::pipeline
