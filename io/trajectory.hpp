#pragma once
// Sample and trajectory output files (docs/formats.md, "Sample files"): /samples [N, D], and when saving
// is requested /trajectory/t [S] and /trajectory/x [S, N, D], chunked, compressed, extended and flushed
// on every save so that a killed run leaves a valid file with every completed save. The root attribute
// `complete` is 0 until finish() has written /samples.
#include <ATen/ATen.h>

#include <map>
#include <memory>
#include <string>

#include "io/h5.hpp"
#include "io/result_file.hpp"
#include "solvers/observer.hpp"

namespace sdeflow {

class SampleFileWriter : public Observer {
 public:
  // Creates (truncates) `path`, writes root attributes `format = "sdeflow.samples"`, `version = 1`,
  // `complete = 0` and every entry of `attributes` (string values) as root attributes, and flushes.
  // `save_trajectory`: create /trajectory/t and /trajectory/x lazily on the first save.
  // A file never finished is kept with complete = 0 or removed, as `on_failure` says (io/result_file.hpp).
  SampleFileWriter(const std::string& path, const std::map<std::string, std::string>& attributes,
                   bool save_trajectory, ResultFile::OnFailure on_failure = ResultFile::OnFailure::keep);
  ~SampleFileWriter() override;

  // Observer: appends t (the common time of the batch; t is [B], its first element is used) and x [N, D]
  // (moved to CPU) to the trajectory, then flushes. Ignored when save_trajectory is false.
  void on_save(const at::Tensor& t, const at::Tensor& x) override;

  // Writes /samples, extra root attributes (numbers), sets `complete = 1` and flushes.
  void finish(const at::Tensor& samples, const std::map<std::string, double>& numeric_attributes = {});

  int64_t saves() const { return saves_; }
  const std::string& path() const { return path_; }

 private:
  void create_trajectory(const at::Tensor& x);   // first save: /trajectory/t and /trajectory/x

  std::string path_;
  std::unique_ptr<ResultFile> result_;
  bool save_trajectory_;
  int64_t saves_ = 0;
  // The trajectory datasets (open from the first save to finish or destruction) and the state layout
  // fixed by the first save: x is [N, D] of float64 or float32.
  std::unique_ptr<h5::Location> trajectory_;
  h5::Handle t_dataset_;
  h5::Handle x_dataset_;
  int64_t n_ = -1;
  int64_t d_ = -1;
  at::ScalarType dtype_ = at::kDouble;
  bool finished_ = false;
};

}  // namespace sdeflow
