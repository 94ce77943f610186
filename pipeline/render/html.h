#pragma once
// Text for the HTML pages ppnet writes (explanations, run report).

#include <string>

namespace ppnet::pipeline {

/// `text` with &, <, > and " escaped, for element content and attribute values.
std::string html_escape(const std::string& text);

/// A relative path as a URL: every byte but unreserved characters and '/' percent-encoded,
/// so names with spaces or non-ASCII characters link to the file they name.
std::string url_path(const std::string& path);

}  // namespace ppnet::pipeline
