// Sample and trajectory files (io/trajectory.hpp, docs/formats.md "Sample files"). The trajectory is
// appended one save at a time: both datasets are extended by one along their unlimited first axis, the
// new row is written, the `saves` attribute is updated and the whole file is flushed, so that a process
// killed between saves leaves a file holding every completed save (and `complete = 0`).
#include "io/trajectory.hpp"

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <limits>

#include "core/error.hpp"

namespace sdeflow {

namespace {

constexpr const char* kFormat = "sdeflow.samples";
constexpr int64_t kVersion = 1;
constexpr int kDeflateLevel = 4;
constexpr size_t kChunkBytes = size_t{1} << 20;   // trajectory chunks hold at most ~1 MiB

// Quiet HDF5 for calls whose failure becomes an IoError here.
class QuietErrors {
 public:
  QuietErrors() {
    if (H5Eget_auto2(H5E_DEFAULT, &func_, &data_) >= 0) {
      saved_ = true;
      H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    }
  }
  ~QuietErrors() {
    if (saved_) H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }
  QuietErrors(const QuietErrors&) = delete;
  QuietErrors& operator=(const QuietErrors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
  bool saved_ = false;
};

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

// Creates a chunked, deflate-compressed dataset of shape [0, rest...] that is unlimited along the first
// axis, with chunks of `first_chunk` saves ([first_chunk, rest...]), reduced along the leading remaining
// axes when one save is larger than kChunkBytes.
h5::Handle create_extendible(const h5::Location& group, const std::string& name, hid_t file_type,
                             size_t element_size, const std::vector<hsize_t>& rest, hsize_t first_chunk) {
  std::vector<hsize_t> dims{0};
  std::vector<hsize_t> maxdims{H5S_UNLIMITED};
  std::vector<hsize_t> chunk{first_chunk};
  size_t bytes = element_size;
  for (hsize_t extent : rest) {
    dims.push_back(extent);
    // An empty axis cannot have a chunk extent within its maximum, so it is made unlimited too.
    maxdims.push_back(extent == 0 ? H5S_UNLIMITED : extent);
    chunk.push_back(std::max<hsize_t>(extent, 1));
    bytes *= chunk.back();
  }
  for (size_t i = 1; i < chunk.size() && bytes > kChunkBytes; ++i) {
    const size_t inner = bytes / chunk[i];
    chunk[i] = std::max<hsize_t>(1, kChunkBytes / inner);
    bytes = inner * chunk[i];
  }
  QuietErrors quiet;
  h5::Handle space(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), maxdims.data()));
  h5::Handle dcpl(H5Pcreate(H5P_DATASET_CREATE));
  if (!space.valid() || !dcpl.valid() || H5Pset_chunk(dcpl.get(), static_cast<int>(chunk.size()), chunk.data()) < 0 ||
      H5Pset_deflate(dcpl.get(), kDeflateLevel) < 0) {
    throw IoError(group.describe(name) + ": cannot set up an extendible dataset");
  }
  h5::Handle dataset(H5Dcreate2(group.id(), name.c_str(), file_type, space.get(), H5P_DEFAULT, dcpl.get(), H5P_DEFAULT));
  if (!dataset.valid()) throw IoError(group.describe(name) + ": cannot create dataset");
  return dataset;
}

// Grows `dataset` to `rows` along its first axis and writes `data` (one row of `row_elements` values of
// `memory_type`) as row rows - 1.
void append_row(const h5::Handle& dataset, const std::string& what, hsize_t rows, hid_t memory_type,
                const void* data) {
  QuietErrors quiet;
  h5::Handle old_space(H5Dget_space(dataset.get()));
  const int rank = H5Sget_simple_extent_ndims(old_space.get());
  if (rank < 1) throw IoError(what + ": cannot read the dataset's extent");
  std::vector<hsize_t> dims(static_cast<size_t>(rank));
  H5Sget_simple_extent_dims(old_space.get(), dims.data(), nullptr);
  dims[0] = rows;
  if (H5Dset_extent(dataset.get(), dims.data()) < 0) throw IoError(what + ": cannot extend the dataset");

  h5::Handle file_space(H5Dget_space(dataset.get()));
  std::vector<hsize_t> start(dims.size(), 0);
  std::vector<hsize_t> count = dims;
  start[0] = rows - 1;
  count[0] = 1;
  hsize_t elements = 1;
  for (hsize_t c : count) elements *= c;
  if (elements == 0) return;
  if (H5Sselect_hyperslab(file_space.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) < 0) {
    throw IoError(what + ": cannot select the new row");
  }
  h5::Handle memory_space(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr));
  if (H5Dwrite(dataset.get(), memory_type, memory_space.get(), file_space.get(), H5P_DEFAULT, data) < 0) {
    throw IoError(what + ": cannot write the new row");
  }
}

}  // namespace

