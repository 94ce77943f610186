#pragma once
// What the stages do across ranks on top of the transport (pipeline/parallel/distributed.h):
// rank 0 hands its plan and model over to the others, and per-image rows computed in whole
// batches round-robin are assembled on every rank.

#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "pipeline/parallel/distributed.h"
#include "pipeline/stages/checkpoint.h"
#include "pipeline/stages/image_data.h"

namespace ppnet::pipeline {

/// The ranks of a data-parallel command over the prepared data in `data`: the process group
/// (nullptr outside torchrun, or with one rank), once each rank has compared the SHA-256 of its
/// `data`/manifest.json with rank 0's. Every node needs the same prepared data — one shared
/// folder, or copies of it — so a rank whose manifest differs (or is missing) throws
/// std::runtime_error naming its folder and both digests; rank 0 then loses it at its next step.
std::unique_ptr<Distributed> join_ranks(const std::filesystem::path& data);

/// Rank 0's file `path` on every rank, for ranks on nodes that cannot read it: rank 0 sends its
/// bytes (one all-reduce) and returns `path`; the others write them to `copy` and return that.
/// `what` names the file in errors.
std::filesystem::path share_file(Distributed& dist, const std::filesystem::path& path, const std::filesystem::path& copy,
                                 const std::string& what);

/// Rank 0's side of a data-parallel pass: `plan` (its settings) under `key`, with the model's
/// configuration, then the weights of `net`, for take_over() on the other ranks.
void hand_over(Distributed& dist, const std::string& key, nlohmann::json plan, const ModelConfig& model,
               model::ProtoPNetImpl& net);
/// Rank 0 tells the other ranks that they have nothing to do.
void hand_over_nothing(Distributed& dist, const std::string& key);

/// What a rank other than 0 receives: rank 0's plan and its model, on `device`, in eval mode.
struct TakenOver {
  nlohmann::json plan;
  ModelConfig model;
  model::ProtoPNet net{nullptr};
};
/// Waits for rank 0's hand_over() under `key`; nullopt after hand_over_nothing().
std::optional<TakenOver> take_over(Distributed& dist, const std::string& key, torch::Device device);

/// Per-image rows (N × `width`, CPU, in `dtype`: float32, or float16 for a compact cache) of a
/// sequential pass over `list`, no gradients: `rows_of(images)` gives a batch's B × width (on any
/// device). With `dist`, each rank computes the whole batches round_robin_batches() gives it and
/// one all-reduce assembles the rows on every rank (the others' rows are zeros): what one
/// process computes, to the bit. A non-empty `label` shows progress on rank 0; `what` names the
/// step if a rank is lost.
torch::Tensor rows_across_ranks(Distributed* dist, const std::filesystem::path& data, const std::vector<ListEntry>& list,
                                const ModelInput& input, int batch_size, int64_t width,
                                const std::function<torch::Tensor(const torch::Tensor&)>& rows_of,
                                const std::string& label, const std::string& what,
                                torch::ScalarType dtype = torch::kFloat);

}  // namespace ppnet::pipeline
