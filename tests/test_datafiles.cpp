// Data files (io/data_file.hpp) and NLL result files (io/nll_file.hpp): round trips, every rejected input
// with a message naming the file, object and problem, atomic saving, and the flush-per-batch guarantee.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/h5.hpp"
#include "io/nll_file.hpp"
#include "support.hpp"

namespace h5 = sdeflow::h5;
using sdeflow::InputError;

namespace {

// Asserts that `body` throws InputError whose message contains every string of `parts`.
template <typename Body>
void check_input_error(Body&& body, const std::vector<std::string>& parts) {
  try {
    body();
    BOOST_ERROR("expected sdeflow::InputError, nothing was thrown");
  } catch (const InputError& e) {
    const std::string message = e.what();
    BOOST_TEST_MESSAGE("InputError: " << message);
    for (const std::string& part : parts) {
      BOOST_TEST(message.find(part) != std::string::npos, "'" << message << "' should contain '" << part << "'");
    }
  }
}

std::string path_in(const std::filesystem::path& dir, const std::string& name) { return (dir / name).string(); }

std::vector<std::string> directory_listing(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Writes a file whose /data is `data` as stored by the h5 layer (no format attributes, any shape).
void write_raw(const std::string& path, const at::Tensor& data, const std::string& name = "data") {
  h5::File file(path, h5::Mode::create);
  file.write_tensor(name, data);
}

// A [6, 3] float64 sample with distinct, non-integer values.
at::Tensor sample_data() { return (torch::arange(18, torch::kDouble).reshape({6, 3}) - 7.0) * 0.3125 + 1e-3; }

}  // namespace

BOOST_AUTO_TEST_SUITE(datafiles)

// ---------------------------------------------------------------------------------------------------
// Data files

BOOST_AUTO_TEST_CASE(data_round_trip_float_and_integer_types) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_round_trip");
  struct Case {
    at::Tensor data;
    bool integer;
    std::string stored;
  };
  const at::Tensor f64 = sample_data();
  const at::Tensor f32 = torch::linspace(-3.0, 2.0, 10, torch::kFloat).reshape({5, 2}) / 3.0f;
  const at::Tensor u8 = (torch::arange(12, torch::kLong).reshape({4, 3}) * 23).remainder(256).to(torch::kByte);
  at::Tensor i64 = torch::arange(8, torch::kLong).reshape({4, 2}) * 1000003 - 4000000;
  i64[3][1] = (int64_t{1} << 53);            // the largest magnitude exact in float64
  i64[0][0] = -(int64_t{1} << 53) + 1;
  const at::Tensor i32 = torch::tensor({{-7, 0, 7}}, torch::kInt);
  const std::vector<Case> cases{{f64, false, "float64"}, {f32, false, "float32"}, {u8, true, "uint8"},
                                {i64, true, "int64"}, {i32, true, "int32"}};
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = path_in(dir, "data" + std::to_string(i) + ".h5");
    sdeflow::save_data(path, cases[i].data);
    {
      h5::File file(path, h5::Mode::read);
      BOOST_TEST(file.attribute_string("format") == "sdeflow.data");
      BOOST_TEST(file.attribute_int("version") == 1);
      BOOST_TEST(file.dataset_type_name("data") == cases[i].stored);
    }
    const sdeflow::DataFile loaded = sdeflow::load_data(path, cases[i].data.size(1));
    BOOST_TEST(loaded.source == path);
    BOOST_TEST(loaded.integer == cases[i].integer, cases[i].stored);
    BOOST_TEST(loaded.data.scalar_type() == at::kDouble);
    BOOST_TEST(loaded.data.device().is_cpu());
    BOOST_TEST(loaded.data.sizes().vec() == cases[i].data.sizes().vec());
    // Exact: float32 and every integer here are representable in float64.
    BOOST_TEST(torch::equal(loaded.data, cases[i].data.to(torch::kDouble)), cases[i].stored);
    if (cases[i].data.scalar_type() == at::kLong) {
      BOOST_TEST(loaded.data[3][1].item<double>() == 9007199254740992.0);
      BOOST_TEST(static_cast<int64_t>(loaded.data[0][0].item<double>()) == -(int64_t{1} << 53) + 1);
    }
  }
  // Without an expected dimension any D is accepted; the root attributes are optional.
  const std::string bare = path_in(dir, "bare.h5");
  write_raw(bare, f64);
  BOOST_TEST(torch::equal(sdeflow::load_data(bare).data, f64));
}