SampleFileWriter::SampleFileWriter(const std::string& path, const std::map<std::string, std::string>& attributes,
                                   bool save_trajectory)
    : path_(path), file_(std::make_unique<h5::File>(path, h5::Mode::create)), save_trajectory_(save_trajectory) {
  for (const auto& [name, value] : attributes) file_->set_attribute(name, value);
  // The format's own attributes are written last so that `attributes` cannot override them.
  file_->set_attribute("format", std::string(kFormat));
  file_->set_attribute("version", kVersion);
  file_->set_attribute("complete", int64_t{0});
  file_->flush();
}

SampleFileWriter::~SampleFileWriter() {
  // Whatever was saved has been flushed already; closing must not throw (and never does: the handles
  // close with C calls whose failures are ignored).
  try {
    if (file_ && !finished_) file_->flush();
  } catch (...) {
  }
  x_dataset_ = h5::Handle();
  t_dataset_ = h5::Handle();
  trajectory_.reset();
  file_.reset();
}

void SampleFileWriter::create_trajectory(const at::Tensor& x) {
  n_ = x.size(0);
  d_ = x.size(1);
  dtype_ = x.scalar_type();
  trajectory_ = std::make_unique<h5::Location>(file_->create_group("trajectory"));
  // t: 512 times per chunk (one 8-byte value per chunk would be mostly overhead); x: one save per chunk.
  t_dataset_ = create_extendible(*trajectory_, "t", H5T_IEEE_F64LE, sizeof(double), {}, 512);
  const bool is_double = dtype_ == at::kDouble;
  x_dataset_ = create_extendible(*trajectory_, "x", is_double ? H5T_IEEE_F64LE : H5T_IEEE_F32LE,
                                 is_double ? sizeof(double) : sizeof(float),
                                 {static_cast<hsize_t>(n_), static_cast<hsize_t>(d_)}, 1);
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

  const hsize_t rows = static_cast<hsize_t>(saves_ + 1);
  append_row(t_dataset_, trajectory_->describe("t"), rows, H5T_NATIVE_DOUBLE, &time);
  append_row(x_dataset_, trajectory_->describe("x"), rows, dtype_ == at::kDouble ? H5T_NATIVE_DOUBLE : H5T_NATIVE_FLOAT,
             state.data_ptr());
  ++saves_;
  trajectory_->set_attribute("saves", saves_);
  file_->flush();

  // Test hook: SDEFLOW_TEST_KILL_AFTER_SAVES=K kills the process with SIGKILL right after the K-th save
  // has been flushed, simulating a run killed part-way (the test suite checks the file it leaves).
  const int64_t kill_after = kill_after_saves();
  if (kill_after > 0 && saves_ == kill_after) std::raise(SIGKILL);
}

void SampleFileWriter::finish(const at::Tensor& samples, const std::map<std::string, double>& numeric_attributes) {
  if (finished_) throw Error(path_ + ": finish called twice");
  file_->write_tensor("samples", samples, /*compress=*/true);
  for (const auto& [name, value] : numeric_attributes) file_->set_attribute(name, value);
  file_->set_attribute("complete", int64_t{1});
  file_->flush();
  finished_ = true;
  // Close everything so that the file can be reopened (by this or another process) at once.
  x_dataset_ = h5::Handle();
  t_dataset_ = h5::Handle();
  trajectory_.reset();
  file_.reset();
}

}  // namespace sdeflow
