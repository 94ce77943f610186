// ppnet forbid: mark an image region as a concept the prototypes must not match (ProtoPDebug).
#include "cli/concept_options.h"

namespace ppnet::cli {
namespace {

int run(Options& o) { return run_concept_command(o, db::ConceptKind::kForbid); }

}  // namespace

extern const Command kForbidCommand = {
    "forbid", "mark a prototype's patch or an image region as a concept the next training forgets",
    "ppnet forbid --run RUN (--prototype J [--box x0,y0,x1,y1] | --image FILE --box x0,y0,x1,y1) [--class CLASS] | --remove ID",
    "ppnet forbid --run runs/cub --prototype 17\nppnet forbid --run runs/cub --image photos/watermark.png --box 0,180,224,224 --class 3", false,
    &run};

}  // namespace ppnet::cli
