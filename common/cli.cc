#include "common/cli.h"

#include <cstdlib>
#include <fstream>
#include <iostream>

namespace po = boost::program_options;

namespace txc::cli {

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
