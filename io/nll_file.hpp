#pragma once
// NLL result files (docs/formats.md, "NLL result files"): the output of `sdeflow nll --out FILE`. One value
// per data row in the extendible datasets /nll, /bpd (float64), /nfe (int64) and /status (int32), appended
// batch by batch and flushed after every batch, with the root attribute `rows` counting the rows written
// and `complete` set to 1 only once finish() has written the summary. An interrupted run therefore leaves
// a valid file holding every batch it finished.
#include <ATen/ATen.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "io/h5.hpp"
#include "io/result_file.hpp"

namespace sdeflow {

class NllFileWriter {
 public:
  // Creates (truncates) `path` with the root attributes of `attributes` (strings: model, data, solver,
  // trace, prior, command line, ...) written first, then format = "sdeflow.nll", version = 1, complete = 0
  // and rows = 0 (int64; so `attributes` cannot replace them), creates the empty extendible datasets
  // /nll, /bpd (float64), /nfe (int64) and /status (int32), and flushes.
  NllFileWriter(const std::string& path, const std::map<std::string, std::string>& attributes,
                ResultFile::OnFailure on_failure = ResultFile::OnFailure::keep);
  NllFileWriter(const NllFileWriter&) = delete;
  NllFileWriter& operator=(const NllFileWriter&) = delete;
  // Closes without setting `complete` (the path taken when a run stops with an exception): with
  // OnFailure::keep everything appended so far stays in the file; OnFailure::discard removes it.
  ~NllFileWriter();

  // Appends one batch: four 1-D tensors of the same length b (any device and dtype; converted to the stored
  // types, so a floating-point nfe is truncated), then sets `rows` and flushes (H5Fflush, global scope)
  // before returning. InputError (and nothing appended) if the shapes disagree; Error after finish().
  void append(const at::Tensor& nll, const at::Tensor& bpd, const at::Tensor& nfe, const at::Tensor& status);

  // Writes `summary` as float64 root attributes (e.g. nll_mean, nll_stderr, bpd_mean, bpd_stderr, nfe_mean,
  // nfe_max, wall_time_s, failures), then complete = 1, flushes and closes the file. The reserved names
  // format, version, complete and rows are refused (Error, nothing written). Error if called twice.
  void finish(const std::map<std::string, double>& summary);

  int64_t rows() const { return rows_; }
  const std::string& path() const { return path_; }

 private:
  void close();

  std::string path_;
  std::unique_ptr<ResultFile> result_;
  const h5::File* file_ = nullptr;   // result_'s file while it is open
  h5::Handle nll_;
  h5::Handle bpd_;
  h5::Handle nfe_;
  h5::Handle status_;
  int64_t rows_ = 0;
  bool finished_ = false;
};

// An NLL result file read back (tests, `sdeflow info`).
struct NllFile {
  at::Tensor nll, bpd;     // [rows] float64
  at::Tensor nfe;          // [rows] int64
  at::Tensor status;       // [rows] int32
  bool complete = false;
  int64_t rows = 0;
  std::map<std::string, double> summary;               // numeric root attributes (the summary of finish())
  std::map<std::string, std::string> attributes;       // string root attributes (the run's description)
};

// Reads and validates an NLL file: format = "sdeflow.nll", version = 1, complete 0 or 1, rows >= 0, the four
// datasets 1-D of the documented types (nfe/status: any integer type) and each of length `rows`. A file
// with complete = 0 may also hold datasets longer than `rows` (a writer killed in the middle of an append):
// only their first `rows` entries are returned. Every problem throws InputError naming the file and object.
// The reserved attributes (format, version, complete, rows) appear in neither map.
NllFile read_nll_file(const std::string& path);

}  // namespace sdeflow
