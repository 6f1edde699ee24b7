// CLI plumbing: command-line recording, progress bar, error-to-exit-status mapping.
#include "apps/common.hpp"

#include <filesystem>

#include <unistd.h>

#include <c10/util/Exception.h>

#include <cstdio>
#include <iostream>

#include "core/error.hpp"

namespace sdeflow::app {

namespace {
std::string& command_line_storage() {
  static std::string line;
  return line;
}
}  // namespace

std::string command_line(int argc, char** argv) {
  std::string line;
  for (int i = 0; i < argc; ++i) {
    std::string argument = argv[i];
    if (argument.find_first_of(" \t'\"") != std::string::npos) argument = "'" + argument + "'";
    line += (i ? " " : "") + argument;
  }
  return line;
}

void set_command_line(std::string line) { command_line_storage() = std::move(line); }
const std::string& recorded_command_line() { return command_line_storage(); }

ProgressBar::ProgressBar(std::string label)
    : label_(std::move(label)), enabled_(::isatty(STDERR_FILENO) == 1), start_(std::chrono::steady_clock::now()),
      last_(start_) {}

void ProgressBar::update(int64_t done, int64_t total, const std::string& note) {
  if (!enabled_) return;
  const auto now = std::chrono::steady_clock::now();
  if (done != total && now - last_ < std::chrono::milliseconds(100)) return;
  last_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const double fraction = total > 0 ? static_cast<double>(done) / static_cast<double>(total) : 0.0;
  const int width = 30;
  const int filled = static_cast<int>(fraction * width);
  std::fprintf(stderr, "\r%s [%s%s] %3d%% %lld/%lld  %.1fs%s%s", label_.c_str(), std::string(filled, '#').c_str(),
               std::string(width - filled, ' ').c_str(), static_cast<int>(100 * fraction),
               static_cast<long long>(done), static_cast<long long>(total), elapsed, note.empty() ? "" : "  ",
               note.c_str());
  std::fflush(stderr);
  open_ = true;
}

void ProgressBar::finish() {
  if (open_) std::fprintf(stderr, "\n");
  open_ = false;
}

int guarded(const std::function<int()>& body) {
  try {
    return body();
  } catch (const InputError& error) {
    std::cerr << "sdeflow: error: " << error.what() << "\n";
    return kExitUsage;
  } catch (const Error& error) {
    std::cerr << "sdeflow: error: " << error.what() << "\n";
    return kExitFailure;
  } catch (const c10::Error& error) {
    std::cerr << "sdeflow: error: " << error.what_without_backtrace() << "\n";
    return kExitFailure;
  } catch (const std::exception& error) {
    std::cerr << "sdeflow: error: " << error.what() << "\n";
    return kExitFailure;
  }
}

}  // namespace sdeflow::app
