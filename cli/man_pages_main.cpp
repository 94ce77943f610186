// ppnet_man_pages DIR: writes ppnet(1) and ppnet-<command>(1) into DIR at build time, from the
// option tables the binary parses with (cli/describe.h).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "cli/describe.h"
#include "cli/man_pages.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: ppnet_man_pages DIR\n";
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    std::filesystem::create_directories(dir);
    for (const auto& [name, text] : ppnet::cli::man_pages(ppnet::cli::describe_commands())) {
      std::ofstream out(dir / name, std::ios::binary | std::ios::trunc);
      out << text;
      if (!out.flush()) throw std::runtime_error((dir / name).string() + ": cannot write");
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ppnet_man_pages: " << e.what() << '\n';
    return 1;
  }
}
