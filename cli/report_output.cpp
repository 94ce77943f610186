#include "cli/report_output.h"

#include <nlohmann/json.hpp>

namespace ppnet::cli {

void print_report(std::ostream& out, const pipeline::WeightsReport& r, bool json) {
  if (json) {
    nlohmann::json j = {{"arch", r.arch},
                        {"file", r.file},
                        {"format", r.format},
                        {"tensors_loaded", r.tensors_loaded},
                        {"parameters", r.parameters},
                        {"ignored", r.ignored},
                        {"defaulted", r.defaulted},
                        {"img_size", r.img_size},
                        {"features", {r.out_channels, r.grid, r.grid}},
                        {"receptive_field", r.receptive_field},
                        {"threads", r.threads}};
    out << j.dump(2) << '\n';
    return;
  }
  out << r.file << ": " << r.format << ", fits " << r.arch << '\n'
      << "  loaded     " << r.tensors_loaded << " tensors, " << r.parameters << " parameters\n"
      << "  ignored    " << r.ignored.size() << " classification-head tensors\n";
  if (!r.defaulted.empty()) {
    out << "  defaulted  " << r.defaulted.size() << " optional buffers (num_batches_tracked)\n";
  }
  out << "  features   " << r.out_channels << "×" << r.grid << "×" << r.grid << " at "
      << r.img_size << "×" << r.img_size << " px, receptive field " << r.receptive_field
      << " px\n";
}

}  // namespace ppnet::cli
