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

void print_report(std::ostream& out, const pipeline::PrepareReport& r, bool json) {
  if (json) {
    nlohmann::json j = {{"out", r.out},
                        {"source_kind", r.source_kind},
                        {"classes", r.classes},
                        {"images", r.images},
                        {"source_images_decoded", r.source_images},
                        {"files_written", r.files_written},
                        {"files_kept", r.files_kept},
                        {"failed", r.failed},
                        {"up_to_date", r.up_to_date},
                        {"seconds", r.seconds},
                        {"threads", r.threads}};
    out << j.dump(2) << '\n';
    return;
  }
  out << r.out << ": " << r.classes << " classes";
  for (const auto& [split, n] : r.images) out << ", " << split << " " << n;
  out << '\n';
  if (r.up_to_date) {
    out << "  already complete: nothing to do\n";
    return;
  }
  out << "  wrote " << r.files_written << " files from " << r.source_images << " source images in "
      << r.seconds << " s (" << r.threads << " threads)";
  if (r.files_kept > 0) out << "; kept " << r.files_kept << " from an earlier run";
  out << '\n';
  if (!r.failed.empty()) {
    out << "  " << r.failed.size() << " source images failed (listed on stderr and in manifest.json)\n";
  }
}

}  // namespace ppnet::cli
