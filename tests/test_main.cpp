// The Boost.Test entry point of the sdeflow test suite, plus helpers shared by the test files.
#define BOOST_TEST_MODULE sdeflow
#include <boost/test/unit_test.hpp>

#include "core/error.hpp"
#include "io/h5.hpp"

struct GlobalSetup {
  GlobalSetup() { sdeflow::h5::silence_library_errors(); }
};
BOOST_TEST_GLOBAL_FIXTURE(GlobalSetup);

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "support.hpp"

namespace sdeflow::test {

std::filesystem::path scratch_dir(const std::string& name) {
  const char* root = std::getenv("SDEFLOW_TEST_TMP");
  std::filesystem::path dir = root ? std::filesystem::path(root) : std::filesystem::temp_directory_path() / "sdeflow-tests";
  dir /= name;
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

CommandResult run_shell(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  BOOST_REQUIRE(pipe != nullptr);
  std::array<char, 4096> buffer{};
  size_t got;
  while ((got = fread(buffer.data(), 1, buffer.size(), pipe)) > 0) result.output.append(buffer.data(), got);
  const int status = pclose(pipe);
  if (WIFEXITED(status)) result.exit_status = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) result.exit_status = 128 + WTERMSIG(status);
  return result;
}

CommandResult run_cli(const std::string& arguments, const std::string& environment) {
  const char* bin = std::getenv("SDEFLOW_BIN");
  BOOST_REQUIRE_MESSAGE(bin != nullptr, "SDEFLOW_BIN is not set (run the tests through ctest)");
  return run_shell(environment + " '" + std::string(bin) + "' " + arguments);
}

void expect_input_error(const std::string& arguments, const std::string& message, const std::filesystem::path& out) {
  const auto result = run_cli(arguments);
  BOOST_TEST(result.exit_status == 2, arguments << " -> " << result.exit_status << ": " << result.output);
  BOOST_TEST(result.output.find(message) != std::string::npos, "expected '" << message << "' in: " << result.output);
  BOOST_TEST(!std::filesystem::exists(out), "output file left behind for: " << arguments);
}

void expect_input_error_message(const std::function<void()>& action, const std::string& message) {
  try {
    action();
  } catch (const InputError& error) {
    BOOST_TEST(std::string(error.what()).find(message) != std::string::npos,
               "expected '" << message << "' in: " << error.what());
    return;
  }
  BOOST_ERROR("expected an InputError containing '" << message << "'");
}

}  // namespace sdeflow::test
