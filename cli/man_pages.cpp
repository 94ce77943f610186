#include "cli/man_pages.h"

#include <cstdint>
#include <cstdio>
#include <map>
#include <sstream>

#include "base/version.h"

namespace ppnet::cli {
namespace {

// groff's names for the characters ppnet's help texts use; others become \[uXXXX].
const std::map<uint32_t, std::string>& glyph_names() {
  static const std::map<uint32_t, std::string> kNames = {
      {0x2026, "\\&..."},      {0x00d7, "\\[mu]"}, {0x2265, "\\[>=]"}, {0x2264, "\\[<=]"}, {0x2192, "\\[->]"},
      {0x2014, "\\[em]"},   {0x2013, "\\[en]"}, {0x2019, "\\[cq]"}, {0x2018, "\\[oq]"}, {0x201c, "\\[lq]"},
      {0x201d, "\\[rq]"},   {0x00b1, "\\[+-]"}, {0x2212, "\\-"},    {0x00b0, "\\[de]"}, {0x03c3, "\\[*s]"},
      {0x03bb, "\\[*l]"},   {0x03b1, "\\[*a]"}, {0x03b2, "\\[*b]"}, {0x03b5, "\\[*e]"}, {0x2260, "\\[!=]"},
      {0x2248, "\\[~~]"},   {0x00e9, "\\['e]"}, {0x00b7, "\\[pc]"}, {0x2022, "\\[bu]"}, {0x00a0, "\\~"}};
  return kNames;
}

// `text` as roff running text: backslashes and hyphens escaped, UTF-8 as glyphs, and a line
// that would start with a control character ('.' or ') made plain.
std::string roff(const std::string& text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\\') out += "\\e";
      else if (c == '-') out += "\\-";
      else if ((c == '.' || c == '\'') && (out.empty() || out.back() == '\n')) out += std::string("\\&") + static_cast<char>(c);
      else out += static_cast<char>(c);
      ++i;
      continue;
    }
    const int length = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    uint32_t code = length == 4 ? c & 0x07u : length == 3 ? c & 0x0fu : length == 2 ? c & 0x1fu : 0xfffdu;
    for (int k = 1; k < length && i + k < text.size(); ++k) code = (code << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3fu);
    i += static_cast<size_t>(length);
    const auto named = glyph_names().find(code);
    if (named != glyph_names().end()) {
      out += named->second;
    } else {
      char glyph[16];
      std::snprintf(glyph, sizeof glyph, "\\[u%04X]", static_cast<unsigned>(code));
      out += glyph;
    }
  }
  return out;
}

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return s;
}

void header(std::ostream& s, const std::string& page, const std::string& summary) {
  s << ".\\\" Generated from ppnet's option tables (cli/man_pages.cpp); do not edit.\n"
    << ".TH " << roff(upper(page)) << " 1 \"\" \"ppnet " << kVersion << "\" \"ppnet manual\"\n"
    << ".SH NAME\n"
    << roff(page) << " \\- " << roff(summary) << '\n';
}

void option_item(std::ostream& s, const OptionDoc& o) {
  s << ".TP\n";
  if (o.short_name) s << "\\fB\\-" << o.short_name << "\\fR, ";
  s << "\\fB\\-\\-" << roff(o.name) << "\\fR";
  if (!o.value_name.empty()) s << " \\fI" << roff(o.value_name) << "\\fR";
  s << '\n' << roff(o.help);
  if (!o.default_text.empty()) s << " (default: " << roff(o.default_text) << ")";
  if (o.kind == ValueKind::kChoice && o.value_name.find('|') == std::string::npos) {
    s << "; one of: " << roff(join(o.choices, ", "));
  }
  s << '\n';
}

void examples(std::ostream& s, const std::vector<std::string>& lines) {
  s << ".SH EXAMPLES\n.nf\n.RS 4\n";
  for (const auto& line : lines) s << roff(line) << '\n';
  s << ".RE\n.fi\n";
}

void exit_status(std::ostream& s) {
  s << ".SH EXIT STATUS\n"
    << ".TP\n.B 0\nsuccess\n"
    << ".TP\n.B 1\nfailure, with a message on standard error naming the file or option and what was expected "
       "(a batch with a failed item included)\n"
    << ".TP\n.B 2\na usage error: an unknown command or option, a missing or bad value\n"
    << ".TP\n.BR 130 \", \" 143\ninterrupted by SIGINT or SIGTERM after saving a resumable state: "
       "run the command again (with \\fB\\-\\-resume\\fR for training)\n";
}

void files(std::ostream& s) {
  s << ".SH FILES\n"
    << ".TP\n.I RUN/\n"
    << roff("A run folder (--run): run.sqlite (the model's configuration, the data it was made from, every stage with "
            "its settings and metrics, checkpoints with their SHA-256, prototypes' sources, evaluations), "
            "checkpoints/, prototypes/<projection>/, analysis/<id>/, report.html, and .lock while a command writes "
            "to it. Files appear complete or not at all; a command killed at any moment leaves the run as of its "
            "last commit.")
    << '\n'
    << ".TP\n.I DATA/\n"
    << roff("A prepared data folder (--data, written by ppnet prepare): push/, train/ (augmented), test/, val/, "
            "lists/*.tsv (a fixed image order), manifest.json and, with annotations, parts/ and masks/.")
    << '\n';
}

