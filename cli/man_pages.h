#pragma once
// The manual pages, ppnet(1) and ppnet-<command>(1), written in roff (man macros) from the
// command descriptions (cli/describe.h): the same option tables that print --help.

#include <string>
#include <utility>
#include <vector>

#include "cli/describe.h"

namespace ppnet::cli {

/// Every page as (file name, roff text): "ppnet.1" first, then "ppnet-<command>.1" for each
/// of `commands`. Text outside ASCII becomes groff's named or \[uXXXX] glyphs, so that
/// `groff -man -ww` reads the pages without warnings on any device.
std::vector<std::pair<std::string, std::string>> man_pages(const std::vector<CommandDoc>& commands);

}  // namespace ppnet::cli
