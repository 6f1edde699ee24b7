#pragma once
// Helpers shared by the test files: a scratch directory, and running the sdeflow CLI as a child process.
#include <filesystem>
#include <string>

namespace sdeflow::test {

// A fresh directory under $SDEFLOW_TEST_TMP (or the system temp dir) named after `name`.
std::filesystem::path scratch_dir(const std::string& name);

struct CommandResult {
  int exit_status = -1;      // the child's exit status; 128 + N if it was killed by signal N
  std::string output;        // stdout and stderr together
};
// Runs "$SDEFLOW_BIN <arguments>" through /bin/sh with stderr merged into stdout.
CommandResult run_cli(const std::string& arguments, const std::string& environment = "");

}  // namespace sdeflow::test
