#pragma once
// The one result-file object every command that streams results goes through (nll, sample, convergence,
// robustness, work-precision; docs/formats.md, "Result files"). It creates (truncates) the file with the run's
// description first, then format, version and complete = 0 (so the description cannot replace them), and
// flushes; the command writes and flushes as it goes; commit() writes the summary, sets complete = 1, flushes
// and closes. A result that is not committed never passes for one: a process killed mid-run leaves
// complete = 0 with every flushed row readable, and a run that stops with an error either keeps that
// partial file (OnFailure::keep, for library callers that want the rows) or removes it (OnFailure::discard,
// what the commands use: the destructor of an uncommitted file removes it, so an exception leaves nothing).
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/h5.hpp"

namespace sdeflow {

class ResultFile {
 public:
  enum class OnFailure { keep, discard };
  // InputError when `path` cannot name a new file (io/output_path.hpp); IoError when creating it fails.
  ResultFile(std::string path, const std::string& format, int64_t version,
             const std::map<std::string, std::string>& attributes, OnFailure on_failure);
  ResultFile(const ResultFile&) = delete;
  ResultFile& operator=(const ResultFile&) = delete;
  // Not committed: flushes and closes (OnFailure::keep) or closes and removes the file (OnFailure::discard).
  // Never throws. Objects the caller opened in the file (datasets) must be closed first.
  ~ResultFile();

  const h5::File& file() const;   // Error after commit() or discard()
  void flush() const;
  // Writes `summary` as float64 root attributes, then complete = 1; flushes and closes. Error if called twice.
  void commit(const std::map<std::string, double>& summary = {});
  // Closes and removes the file now (a failed run); nothing after it.
  void discard() noexcept;
  bool committed() const { return committed_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  OnFailure on_failure_;
  std::unique_ptr<h5::File> file_;
  bool committed_ = false;
};

}  // namespace sdeflow