void see_also(std::ostream& s, const std::vector<CommandDoc>& commands, const std::string& self) {
  s << ".SH SEE ALSO\n";
  std::string refs = self == "ppnet" ? "" : "\\fBppnet\\fR(1)";
  for (const auto& c : commands) {
    if ("ppnet-" + c.name == self) continue;
    refs += (refs.empty() ? "" : ", ") + std::string("\\fBppnet\\-") + roff(c.name) + "\\fR(1)";
  }
  s << refs << '\n'
    << ".PP\nThe documentation in /usr/share/doc/ppnet and at the project's repository (README.md, docs/).\n";
}

std::string command_page(const CommandDoc& c, const std::vector<CommandDoc>& all) {
  std::ostringstream s;
  header(s, "ppnet-" + c.name, c.summary);
  s << ".SH SYNOPSIS\n.nf\n" << roff(c.synopsis) << "\n.fi\n"
    << ".SH DESCRIPTION\n" << roff(c.summary) << ".\n"
    << ".PP\nEvery option can also be given in a \\fB\\-\\-config\\fR file, one \\fIname\\fR = \\fIvalue\\fR line "
       "each; the command line wins.\n"
    << ".SH OPTIONS\n";
  for (const auto& o : c.options) option_item(s, o);
  exit_status(s);
  files(s);
  examples(s, c.examples);
  see_also(s, all, "ppnet-" + c.name);
  return s.str();
}

std::string main_page(const std::vector<CommandDoc>& commands) {
  std::ostringstream s;
  header(s, "ppnet", "interpretable image classification with prototypical parts (ProtoPNet)");
  s << ".SH SYNOPSIS\n.nf\n\\fBppnet\\fR \\fIcommand\\fR [\\fIoptions\\fR]\n\\fBppnet\\fR \\fIcommand\\fR \\-\\-help\n"
       "\\fBppnet\\fR \\-\\-version\n.fi\n"
    << ".SH DESCRIPTION\n"
    << roff("ppnet trains and explains ProtoPNet models (\"This Looks Like That\", Chen et al., NeurIPS 2019): a CNN "
            "backbone and add-on layers turn an image into a grid of patches, each prototype's distance to every "
            "patch gives a similarity map, its maximum one score per prototype, and a last linear layer the class "
            "logits. Training runs in stages, each a command that reads what the previous one left in the run "
            "folder: warm and joint SGD, projection of every prototype onto its nearest training patch of its own "
            "class, then the last layer's convex optimisation. Every prediction is then explained by heatmaps and "
            "the training patches the prototypes came from.")
    << "\n.SH COMMANDS\n";
  for (const auto& c : commands) {
    s << ".TP\n\\fBppnet\\-" << roff(c.name) << "\\fR(1)\n" << roff(c.summary) << '\n';
  }
  s << ".SH OPTIONS\n"
    << ".TP\n\\fB\\-h\\fR, \\fB\\-\\-help\\fR\nlist the commands; \\fBppnet\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR "
       "shows a command's options\n"
    << ".TP\n\\fB\\-V\\fR, \\fB\\-\\-version\\fR\nthe version and the LibTorch it runs on\n"
    << ".PP\nEvery command takes \\fB\\-\\-config\\fR \\fIFILE\\fR, \\fB\\-\\-quiet\\fR (errors only) or "
       "\\fB\\-\\-verbose\\fR, and \\fB\\-\\-log\\-json\\fR \\fIFILE\\fR (one JSON object per event: started, stage, "
       "epoch, checkpoint, finished, error); \\fB\\-\\-threads\\fR where it computes, and \\fB\\-\\-json\\fR where "
       "it prints a result. Progress goes to standard error, results to standard output.\n";
  exit_status(s);
  s << ".SH ENVIRONMENT\n"
    << ".TP\n.BR WORLD_SIZE \", \" RANK \", \" LOCAL_RANK \", \" MASTER_ADDR \", \" MASTER_PORT\n"
    << roff("Set by torchrun: train, project, last-layer and evaluate then run data-parallel (c10d/Gloo); the other "
            "commands run on rank 0 alone.")
    << '\n';
  files(s);
  examples(s, {"ppnet prepare --idx /usr/share/datasets/fashion-mnist --class-names fashion-mnist --out data/fmnist --copies 0",
               "ppnet train --stage warm --data data/fmnist --run runs/fmnist --arch small --img-size 28",
               "ppnet train --stage joint --data data/fmnist --run runs/fmnist",
               "ppnet project --data data/fmnist --run runs/fmnist",
               "ppnet last-layer --data data/fmnist --run runs/fmnist",
               "ppnet evaluate --data data/fmnist --run runs/fmnist",
               "ppnet explain --run runs/fmnist --dir data/fmnist/test --out explained/",
               "ppnet report --run runs/fmnist",
               "make -f /usr/share/ppnet/Makefile.data pipeline PPNET=ppnet DATA=data/fmnist RUN=runs/fmnist"});
  see_also(s, commands, "ppnet");
  return s.str();
}

}  // namespace

std::vector<std::pair<std::string, std::string>> man_pages(const std::vector<CommandDoc>& commands) {
  std::vector<std::pair<std::string, std::string>> pages = {{"ppnet.1", main_page(commands)}};
  for (const auto& c : commands) pages.emplace_back("ppnet-" + c.name + ".1", command_page(c, commands));
  return pages;
}

}  // namespace ppnet::cli
