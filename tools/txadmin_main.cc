// txadmin: the operator's tool (tools/admin/: the commands, their reports
// and the WAL reader).
#include <iostream>

#include "tools/admin/commands.h"

int main(int argc, char** argv) {
  return txc::admin::Main(std::vector<std::string>(argv + 1, argv + argc), std::cout, std::cerr);
}