BOOST_AUTO_TEST_CASE(save_data_is_atomic_and_leaves_no_temporary_files) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_atomic");
  const std::string path = path_in(dir, "data.h5");
  sdeflow::save_data(path, sample_data());
  BOOST_TEST(directory_listing(dir) == std::vector<std::string>{"data.h5"}, boost::test_tools::per_element());
  // Saving again replaces the file.
  sdeflow::save_data(path, sample_data() * 2);
  BOOST_TEST(directory_listing(dir) == std::vector<std::string>{"data.h5"}, boost::test_tools::per_element());
  BOOST_TEST(torch::equal(sdeflow::load_data(path).data, sample_data() * 2));

  // A tensor that cannot be stored: InputError, the existing file untouched, nothing left behind.
  check_input_error([&] { sdeflow::save_data(path, torch::zeros({5}, torch::kDouble)); }, {path, "2-D"});
  check_input_error([&] { sdeflow::save_data(path, torch::zeros({2, 2}, torch::kComplexDouble)); }, {path, "type"});
  BOOST_TEST(directory_listing(dir) == std::vector<std::string>{"data.h5"}, boost::test_tools::per_element());
  BOOST_TEST(torch::equal(sdeflow::load_data(path).data, sample_data() * 2));

  // Bool tensors are stored as uint8; a non-contiguous tensor is written in its logical order.
  const std::string flags = path_in(dir, "flags.h5");
  sdeflow::save_data(flags, torch::tensor({{true, false}, {false, true}}));
  BOOST_TEST(sdeflow::load_data(flags).integer);
  BOOST_TEST(torch::equal(sdeflow::load_data(flags).data, torch::eye(2, torch::kDouble)));
  const std::string transposed = path_in(dir, "transposed.h5");
  sdeflow::save_data(transposed, sample_data().t());
  BOOST_TEST(torch::equal(sdeflow::load_data(transposed, 6).data, sample_data().t().contiguous()));

  // An unwritable destination (a missing directory; a regular file in the way): an InputError naming the path,
  // no directory created and no file of either name (neither the target nor its temporary) left behind.
  const std::string nowhere = path_in(dir / "missing-dir", "data.h5");
  check_input_error([&] { sdeflow::save_data(nowhere, sample_data()); },
                    {nowhere, "the directory " + (dir / "missing-dir").string() + " does not exist"});
  BOOST_TEST(!std::filesystem::exists(dir / "missing-dir"));
  const std::string under_file = path_in(dir / "flags.h5", "data.h5");
  check_input_error([&] { sdeflow::save_data(under_file, sample_data()); },
                    {under_file, path_in(dir, "flags.h5") + " is not a directory"});
  BOOST_TEST(directory_listing(dir) == (std::vector<std::string>{"data.h5", "flags.h5", "transposed.h5"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(bad_files_are_named) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_bad_files");
  const std::string missing = path_in(dir, "missing.h5");
  check_input_error([&] { sdeflow::load_data(missing); }, {missing, "no such file"});
  const std::string text = path_in(dir, "text.h5");
  std::ofstream(text) << "x,y\n1,2\n";
  check_input_error([&] { sdeflow::load_data(text); }, {text, "not an HDF5 file"});
  check_input_error([&] { sdeflow::load_data(dir.string()); }, {dir.string(), "directory"});

  // A truncated HDF5 file (valid signature, missing the rest).
  const std::string good = path_in(dir, "good.h5");
  sdeflow::save_data(good, sample_data());
  const std::string truncated = path_in(dir, "truncated.h5");
  std::filesystem::copy_file(good, truncated);
  std::filesystem::resize_file(truncated, 64);
  check_input_error([&] { sdeflow::load_data(truncated); }, {truncated});

  // A file without read permission. Root may read anything, so this part runs only as another user; the
  // unwritable outputs (every_command_rejects_an_unwritable_output) are tested without permissions and run as root.
  if (::geteuid() != 0) {
    const std::string locked = path_in(dir, "locked.h5");
    sdeflow::save_data(locked, sample_data());
    ::chmod(locked.c_str(), 0);
    check_input_error([&] { sdeflow::load_data(locked); }, {locked, "cannot read"});
    ::chmod(locked.c_str(), 0644);
  }
}

// Unwritable outputs without relying on permissions (CI runs as root, who may write anywhere): an output in a
// directory that does not exist, and one under a regular file. Every command that writes a file exits 2 with one
// line naming the path and the cause, before doing any work, and leaves nothing behind (no directory, no file,
// no temporary). The check lives in one place (io/output_path.hpp), used by h5::File, h5::write_atomically and
// each command.
BOOST_AUTO_TEST_CASE(every_command_rejects_an_unwritable_output) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_unwritable");
  const std::string data = path_in(dir, "points.h5");
  sdeflow::save_data(data, torch::randn({10, 2}, torch::kDouble));
  const std::string plain = path_in(dir, "plain.txt");
  std::ofstream(plain) << "a regular file\n";
  const std::vector<std::string> commands = {
      "sample --n 10 --steps 5", "nll --data " + data, "data --name moons --n 10", "train --iters 5",
      "robustness", "convergence", "work-precision"};
  const std::vector<std::pair<std::string, std::string>> outputs = {
      {path_in(dir / "missing", "out.h5"), "the directory " + (dir / "missing").string() + " does not exist"},
      {path_in(dir / "missing" / "deeper", "out.h5"),
       "the directory " + (dir / "missing" / "deeper").string() + " does not exist"},
      {path_in(dir / "plain.txt", "out.h5"), plain + " is not a directory"},
      {path_in(dir / "plain.txt" / "sub", "out.h5"), plain + " is not a directory"}};
  // Each command with one of the four outputs in turn (every command and every case covered; one CLI start
  // costs ~0.5 s, and the check is the same shared function for all of them).
  for (size_t i = 0; i < commands.size(); ++i) {
    const auto& [out, cause] = outputs[i % outputs.size()];
    const auto result = sdeflow::test::run_cli(commands[i] + " --out " + out);
    BOOST_TEST(result.exit_status == 2, commands[i] << " --out " << out << " -> " << result.exit_status << ": "
                                                    << result.output);
    BOOST_TEST(result.output.find(out + ": cannot write the file: " + cause) != std::string::npos,
               commands[i] << ": " << result.output);
    BOOST_TEST(std::count(result.output.begin(), result.output.end(), '\n') == 1, "one line: " << result.output);
  }
  BOOST_TEST(directory_listing(dir) == (std::vector<std::string>{"plain.txt", "points.h5"}),
             boost::test_tools::per_element());
  // An output that is a directory is named too; the directory is left as it was.
  const auto result = sdeflow::test::run_cli("data --name moons --n 10 --out " + dir.string());
  BOOST_TEST(result.exit_status == 2, result.output);
  BOOST_TEST(result.output.find(dir.string() + ": cannot write the file: it is a directory") != std::string::npos,
             result.output);
  BOOST_TEST(directory_listing(dir) == (std::vector<std::string>{"plain.txt", "points.h5"}),
             boost::test_tools::per_element());
  // The library's writers report the same InputError.
  const std::string nll_out = path_in(dir / "missing", "nll.h5");
  check_input_error([&] { sdeflow::NllFileWriter writer(nll_out, {}); }, {nll_out, "does not exist"});
  BOOST_TEST(!std::filesystem::exists(dir / "missing"));
}

BOOST_AUTO_TEST_CASE(bad_data_objects_are_named) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_bad_objects");
  const auto f64 = torch::TensorOptions().dtype(torch::kDouble);

  const std::string other = path_in(dir, "other.h5");
  write_raw(other, sample_data(), "samples");
  check_input_error([&] { sdeflow::load_data(other); }, {other + ":/data", "no such dataset"});

  const std::string group = path_in(dir, "group.h5");
  write_raw(group, sample_data(), "data/values");
  check_input_error([&] { sdeflow::load_data(group); }, {group + ":/data", "not a dataset"});

  const std::string one_d = path_in(dir, "one_d.h5");
  write_raw(one_d, torch::ones({5}, f64));
  check_input_error([&] { sdeflow::load_data(one_d); }, {one_d + ":/data", "2-D", "[5]", "1-D"});

  // [N, ...] with more sample axes is accepted and flattened; D = the product of the sample axes.
  const std::string three_d = path_in(dir, "three_d.h5");
  write_raw(three_d, torch::arange(24, f64).reshape({2, 3, 4}));
  const sdeflow::DataFile flattened = sdeflow::load_data(three_d, 12);
  BOOST_TEST(flattened.shape == (std::vector<int64_t>{3, 4}), boost::test_tools::per_element());
  BOOST_TEST(torch::equal(flattened.data, torch::arange(24, f64).reshape({2, 12})));
  check_input_error([&] { sdeflow::load_data(three_d, 4); },
                    {three_d + ":/data: rows have dimension 12 but the model has dimension 4", "[3, 4]"});
  const std::string empty_axis = path_in(dir, "empty_axis.h5");
  write_raw(empty_axis, torch::zeros({4, 3, 0}, f64));
  check_input_error([&] { sdeflow::load_data(empty_axis); }, {empty_axis + ":/data", "dimension 0", "[4, 3, 0]"});

  const std::string scalar = path_in(dir, "scalar.h5");
  write_raw(scalar, torch::tensor(1.5, f64));
  check_input_error([&] { sdeflow::load_data(scalar); }, {scalar + ":/data", "2-D", "scalar"});

  const std::string no_rows = path_in(dir, "no_rows.h5");
  write_raw(no_rows, torch::zeros({0, 2}, f64));
  check_input_error([&] { sdeflow::load_data(no_rows, 2); }, {no_rows + ":/data", "no rows", "[0, 2]"});

  const std::string no_columns = path_in(dir, "no_columns.h5");
  write_raw(no_columns, torch::zeros({4, 0}, f64));
  check_input_error([&] { sdeflow::load_data(no_columns); }, {no_columns + ":/data", "dimension 0", "[4, 0]"});

  const std::string wide = path_in(dir, "data.h5");
  sdeflow::save_data(wide, sample_data());
  check_input_error([&] { sdeflow::load_data(wide, 2); },
                    {wide + ":/data: rows have dimension 3 but the model has dimension 2"});
  BOOST_TEST(sdeflow::load_data(wide, 3).data.size(1) == 3);

  // Non-numeric element types, written with the C API (the h5 layer only writes numbers).
  const std::string strings = path_in(dir, "strings.h5");
  {
    h5::File file(strings, h5::Mode::create);
    h5::Handle type(H5Tcopy(H5T_C_S1));
    H5Tset_size(type.get(), 4);
    const hsize_t dims[2] = {2, 2};
    h5::Handle space(H5Screate_simple(2, dims, nullptr));
    h5::Handle dataset(H5Dcreate2(file.id(), "data", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    const char text[16] = "abcdefghijklmno";
    BOOST_REQUIRE(H5Dwrite(dataset.get(), type.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, text) >= 0);
  }
  check_input_error([&] { sdeflow::load_data(strings); }, {strings + ":/data", "expected numbers", "string"});

  const std::string compound = path_in(dir, "compound.h5");
  {
    h5::File file(compound, h5::Mode::create);
    h5::Handle type(H5Tcreate(H5T_COMPOUND, 16));
    H5Tinsert(type.get(), "a", 0, H5T_NATIVE_DOUBLE);
    H5Tinsert(type.get(), "b", 8, H5T_NATIVE_DOUBLE);
    const hsize_t dims[2] = {2, 1};
    h5::Handle space(H5Screate_simple(2, dims, nullptr));
    h5::Handle dataset(H5Dcreate2(file.id(), "data", type.get(), space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
  }
  check_input_error([&] { sdeflow::load_data(compound); }, {compound + ":/data", "expected numbers", "compound"});

  // uint64 and int64 beyond 2^53 cannot be converted to float64 exactly.
  const std::string u64 = path_in(dir, "u64.h5");
  {
    h5::File file(u64, h5::Mode::create);
    const hsize_t dims[2] = {1, 2};
    h5::Handle space(H5Screate_simple(2, dims, nullptr));
    h5::Handle dataset(
        H5Dcreate2(file.id(), "data", H5T_STD_U64LE, space.get(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    const uint64_t values[2] = {1, 2};
    BOOST_REQUIRE(H5Dwrite(dataset.get(), H5T_NATIVE_UINT64, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) >= 0);
  }
  check_input_error([&] { sdeflow::load_data(u64); }, {u64 + ":/data", "uint64"});
  const std::string big = path_in(dir, "big.h5");
  at::Tensor huge = torch::zeros({4, 2}, torch::kLong);
  huge[2][0] = (int64_t{1} << 53) + 1;
  sdeflow::save_data(big, huge);
  check_input_error([&] { sdeflow::load_data(big); }, {big + ":/data", "row 2", "2^53"});
}

BOOST_AUTO_TEST_CASE(non_finite_values_name_the_first_bad_row) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_non_finite");
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();

  at::Tensor data = torch::randn({40, 2}, torch::kDouble);
  data[17][1] = nan;
  data[30][0] = inf;   // a later bad row is not the one reported
  const std::string path = path_in(dir, "data.h5");
  sdeflow::save_data(path, data);
  check_input_error([&] { sdeflow::load_data(path, 2); },
                    {path + ":/data: row 17 is not finite (NaN or Inf)"});

  at::Tensor infinite = torch::zeros({5, 3}, torch::kFloat);
  infinite[4][2] = -std::numeric_limits<float>::infinity();
  const std::string float32 = path_in(dir, "float32.h5");
  sdeflow::save_data(float32, infinite);
  check_input_error([&] { sdeflow::load_data(float32); }, {float32 + ":/data", "row 4 is not finite"});

  at::Tensor first = torch::ones({3, 1}, torch::kDouble);
  first[0][0] = inf;
  const std::string row0 = path_in(dir, "row0.h5");
  sdeflow::save_data(row0, first);
  check_input_error([&] { sdeflow::load_data(row0); }, {row0 + ":/data", "row 0 is not finite"});
}

BOOST_AUTO_TEST_CASE(images_round_trip_with_their_shape) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_images");
  const std::string path = path_in(dir, "images.h5");
  // [N, 1, 8, 8] uint8 images with values 0..16 (the digits layout, docs/datasets.md).
  const at::Tensor images =
      (torch::arange(5 * 64, torch::kLong) * 7).remainder(17).to(torch::kByte).reshape({5, 1, 8, 8});
  sdeflow::save_data(path, images, {"digits", "test", {0.0, 16.0}});
  {
    h5::File file(path, h5::Mode::read);
    BOOST_TEST(file.dataset_type_name("data") == "uint8");
    BOOST_TEST(file.dataset_shape("data") == (std::vector<int64_t>{5, 1, 8, 8}), boost::test_tools::per_element());
  }
  const sdeflow::DataFile loaded = sdeflow::load_data(path, 64);
  BOOST_TEST(loaded.integer);
  BOOST_TEST(loaded.shape == (std::vector<int64_t>{1, 8, 8}), boost::test_tools::per_element());
  BOOST_TEST(loaded.data.sizes().vec() == (std::vector<int64_t>{5, 64}), boost::test_tools::per_element());
  BOOST_TEST(loaded.data.scalar_type() == at::kDouble);
  BOOST_TEST(torch::equal(loaded.data, images.reshape({5, 64}).to(torch::kDouble)));
  BOOST_TEST(torch::equal(loaded.data.reshape({5, 1, 8, 8}).to(torch::kByte), images));
  check_input_error([&] { sdeflow::load_data(path, 8); },
                    {path + ":/data: rows have dimension 64 but the model has dimension 8", "[1, 8, 8]"});
  // A 2-D file reports its sample shape as [D].
  const std::string vectors = path_in(dir, "vectors.h5");
  sdeflow::save_data(vectors, sample_data());
  BOOST_TEST(sdeflow::load_data(vectors).shape == std::vector<int64_t>{3}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(attributes_round_trip_and_are_optional) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_attributes");
  const std::string path = path_in(dir, "named.h5");
  sdeflow::save_data(path, sample_data(), {"toy", "train", {-2.5, 3.5}});
  {
    h5::File file(path, h5::Mode::read);
    BOOST_TEST(file.attribute_string("name") == "toy");
    BOOST_TEST(file.attribute_string("split") == "train");
    BOOST_TEST(file.attribute_doubles("value_range") == (std::vector<double>{-2.5, 3.5}),
               boost::test_tools::per_element());
  }
  const sdeflow::DataFile loaded = sdeflow::load_data(path, 3);
  BOOST_TEST(loaded.name == "toy");
  BOOST_TEST(loaded.split == "train");
  BOOST_TEST(loaded.value_range == (std::vector<double>{-2.5, 3.5}), boost::test_tools::per_element());
  BOOST_TEST(torch::equal(loaded.data, sample_data()));

  // Empty attributes are not written; absent ones read as empty.
  const std::string plain = path_in(dir, "plain.h5");
  sdeflow::save_data(plain, sample_data(), {"", "test", {}});
  {
    h5::File file(plain, h5::Mode::read);
    BOOST_TEST(!file.has_attribute("name"));
    BOOST_TEST(!file.has_attribute("value_range"));
  }
  const sdeflow::DataFile bare = sdeflow::load_data(plain);
  BOOST_TEST(bare.name.empty());
  BOOST_TEST(bare.split == "test");
  BOOST_TEST(bare.value_range.empty());

  // A range whose ends are the data's extremes is fine (closed interval).
  const at::Tensor data = sample_data();
  const std::string tight = path_in(dir, "tight.h5");
  sdeflow::save_data(tight, data, {"", "", {data.min().item<double>(), data.max().item<double>()}});
  BOOST_TEST(torch::equal(sdeflow::load_data(tight).data, data));
  // A name that is not a string is named.
  const std::string numeric_name = path_in(dir, "numeric_name.h5");
  sdeflow::save_data(numeric_name, data);
  h5::File(numeric_name, h5::Mode::read_write).set_attribute("name", int64_t{3});
  check_input_error([&] { sdeflow::load_data(numeric_name); }, {numeric_name, "'name'", "string"});
}

BOOST_AUTO_TEST_CASE(values_outside_value_range_name_the_first_row) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_value_range");
  at::Tensor images = torch::full({6, 1, 2, 2}, 3, torch::kByte);
  images[2][0][1][1] = 17;
  images[4][0][0][0] = 200;
  // save_data refuses them, before anything is written ...
  const std::string refused = path_in(dir, "refused.h5");
  check_input_error([&] { sdeflow::save_data(refused, images, {"digits", "", {0.0, 16.0}}); },
                    {refused + ":/data", "row 2", "value_range [0, 16]"});
  BOOST_TEST(directory_listing(dir).empty());
  // ... and load_data names the first bad row of a file written without the check.
  const std::string path = path_in(dir, "outside.h5");
  write_raw(path, images);
  h5::File(path, h5::Mode::read_write).set_attribute("value_range", std::vector<double>{0.0, 16.0});
  check_input_error([&] { sdeflow::load_data(path); },
                    {path + ":/data: row 2 has a value outside value_range [0, 16]"});
  // Floats below the range too, and NaN is refused as not finite first.
  at::Tensor values = sample_data();
  const std::string below = path_in(dir, "below.h5");
  write_raw(below, values);
  h5::File(below, h5::Mode::read_write).set_attribute("value_range", std::vector<double>{-1.0, 100.0});
  check_input_error([&] { sdeflow::load_data(below); }, {below + ":/data", "row 0", "outside value_range [-1, 100]"});
  values[1][1] = std::numeric_limits<double>::quiet_NaN();
  check_input_error([&] { sdeflow::save_data(below, values, {"", "", {-10.0, 10.0}}); }, {below + ":/data", "row 1"});
}

BOOST_AUTO_TEST_CASE(malformed_value_range_attributes_are_named) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_bad_range");
  const auto write_with_range = [&](const std::string& name, const std::vector<double>& range) {
    const std::string path = path_in(dir, name);
    sdeflow::save_data(path, sample_data());
    h5::File(path, h5::Mode::read_write).set_attribute("value_range", range);
    return path;
  };
  const std::string three = write_with_range("three.h5", {0.0, 1.0, 2.0});
  check_input_error([&] { sdeflow::load_data(three); }, {three, "'value_range'", "2 finite numbers", "[0, 1, 2]"});
  const std::string reversed = write_with_range("reversed.h5", {5.0, -5.0});
  check_input_error([&] { sdeflow::load_data(reversed); }, {reversed, "'value_range'", "lo <= hi", "[5, -5]"});
  const std::string infinite = write_with_range("infinite.h5", {0.0, std::numeric_limits<double>::infinity()});
  check_input_error([&] { sdeflow::load_data(infinite); }, {infinite, "'value_range'"});
  const std::string text = path_in(dir, "text.h5");
  sdeflow::save_data(text, sample_data());
  h5::File(text, h5::Mode::read_write).set_attribute("value_range", "0..16");
  check_input_error([&] { sdeflow::load_data(text); }, {text, "'value_range'", "expected numbers"});
  const std::string scalar = path_in(dir, "scalar.h5");
  sdeflow::save_data(scalar, sample_data());
  h5::File(scalar, h5::Mode::read_write).set_attribute("value_range", 16.0);
  check_input_error([&] { sdeflow::load_data(scalar); }, {scalar, "'value_range'", "2 finite numbers"});
  // save_data checks the range it is given the same way, and writes nothing.
  const std::string unsaved = path_in(dir, "unsaved.h5");
  check_input_error([&] { sdeflow::save_data(unsaved, sample_data(), {"", "", {1.0}}); }, {unsaved, "'value_range'"});
  check_input_error([&] { sdeflow::save_data(unsaved, sample_data(), {"", "", {2.0, 1.0}}); }, {unsaved, "lo <= hi"});
  BOOST_TEST(!std::filesystem::exists(unsaved));
}

// ---------------------------------------------------------------------------------------------------
// NLL result files

BOOST_AUTO_TEST_CASE(nll_writer_appends_batches_and_finishes) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_nll");
  const std::string path = path_in(dir, "nll.h5");
  const std::map<std::string, std::string> attributes{
      {"model", "builtin:gmm2d"}, {"data", "data.h5"}, {"solver", "rk45"}, {"command_line", "sdeflow nll ..."},
      {"format", "not allowed"},  {"complete", "yes"}};   // reserved names: replaced by the writer's own
  const at::Tensor nll1 = torch::tensor({1.5, -0.25, 3.0}, torch::kDouble);
  const at::Tensor bpd1 = nll1 / std::log(2.0) / 2.0;
  const at::Tensor nfe1 = torch::tensor({38, 44, 50}, torch::kLong);
  const at::Tensor status1 = torch::tensor({0, 0, 1}, torch::kInt);
  // The second batch in other dtypes: converted to the stored types.
  const at::Tensor nll2 = torch::tensor({2.5f, 0.5f}, torch::kFloat);
  const at::Tensor bpd2 = torch::tensor({1.25, 0.125}, torch::kDouble);
  const at::Tensor nfe2 = torch::tensor({62, 26}, torch::kInt);
  const at::Tensor status2 = torch::tensor({0, 2}, torch::kLong);
  {
    sdeflow::NllFileWriter writer(path, attributes);
    BOOST_TEST(writer.rows() == 0);
    BOOST_TEST(writer.path() == path);
    {
      // While the writer is open (same process): the flushed state, complete == 0.
      const sdeflow::NllFile empty = sdeflow::read_nll_file(path);
      BOOST_TEST(!empty.complete);
      BOOST_TEST(empty.rows == 0);
      BOOST_TEST(empty.nll.numel() == 0);
    }
    writer.append(nll1, bpd1, nfe1, status1);
    BOOST_TEST(writer.rows() == 3);
    writer.append(nll2, bpd2, nfe2, status2);
    writer.append(torch::zeros({0}, torch::kDouble), torch::zeros({0}, torch::kDouble),
                  torch::zeros({0}, torch::kLong), torch::zeros({0}, torch::kInt));   // an empty batch is fine
    BOOST_TEST(writer.rows() == 5);
    {
      const sdeflow::NllFile partial = sdeflow::read_nll_file(path);
      BOOST_TEST(!partial.complete);
      BOOST_TEST(partial.rows == 5);
      BOOST_TEST(partial.nll.size(0) == 5);
      BOOST_TEST(partial.summary.empty());
    }
    // A bad batch is refused before anything is written.
    check_input_error([&] { writer.append(nll1, bpd1, nfe2, status1); }, {path + ":/nfe", "3 values", "[2]"});
    check_input_error([&] { writer.append(nll1.reshape({3, 1}), bpd1, nfe1, status1); }, {path + ":/nll", "[3, 1]"});
    BOOST_TEST(writer.rows() == 5);
    BOOST_CHECK_THROW(writer.finish({{"rows", 1.0}}), sdeflow::Error);   // reserved name
    writer.finish({{"nll_mean", 1.45}, {"nll_stderr", 0.5}, {"nfe_max", 62.0}, {"failures", 2.0}});
    BOOST_TEST(writer.rows() == 5);
    BOOST_CHECK_THROW(writer.finish({}), sdeflow::Error);
    BOOST_CHECK_THROW(writer.append(nll1, bpd1, nfe1, status1), sdeflow::Error);
  }
  const sdeflow::NllFile file = sdeflow::read_nll_file(path);
  BOOST_TEST(file.complete);
  BOOST_TEST(file.rows == 5);
  BOOST_TEST(file.nll.scalar_type() == at::kDouble);
  BOOST_TEST(file.nfe.scalar_type() == at::kLong);
  BOOST_TEST(file.status.scalar_type() == at::kInt);
  BOOST_TEST(torch::equal(file.nll, torch::cat({nll1, nll2.to(torch::kDouble)})));
  BOOST_TEST(torch::equal(file.bpd, torch::cat({bpd1, bpd2})));
  BOOST_TEST(torch::equal(file.nfe, torch::tensor({38, 44, 50, 62, 26}, torch::kLong)));
  BOOST_TEST(torch::equal(file.status, torch::tensor({0, 0, 1, 0, 2}, torch::kInt)));
  BOOST_TEST(file.summary == (std::map<std::string, double>{
                                 {"nll_mean", 1.45}, {"nll_stderr", 0.5}, {"nfe_max", 62.0}, {"failures", 2.0}}));
  BOOST_TEST(file.attributes == (std::map<std::string, std::string>{{"model", "builtin:gmm2d"},
                                                                     {"data", "data.h5"},
                                                                     {"solver", "rk45"},
                                                                     {"command_line", "sdeflow nll ..."}}));

  // The stored layout, as documented in docs/formats.md.
  h5::File raw(path, h5::Mode::read);
  BOOST_TEST(raw.attribute_string("format") == "sdeflow.nll");
  BOOST_TEST(raw.attribute_int("version") == 1);
  BOOST_TEST(raw.attribute_int("complete") == 1);
  BOOST_TEST(raw.attribute_int("rows") == 5);
  BOOST_TEST(raw.dataset_type_name("nll") == "float64");
  BOOST_TEST(raw.dataset_type_name("bpd") == "float64");
  BOOST_TEST(raw.dataset_type_name("nfe") == "int64");
  BOOST_TEST(raw.dataset_type_name("status") == "int32");
  BOOST_TEST(raw.dataset_shape("nll") == std::vector<int64_t>{5}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(nll_writer_destroyed_without_finish_keeps_every_batch) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_nll_unfinished");
  const std::string path = path_in(dir, "partial.h5");
  {
    sdeflow::NllFileWriter writer(path, {{"model", "m.h5"}});
    for (int batch = 0; batch < 3; ++batch) {
      const at::Tensor nll = torch::arange(4, torch::kDouble) + 10.0 * batch;
      writer.append(nll, nll * 0.5, torch::full({4}, 20 + batch, torch::kLong), torch::zeros({4}, torch::kInt));
    }
    // Destroyed without finish(): as if the run had stopped with an exception after three batches.
  }
  const sdeflow::NllFile file = sdeflow::read_nll_file(path);
  BOOST_TEST(!file.complete);
  BOOST_TEST(file.rows == 12);
  BOOST_TEST(torch::equal(file.nll, torch::arange(4, torch::kDouble).repeat({3}) +
                                        torch::tensor({0.0, 10.0, 20.0}, torch::kDouble).repeat_interleave(4)));
  BOOST_TEST(torch::equal(file.bpd, file.nll * 0.5));
  BOOST_TEST(file.nfe[11].item<int64_t>() == 22);
  BOOST_TEST(file.summary.empty());
  BOOST_TEST(file.attributes.at("model") == "m.h5");
}

BOOST_AUTO_TEST_CASE(killed_nll_writer_leaves_every_flushed_batch) {
  // A forked child appends two batches and is killed with SIGKILL (no destructor, no close).
  const auto dir = sdeflow::test::scratch_dir("datafiles_nll_killed");
  const std::string path = path_in(dir, "killed.h5");
  const pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    try {
      sdeflow::NllFileWriter writer(path, {{"solver", "rk45"}});
      writer.append(torch::tensor({1.0, 2.0}), torch::tensor({0.5, 1.0}), torch::tensor({10, 12}),
                    torch::tensor({0, 0}));
      writer.append(torch::tensor({3.0}), torch::tensor({1.5}), torch::tensor({14}), torch::tensor({1}));
      std::raise(SIGKILL);
    } catch (...) {
      _exit(3);
    }
    _exit(0);   // not reached
  }
  int status = 0;
  BOOST_REQUIRE(waitpid(pid, &status, 0) == pid);
  BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));
  const sdeflow::NllFile file = sdeflow::read_nll_file(path);
  BOOST_TEST(!file.complete);
  BOOST_TEST(file.rows == 3);
  BOOST_TEST(torch::equal(file.nll, torch::tensor({1.0, 2.0, 3.0}, torch::kDouble)));
  BOOST_TEST(torch::equal(file.nfe, torch::tensor({10, 12, 14}, torch::kLong)));
  BOOST_TEST(torch::equal(file.status, torch::tensor({0, 0, 1}, torch::kInt)));
  BOOST_TEST(file.attributes.at("solver") == "rk45");
}

BOOST_AUTO_TEST_CASE(read_nll_file_validates) {
  const auto dir = sdeflow::test::scratch_dir("datafiles_nll_invalid");
  const std::string missing = path_in(dir, "missing.h5");
  check_input_error([&] { sdeflow::read_nll_file(missing); }, {missing, "no such file"});

  const std::string data = path_in(dir, "data.h5");
  sdeflow::save_data(data, sample_data());
  check_input_error([&] { sdeflow::read_nll_file(data); }, {data, "format is 'sdeflow.data', expected 'sdeflow.nll'"});
  const std::string unmarked = path_in(dir, "unmarked.h5");
  write_raw(unmarked, sample_data());
  check_input_error([&] { sdeflow::read_nll_file(unmarked); }, {unmarked, "missing root attribute 'format'"});

  const auto make = [&](const std::string& name) {
    const std::string path = path_in(dir, name);
    sdeflow::NllFileWriter writer(path, {});
    writer.append(torch::ones({2}), torch::ones({2}), torch::ones({2}), torch::zeros({2}));
    writer.finish({});
    return path;
  };
  const std::string wrong_format = make("wrong_format.h5");
  h5::File(wrong_format, h5::Mode::read_write).set_attribute("format", "sdeflow.samples");
  check_input_error([&] { sdeflow::read_nll_file(wrong_format); }, {wrong_format, "sdeflow.samples", "sdeflow.nll"});

  const std::string wrong_version = make("wrong_version.h5");
  h5::File(wrong_version, h5::Mode::read_write).set_attribute("version", int64_t{2});
  check_input_error([&] { sdeflow::read_nll_file(wrong_version); }, {wrong_version, "version 2"});

  const std::string too_many = make("too_many.h5");
  h5::File(too_many, h5::Mode::read_write).set_attribute("rows", int64_t{3});
  check_input_error([&] { sdeflow::read_nll_file(too_many); }, {too_many + ":/nll", "2 entries", "3"});

  // A complete file's datasets must have exactly `rows` entries ...
  const std::string too_few = make("too_few.h5");
  h5::File(too_few, h5::Mode::read_write).set_attribute("rows", int64_t{1});
  check_input_error([&] { sdeflow::read_nll_file(too_few); }, {too_few + ":/nll", "2 entries", "1"});
  // ... an incomplete one (a writer killed during an append) is cut to `rows`.
  h5::File(too_few, h5::Mode::read_write).set_attribute("complete", int64_t{0});
  BOOST_TEST(sdeflow::read_nll_file(too_few).nll.size(0) == 1);

  const std::string float_nfe = make("float_nfe.h5");
  {
    h5::File file(float_nfe, h5::Mode::read_write);
    file.write_tensor("nfe", torch::ones({2}, torch::kDouble));
  }
  check_input_error([&] { sdeflow::read_nll_file(float_nfe); }, {float_nfe + ":/nfe", "integer", "float64"});
}

BOOST_AUTO_TEST_SUITE_END()
