// Shared command-line plumbing for the binaries: options from the command
// line and, with --config FILE, from an INI-style file (command line wins).
#pragma once

#include <optional>
#include <string>

#include "common/time.h"

#include <boost/program_options.hpp>

namespace txc::cli {

// Parses argv (and --config) into `vm`. Prints help and exits 0 for --help;
// prints a clear error and exits 2 for bad input.
void Parse(int argc, char** argv, const std::string& usage,
           boost::program_options::options_description& desc,
           boost::program_options::variables_map& vm);

// A duration: "10s", "500ms", "2m", "1h", "1.5s", or plain seconds ("30").
// nullopt for anything else (empty, negative, an unknown unit, too large).
std::optional<Micros> ParseDuration(const std::string& s);

}  // namespace txc::cli
