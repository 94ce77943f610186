#pragma once
// `ppnet forbid` and `ppnet remember`: concepts a user marks in a run (ProtoPDebug, Bontempelli
// et al. 2023). A concept is an image region (the patch a prototype was projected onto, or any
// box of any image) whose look the prototypes of a class must not match (forbid: a confounder
// such as background, a watermark or a ruler) or must keep matching (remember). Its pixels go
// into run.sqlite, so the next `train` re-embeds it with the backbone as it is then, and
// `project` can refuse patches that look like it (docs/audit.md, "Fixing what the audit shows").
// Plain structs, no LibTorch; errors are exceptions naming the option, file or value.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "db/run_store.h"

namespace ppnet::pipeline {

struct ConceptConfig {
  std::string run;
  db::ConceptKind kind = db::ConceptKind::kForbid;
  // One of: a prototype of the latest projection (the tighter of its cell's receptive field and
  // its high-activation box in its source image, or `box` in that image) …
  std::optional<int64_t> prototype;
  // … or a box [x0, y0, x1, y1) of an image file …
  std::string image;
  std::optional<std::array<int64_t, 4>> box;
  // … or the removal of a concept of this kind.
  std::optional<int64_t> remove;
  std::string data;        // where a prototype's source image is (default: the data the run was made from)
  std::string class_name;  // the class whose prototypes it concerns: a name, an index or "all";
                           // default: the prototype's class, or all for an image box
  bool json = false;
};

struct ConceptResult {
  std::string run;
  db::ConceptKind kind = db::ConceptKind::kForbid;
  bool removed = false;   // --remove: the concept went
  db::ConceptRow concept_row;   // the concept added (or removed), pixels left out
  std::string class_name;       // its class's name, or "all"
  int64_t count = 0;            // concepts of this kind in the run now
};

/// Adds or removes a concept; see ConceptConfig. Holds the run's lock while it writes.
ConceptResult run_concept(const ConceptConfig& config);

/// The name of the class a concept concerns (RunFolder::class_names), or "all".
std::string concept_class_name(const db::ConceptRow& concept_row, const std::vector<std::string>& class_names);

/// Parses "x0,y0,x1,y1" (integers); throws std::invalid_argument otherwise.
std::array<int64_t, 4> parse_box(const std::string& text);

}  // namespace ppnet::pipeline
