#pragma once
// Printing command reports for people (text) and for scripts (--json).

#include <ostream>

#include "pipeline/data/prepare.h"
#include "pipeline/formats/weights.h"
#include "pipeline/run/concepts.h"
#include "pipeline/run/info.h"
#include "pipeline/stages/analyze.h"
#include "pipeline/stages/evaluate.h"
#include "pipeline/stages/export_model.h"
#include "pipeline/stages/explain.h"
#include "pipeline/stages/import_model.h"
#include "pipeline/stages/last_layer.h"
#include "pipeline/stages/project.h"
#include "pipeline/stages/prune.h"
#include "pipeline/stages/train.h"

namespace ppnet::cli {

void print_result(std::ostream& out, const pipeline::WeightsResult& report, bool json);
void print_result(std::ostream& out, const pipeline::PrepareResult& report, bool json);
void print_result(std::ostream& out, const pipeline::TrainResult& report, bool json);
void print_result(std::ostream& out, const pipeline::InfoResult& report, bool json);
void print_result(std::ostream& out, const pipeline::ProjectResult& report, bool json);
void print_result(std::ostream& out, const pipeline::LastLayerResult& report, bool json);
void print_result(std::ostream& out, const pipeline::EvaluateResult& report, bool json);
void print_result(std::ostream& out, const pipeline::ExplainResult& report, bool json);
void print_result(std::ostream& out, const pipeline::AnalyzeResult& report, bool json);
void print_result(std::ostream& out, const pipeline::PruneResult& report, bool json);
void print_result(std::ostream& out, const pipeline::ConceptResult& report, bool json);
void print_result(std::ostream& out, const pipeline::ImportResult& report, bool json);
void print_result(std::ostream& out, const pipeline::ExportResult& report, bool json);

}  // namespace ppnet::cli
