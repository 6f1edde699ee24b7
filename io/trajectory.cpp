// Sample and trajectory files (io/trajectory.hpp, docs/formats.md "Sample files"). The trajectory is
// appended one save at a time: both datasets are extended by one along their unlimited first axis, the
// new row is written, the `saves` attribute is updated and the whole file is flushed, so that a process
// killed between saves leaves a file holding every completed save (and `complete = 0`).
#include "io/trajectory.hpp"

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <limits>

#include "core/error.hpp"

namespace sdeflow {

namespace {

constexpr const char* kFormat = "sdeflow.samples";
constexpr int64_t kVersion = 1;

// Test hook: the number of saves after which the process kills itself (0: never). See on_save.
int64_t kill_after_saves() {
  const char* value = std::getenv("SDEFLOW_TEST_KILL_AFTER_SAVES");
  if (value == nullptr || *value == '\0') return 0;
  char* end = nullptr;
  errno = 0;
  const long long parsed = std::strtoll(value, &end, 10);
  if (errno != 0 || end == value || *end != '\0' || parsed <= 0) return 0;
  return parsed;
}

}  // namespace

SampleFileWriter::SampleFileWriter(const std::string& path, const std::map<std::string, std::string>& attributes,
                                   bool save_trajectory, ResultFile::OnFailure on_failure)
    : path_(path), result_(std::make_unique<ResultFile>(path, kFormat, kVersion, attributes, on_failure)),
      save_trajectory_(save_trajectory) {}

SampleFileWriter::~SampleFileWriter() {
  // Whatever was saved has been flushed already; closing must not throw (and never does: the handles
  // close with C calls whose failures are ignored).
  x_dataset_ = h5::Handle();
  t_dataset_ = h5::Handle();
  trajectory_.reset();
  result_.reset();   // uncommitted: kept with complete = 0, or removed (ResultFile::OnFailure)
}

void SampleFileWriter::create_trajectory(const at::Tensor& x) {
  n_ = x.size(0);
  d_ = x.size(1);
  dtype_ = x.scalar_type();
  trajectory_ = std::make_unique<h5::Location>(result_->file().create_group("trajectory"));
  // t: 512 times per chunk (one 8-byte value per chunk would be mostly overhead); x: one save per chunk.
  // (h5::create_extendible shortens x's chunk along N, then D, when one save is larger than 1 MiB.)
  t_dataset_ = h5::create_extendible(*trajectory_, "t", at::kDouble, {}, 512);
  x_dataset_ = h5::create_extendible(*trajectory_, "x", dtype_ == at::kDouble ? at::kDouble : at::kFloat, {n_, d_}, 1);
}

void SampleFileWriter::on_save(const at::Tensor& t, const at::Tensor& x) {
  if (!save_trajectory_) return;
  if (finished_) throw Error(path_ + ": trajectory save after the sample file was finished");
  if (x.dim() != 2) {
    throw InputError(path_ + ":/trajectory/x: expected a [N, D] state, got " + std::to_string(x.dim()) +
                     " dimension(s)");
  }
  if (!at::isFloatingType(x.scalar_type())) {
    throw InputError(path_ + ":/trajectory/x: expected a floating-point state, got " +
                     std::string(c10::toString(x.scalar_type())));
  }
  if (saves_ == 0) {
    // float64 is kept; any other floating type (float32, half, bfloat16) is stored as float32.
    create_trajectory(x.scalar_type() == at::kDouble ? x : x.to(at::kFloat));
  } else if (x.size(0) != n_ || x.size(1) != d_) {
    throw InputError(path_ + ":/trajectory/x: expected a [" + std::to_string(n_) + ", " + std::to_string(d_) +
                     "] state like the first save, got [" + std::to_string(x.size(0)) + ", " +
                     std::to_string(x.size(1)) + "]");
  }
  const at::Tensor state = x.to(at::kCPU, dtype_).contiguous();
  const at::Tensor times = t.reshape({-1});
  const double time = times.numel() > 0 ? times[0].item<double>() : std::numeric_limits<double>::quiet_NaN();

  // Row `saves_` of both datasets (extending them by one); a failed save is redone at the same row.
  h5::write_rows(t_dataset_, trajectory_->describe("t"), saves_, at::full({1}, time, at::dtype(at::kDouble)));
  h5::write_rows(x_dataset_, trajectory_->describe("x"), saves_, state.unsqueeze(0));
  ++saves_;
  trajectory_->set_attribute("saves", saves_);
  result_->file().flush();

  // Test hook: SDEFLOW_TEST_KILL_AFTER_SAVES=K kills the process with SIGKILL right after the K-th save
  // has been flushed, simulating a run killed part-way (the test suite checks the file it leaves).
  const int64_t kill_after = kill_after_saves();
  if (kill_after > 0 && saves_ == kill_after) std::raise(SIGKILL);
}

void SampleFileWriter::finish(const at::Tensor& samples, const std::map<std::string, double>& numeric_attributes) {
  if (finished_) throw Error(path_ + ": finish called twice");
  result_->file().write_tensor("samples", samples, /*compress=*/true);
  finished_ = true;
  // Close everything so that the file can be reopened (by this or another process) at once.
  x_dataset_ = h5::Handle();
  t_dataset_ = h5::Handle();
  trajectory_.reset();
  result_->commit(numeric_attributes);
}

}  // namespace sdeflow
