#pragma once
// What `ppnet forbid` and `ppnet remember` share: the same options, for concepts of either kind.

#include "cli/command.h"
#include "pipeline/run/concepts.h"

namespace ppnet::cli {

/// States, checks and runs a forbid or remember command line.
int run_concept_command(Options& o, db::ConceptKind kind);

}  // namespace ppnet::cli
