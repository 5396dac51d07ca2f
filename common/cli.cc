#include "common/cli.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;

namespace txc::cli {

std::optional<Micros> ParseDuration(const std::string& s) {
  size_t i = 0;
  bool dot = false;
  while (i < s.size() && (std::isdigit(static_cast<unsigned char>(s[i])) || (s[i] == '.' && !dot))) {
    dot = dot || s[i] == '.';
    ++i;
  }
  if (i == 0 || (i == 1 && dot)) return std::nullopt;
  double v = std::strtod(s.substr(0, i).c_str(), nullptr);
  std::string unit = s.substr(i);
  double scale = 0;
  if (unit.empty() || unit == "s") {
    scale = kSeconds;
  } else if (unit == "ms") {
    scale = kMillis;
  } else if (unit == "m") {
    scale = 60.0 * kSeconds;
  } else if (unit == "h") {
    scale = 3600.0 * kSeconds;
  } else {
    return std::nullopt;
  }
  double us = v * scale;
  if (!(us >= 0) || us > 1e15) return std::nullopt;  // ~31 years: a typo, not a timeout
  return static_cast<Micros>(us);
}


void Parse(int argc, char** argv, const std::string& usage, po::options_description& desc,
           po::variables_map& vm) {
  desc.add_options()("help,h", "show this help")(
      "config", po::value<std::string>(), "read options from this INI-style file (key = value)")(
      "log-level", po::value<std::string>()->default_value("info"),
      "trace, debug, info, warn, error or off");
  try {
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << usage << "\n\n" << desc << "\n";
      std::exit(0);
    }
    if (vm.count("config")) {
      std::string path = vm["config"].as<std::string>();
      std::ifstream in(path);
      if (!in) throw po::error("cannot read config file " + path);
      po::store(po::parse_config_file(in, desc), vm);
    }
    po::notify(vm);
  } catch (const po::error& e) {
    std::cerr << argv[0] << ": " << e.what() << "\n" << usage << "\n(--help lists the options)\n";
    std::exit(2);
  }
}

}  // namespace txc::cli
