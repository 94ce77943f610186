#pragma once
// Text for the HTML pages ppnet writes (explanations, run report).

#include <string>

namespace ppnet::pipeline {

/// `text` with &, <, > and " escaped, for element content and attribute values.
std::string html_escape(const std::string& text);

}  // namespace ppnet::pipeline
