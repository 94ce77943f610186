#pragma once
// Printing command reports for people (text) and for scripts (--json).

#include <ostream>

#include "pipeline/commands.h"

namespace ppnet::cli {

void print_report(std::ostream& out, const pipeline::WeightsReport& report, bool json);
void print_report(std::ostream& out, const pipeline::PrepareReport& report, bool json);
void print_report(std::ostream& out, const pipeline::TrainReport& report, bool json);
void print_report(std::ostream& out, const pipeline::InfoReport& report, bool json);
void print_report(std::ostream& out, const pipeline::ProjectReport& report, bool json);
void print_report(std::ostream& out, const pipeline::LastLayerReport& report, bool json);
void print_report(std::ostream& out, const pipeline::EvaluateReport& report, bool json);
void print_report(std::ostream& out, const pipeline::ExplainReport& report, bool json);
void print_report(std::ostream& out, const pipeline::AnalyzeReport& report, bool json);
void print_report(std::ostream& out, const pipeline::PruneReport& report, bool json);

}  // namespace ppnet::cli
