// ppnet remember: mark an image region as a concept the prototypes must keep matching (ProtoPDebug).
#include "cli/concept_options.h"

namespace ppnet::cli {
namespace {

int run(Options& o) { return run_concept_command(o, db::ConceptKind::kRemember); }

}  // namespace

extern const Command kRememberCommand = {
    "remember", "mark a prototype's patch or an image region as a concept the next training keeps",
    "ppnet remember --run RUN (--prototype J [--box x0,y0,x1,y1] | --image FILE --box x0,y0,x1,y1) [--class CLASS] | --remove ID",
    "ppnet remember --run runs/cub --prototype 42 --box 2,2,5,5", false,
    &run};

}  // namespace ppnet::cli
