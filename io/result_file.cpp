// Result files (io/result_file.hpp).
#include "io/result_file.hpp"

#include <filesystem>

#include "core/error.hpp"

namespace sdeflow {

ResultFile::ResultFile(std::string path, const std::string& format, int64_t version,
                       const std::map<std::string, std::string>& attributes, OnFailure on_failure)
    : path_(std::move(path)), on_failure_(on_failure) {
  file_ = std::make_unique<h5::File>(path_, h5::Mode::create);   // checks the path first (io/output_path.hpp)
  try {
    for (const auto& [name, value] : attributes) file_->set_attribute(name, value);
    file_->set_attribute("format", format);
    file_->set_attribute("version", version);
    file_->set_attribute("complete", int64_t{0});
    file_->flush();
  } catch (...) {
    discard();
    throw;
  }
}

ResultFile::~ResultFile() {
  if (!file_) return;
  if (on_failure_ == OnFailure::discard) {
    discard();
    return;
  }
  try {
    file_->flush();
  } catch (...) {
  }
  file_.reset();
}

const h5::File& ResultFile::file() const {
  if (!file_) throw Error(path_ + ": the result file is already " + (committed_ ? "committed" : "discarded"));
  return *file_;
}

void ResultFile::flush() const { file().flush(); }

void ResultFile::commit(const std::map<std::string, double>& summary) {
  const auto& f = file();
  for (const auto& [name, value] : summary) f.set_attribute(name, value);
  f.set_attribute("complete", int64_t{1});
  f.flush();
  file_.reset();
  committed_ = true;
}

void ResultFile::discard() noexcept {
  if (committed_) return;
  try {
    file_.reset();
  } catch (...) {
  }
  std::error_code ignored;
  std::filesystem::remove(path_, ignored);
}

}  // namespace sdeflow
