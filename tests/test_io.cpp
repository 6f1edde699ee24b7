// The HDF5 layer (io/h5.hpp) and sample files (io/trajectory.hpp): round trips, checked reads and the
// errors that name the file and object.
#include <boost/test/unit_test.hpp>

#include <cstdio>

#include <torch/torch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/result_file.hpp"
#include "io/trajectory.hpp"
#include "support.hpp"

namespace h5 = sdeflow::h5;
using sdeflow::InputError;

namespace {

// "t<i>_<j>" (snprintf: GCC 12 warns falsely about std::string concatenation here).
std::string dataset_name(size_t i, size_t j) {
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "t%zu_%zu", i, j);
  return buffer;
}

// Asserts that `body` throws InputError whose message contains every string of `parts`.
template <typename Body>
void check_input_error(Body&& body, const std::vector<std::string>& parts) {
  try {
    body();
    BOOST_ERROR("expected sdeflow::InputError, nothing was thrown");
  } catch (const InputError& e) {
    const std::string message = e.what();
    for (const std::string& part : parts) {
      BOOST_TEST(message.find(part) != std::string::npos, "'" << message << "' should contain '" << part << "'");
    }
  }
}

// A deterministic tensor of `shape` and `dtype` with distinct values (negative ones where signed).
at::Tensor sample_tensor(const std::vector<int64_t>& shape, at::ScalarType dtype) {
  int64_t numel = 1;
  for (int64_t s : shape) numel *= s;
  at::Tensor values = torch::arange(numel, torch::kDouble).reshape(shape);
  if (dtype == at::kByte) return (values * 7).remainder(256).to(dtype);
  if (at::isFloatingType(dtype)) return ((values - 5.0) * 0.37).to(dtype);
  return ((values - 5) * 1001).to(dtype);
}

std::string path_in(const std::filesystem::path& dir, const std::string& name) { return (dir / name).string(); }

}  // namespace

BOOST_AUTO_TEST_SUITE(io)

BOOST_AUTO_TEST_CASE(tensor_round_trip_every_dtype_and_shape) {
  const auto dir = sdeflow::test::scratch_dir("io_round_trip");
  const std::string path = path_in(dir, "tensors.h5");
  const std::vector<at::ScalarType> dtypes{at::kDouble, at::kFloat, at::kLong, at::kInt, at::kByte};
  const std::vector<std::vector<int64_t>> shapes{{5}, {3, 4}, {2, 3, 4}};
  const std::vector<std::string> type_names{"float64", "float32", "int64", "int32", "uint8"};
  {
    h5::File file(path, h5::Mode::create);
    for (size_t i = 0; i < dtypes.size(); ++i) {
      for (size_t j = 0; j < shapes.size(); ++j) {
        file.write_tensor(dataset_name(i, j), sample_tensor(shapes[j], dtypes[i]));
      }
    }
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.children().size() == dtypes.size() * shapes.size());
  for (size_t i = 0; i < dtypes.size(); ++i) {
    for (size_t j = 0; j < shapes.size(); ++j) {
      const std::string name = dataset_name(i, j);
      const at::Tensor expected = sample_tensor(shapes[j], dtypes[i]);
      const at::Tensor read = file.read_tensor(name);
      BOOST_TEST(read.scalar_type() == dtypes[i], name);
      BOOST_TEST(read.sizes().vec() == shapes[j], name);
      BOOST_TEST(torch::equal(read, expected), name);
      BOOST_TEST(file.dataset_shape(name) == shapes[j], name);
      BOOST_TEST(file.dataset_type_name(name) == type_names[i], name);
    }
  }
  // Spot-check concrete values.
  BOOST_TEST(file.read_tensor("t0_0")[0].item<double>() == -5.0 * 0.37);
  BOOST_TEST(file.read_tensor("t2_1")[2][3].item<int64_t>() == (11 - 5) * 1001);
  BOOST_TEST(file.read_tensor("t4_2")[1][2][3].item<int64_t>() == (23 * 7) % 256);
}

BOOST_AUTO_TEST_CASE(bool_scalar_and_non_contiguous_tensors) {
  const auto dir = sdeflow::test::scratch_dir("io_special_tensors");
  const std::string path = path_in(dir, "special.h5");
  const at::Tensor flags = torch::tensor({true, false, true});
  const at::Tensor scalar = torch::tensor(2.5, torch::kDouble);
  const at::Tensor transposed = torch::arange(6, torch::kFloat).reshape({2, 3}).t();
  {
    h5::File file(path, h5::Mode::create);
    file.write_tensor("flags", flags);
    file.write_tensor("scalar", scalar);
    file.write_tensor("transposed", transposed);
    file.write_tensor("nested/deeper/values", torch::ones({2}, torch::kDouble));
    file.write_tensor("empty", torch::zeros({0, 3}, torch::kDouble), /*compress=*/true);
  }
  h5::File file(path, h5::Mode::read);
  const at::Tensor read_flags = file.read_tensor("flags");
  BOOST_TEST(read_flags.scalar_type() == at::kByte);
  BOOST_TEST(torch::equal(read_flags, torch::tensor({1, 0, 1}, torch::kByte)));
  const at::Tensor read_scalar = file.read_tensor("scalar");
  BOOST_TEST(read_scalar.dim() == 0);
  BOOST_TEST(read_scalar.item<double>() == 2.5);
  BOOST_TEST(file.dataset_shape("scalar").empty());
  BOOST_TEST(torch::equal(file.read_tensor("transposed"), transposed.contiguous()));
  BOOST_TEST(file.read_tensor("transposed")[2][1].item<float>() == 5.0f);
  BOOST_TEST(file.has("nested/deeper/values"));
  BOOST_TEST(!file.has("nested/missing/values"));
  BOOST_TEST(file.group("nested").group("deeper").describe("values") == path + ":/nested/deeper/values");
  BOOST_TEST(file.read_tensor("empty").sizes().vec() == (std::vector<int64_t>{0, 3}));
}

BOOST_AUTO_TEST_CASE(rewriting_a_dataset_replaces_it) {
  const auto dir = sdeflow::test::scratch_dir("io_rewrite");
  const std::string path = path_in(dir, "rewrite.h5");
  h5::File file(path, h5::Mode::create);
  file.write_tensor("x", torch::zeros({4}, torch::kDouble));
  file.write_tensor("x", torch::full({2, 2}, 3, torch::kLong));
  BOOST_TEST(torch::equal(file.read_tensor("x"), torch::full({2, 2}, 3, torch::kLong)));
}

BOOST_AUTO_TEST_CASE(compressed_round_trip) {
  const auto dir = sdeflow::test::scratch_dir("io_compressed");
  const std::string path = path_in(dir, "compressed.h5");
  // 300000 x 2 float64 = 4.8 MB: several chunks of at most 1 MiB along the first axis.
  const at::Tensor big = torch::arange(600000, torch::kDouble).reshape({300000, 2}) * 0.5;
  const at::Tensor small = sample_tensor({2, 3, 4}, at::kFloat);
  const at::Tensor ints = sample_tensor({3, 4}, at::kInt);
  {
    h5::File file(path, h5::Mode::create);
    file.write_tensor("big", big, /*compress=*/true);
    file.write_tensor("small", small, /*compress=*/true);
    file.write_tensor("ints", ints, /*compress=*/true);
  }
  // Highly regular data compresses: the file is much smaller than the raw 4.8 MB.
  BOOST_TEST(std::filesystem::file_size(path) < 2'400'000u);
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(torch::equal(file.read_tensor("big"), big));
  BOOST_TEST(file.read_tensor("big")[299999][1].item<double>() == 299999.5);
  BOOST_TEST(torch::equal(file.read_tensor("small"), small));
  BOOST_TEST(torch::equal(file.read_tensor("ints"), ints));
}

BOOST_AUTO_TEST_CASE(attribute_round_trips) {
  const auto dir = sdeflow::test::scratch_dir("io_attributes");
  const std::string path = path_in(dir, "attributes.h5");
  {
    h5::File file(path, h5::Mode::create);
    file.set_attribute("name", "gaussian mixture \xce\xbc");   // UTF-8
    file.set_attribute("empty", std::string());
    file.set_attribute("count", int64_t{-42});
    file.set_attribute("small", 7);
    file.set_attribute("scale", 0.125);
    file.set_attribute("weights", std::vector<double>{1.5, -2.0, 3.25});
    file.set_attribute("none", std::vector<double>{});
    file.set_attribute("count", int64_t{43});   // replaces the first value
    h5::Location group = file.create_group("gmm");
    group.set_attribute("kind", "gmm");
    group.set_attribute("dim", int64_t{2});
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_string("name") == "gaussian mixture \xce\xbc");
  BOOST_TEST(file.attribute_string("empty") == "");
  BOOST_TEST(file.attribute_int("count") == 43);
  BOOST_TEST(file.attribute_int("small") == 7);
  BOOST_TEST(file.attribute_double("scale") == 0.125);
  BOOST_TEST(file.attribute_doubles("weights") == (std::vector<double>{1.5, -2.0, 3.25}), boost::test_tools::per_element());
  BOOST_TEST(file.attribute_doubles("none").empty());
  BOOST_TEST(file.attribute_doubles("scale") == std::vector<double>{0.125}, boost::test_tools::per_element());
  BOOST_TEST(file.has_attribute("scale"));
  BOOST_TEST(!file.has_attribute("missing"));
  const std::vector<std::string> names = file.attribute_names();
  BOOST_TEST(names == (std::vector<std::string>{"count", "empty", "name", "none", "scale", "small", "weights"}),
             boost::test_tools::per_element());
  h5::Location group = file.group("gmm");
  BOOST_TEST(group.path() == "/gmm");
  BOOST_TEST(group.attribute_string("kind") == "gmm");
  BOOST_TEST(group.attribute_int("dim") == 2);
  BOOST_TEST(file.children() == std::vector<std::string>{"gmm"}, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(reads_strings_written_by_other_tools) {
  // h5py writes variable-length strings by default; other tools write space-padded fixed-length ones.
  const auto dir = sdeflow::test::scratch_dir("io_foreign_strings");
  const std::string path = path_in(dir, "strings.h5");
  {
    h5::File file(path, h5::Mode::create);
    h5::Handle scalar(H5Screate(H5S_SCALAR));
    h5::Handle variable(H5Tcopy(H5T_C_S1));
    H5Tset_size(variable.get(), H5T_VARIABLE);
    H5Tset_cset(variable.get(), H5T_CSET_UTF8);
    const char* text = "variable \xce\xb1";
    h5::Handle a(H5Acreate2(file.id(), "vlen", variable.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
    BOOST_REQUIRE(H5Awrite(a.get(), variable.get(), &text) >= 0);

    h5::Handle padded(H5Tcopy(H5T_C_S1));
    H5Tset_size(padded.get(), 8);
    H5Tset_strpad(padded.get(), H5T_STR_SPACEPAD);
    h5::Handle b(H5Acreate2(file.id(), "spaces", padded.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
    BOOST_REQUIRE(H5Awrite(b.get(), padded.get(), "abc     ") >= 0);

    h5::Handle nullpad(H5Tcopy(H5T_C_S1));
    H5Tset_size(nullpad.get(), 6);
    H5Tset_strpad(nullpad.get(), H5T_STR_NULLPAD);
    const char exact[6] = {'s', 'i', 'x', 'c', 'h', 'r'};   // fills the whole size, no terminator
    h5::Handle c(H5Acreate2(file.id(), "exact", nullpad.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT));
    BOOST_REQUIRE(H5Awrite(c.get(), nullpad.get(), exact) >= 0);
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_string("vlen") == "variable \xce\xb1");
  BOOST_TEST(file.attribute_string("spaces") == "abc");
  BOOST_TEST(file.attribute_string("exact") == "sixchr");
}

BOOST_AUTO_TEST_CASE(attribute_type_checks) {
  const auto dir = sdeflow::test::scratch_dir("io_attribute_types");
  const std::string path = path_in(dir, "attributes.h5");
  {
    h5::File file(path, h5::Mode::create);
    file.set_attribute("integer", int64_t{12});
    file.set_attribute("real", 2.75);
    file.set_attribute("text", "hello");
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_double("integer") == 12.0);   // integers widen to double
  BOOST_TEST(file.attribute_doubles("integer") == std::vector<double>{12.0}, boost::test_tools::per_element());
  check_input_error([&] { file.attribute_int("real"); }, {path, "real", "expected an integer", "float64"});
  check_input_error([&] { file.attribute_int("text"); }, {path, "text", "string"});
  check_input_error([&] { file.attribute_double("text"); }, {path, "text", "expected a number"});
  check_input_error([&] { file.attribute_string("integer"); }, {path, "integer", "expected a string", "int64"});
}

BOOST_AUTO_TEST_CASE(checked_read_converts_and_checks_shape) {
  const auto dir = sdeflow::test::scratch_dir("io_checked");
  const std::string path = path_in(dir, "model.h5");
  {
    h5::File file(path, h5::Mode::create);
    h5::Location gmm = file.create_group("gmm");
    gmm.write_tensor("means", sample_tensor({3, 4}, at::kFloat));
    gmm.write_tensor("counts", torch::tensor({1, 2, 3}, torch::kInt));
  }
  h5::File file(path, h5::Mode::read);
  h5::Location gmm = file.group("gmm");
  const at::Tensor means = gmm.read_tensor("means", at::kDouble, {3, 4});
  BOOST_TEST(means.scalar_type() == at::kDouble);
  BOOST_TEST(torch::equal(means, sample_tensor({3, 4}, at::kFloat).to(at::kDouble)));
  BOOST_TEST(gmm.read_tensor("means", at::kFloat, {-1, 4}).sizes().vec() == (std::vector<int64_t>{3, 4}));
  BOOST_TEST(gmm.read_tensor("means", at::kFloat, {-1, -1}).size(0) == 3);

  check_input_error([&] { gmm.read_tensor("means", at::kDouble, {3, 2}); },
                    {path + ":/gmm/means", "expected shape [3, 2], got [3, 4]"});
  check_input_error([&] { gmm.read_tensor("means", at::kDouble, {12}); },
                    {path + ":/gmm/means", "[12]", "[3, 4]", "rank 2 instead of 1"});
  check_input_error([&] { gmm.read_tensor("means", at::kDouble, {4, -1}); },
                    {path + ":/gmm/means", "[4, *]", "[3, 4]"});

  // Integer datasets are accepted only on request.
  check_input_error([&] { gmm.read_tensor("counts", at::kDouble, {3}); },
                    {path + ":/gmm/counts", "floating-point", "int32"});
  const at::Tensor counts = gmm.read_tensor("counts", at::kDouble, {3}, /*allow_integer=*/true);
  BOOST_TEST(counts.scalar_type() == at::kDouble);
  BOOST_TEST(torch::equal(counts, torch::tensor({1.0, 2.0, 3.0}, torch::kDouble)));
}

BOOST_AUTO_TEST_CASE(missing_objects_are_named) {
  const auto dir = sdeflow::test::scratch_dir("io_missing");
  const std::string path = path_in(dir, "model.h5");
  {
    h5::File file(path, h5::Mode::create);
    file.create_group("gmm").write_tensor("weights", torch::ones({2}, torch::kDouble));
  }
  h5::File file(path, h5::Mode::read);
  check_input_error([&] { file.read_tensor("nothing"); }, {path + ":/nothing", "no such dataset"});
  check_input_error([&] { file.read_tensor("gmm/means", at::kDouble, {2}); }, {path + ":/gmm/means", "no such dataset"});
  check_input_error([&] { file.read_tensor("missing/deeper/x"); }, {path + ":/missing/deeper/x", "no such dataset"});
  check_input_error([&] { file.group("network"); }, {path + ":/network", "no such group"});
  check_input_error([&] { file.group("gmm").group("sub"); }, {path + ":/gmm/sub", "no such group"});
  check_input_error([&] { file.group("gmm/weights"); }, {path + ":/gmm/weights", "not a group"});
  check_input_error([&] { file.read_tensor("gmm"); }, {path + ":/gmm", "not a dataset"});
  check_input_error([&] { file.attribute_string("format"); }, {path + ":/", "'format'", "no such attribute"});
  check_input_error([&] { file.group("gmm").attribute_int("components"); },
                    {path + ":/gmm", "'components'", "no such attribute"});
  check_input_error([&] { file.dataset_shape("gmm/none"); }, {path + ":/gmm/none"});
}

BOOST_AUTO_TEST_CASE(missing_and_foreign_files) {
  const auto dir = sdeflow::test::scratch_dir("io_files");
  const std::string missing = path_in(dir, "missing.h5");
  check_input_error([&] { h5::File(missing, h5::Mode::read); }, {missing + ": no such file"});
  check_input_error([&] { h5::File(missing, h5::Mode::read_write); }, {missing + ": no such file"});

  const std::string text = path_in(dir, "notes.h5");
  std::ofstream(text) << "this is plain text, not HDF5\n";
  check_input_error([&] { h5::File(text, h5::Mode::read); }, {text + ": not an HDF5 file"});

  const std::string empty = path_in(dir, "empty.h5");
  std::ofstream(empty).close();
  check_input_error([&] { h5::File(empty, h5::Mode::read); }, {empty + ": not an HDF5 file"});

  // Creating inside a directory that does not exist, or under a regular file, is the caller's input error
  // (exit status 2 in the CLI), named before anything is created; write_atomically names the target, not its
  // temporary file, and leaves neither behind.
  const std::string unwritable = path_in(dir, "no/such/dir/out.h5");
  check_input_error([&] { h5::File(unwritable, h5::Mode::create); },
                    {unwritable + ": cannot write the file: the directory " + path_in(dir, "no/such/dir") + " does not exist"});
  check_input_error([&] { h5::write_atomically(unwritable, [](const h5::File&) {}); }, {unwritable, "does not exist"});
  BOOST_TEST(!std::filesystem::exists(dir / "no"));
  const std::string under_text = path_in(dir, "notes.h5/out.h5");
  check_input_error([&] { h5::write_atomically(under_text, [](const h5::File&) {}); },
                    {under_text + ": cannot write the file: " + text + " is not a directory"});
  check_input_error([&] { h5::File(dir.string(), h5::Mode::create); }, {dir.string(), "it is a directory"});

  // read_write opens an existing file for modification.
  const std::string path = path_in(dir, "rw.h5");
  { h5::File(path, h5::Mode::create).set_attribute("a", int64_t{1}); }
  {
    h5::File file(path, h5::Mode::read_write);
    file.set_attribute("b", int64_t{2});
    file.flush();
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_int("a") == 1);
  BOOST_TEST(file.attribute_int("b") == 2);
  BOOST_TEST(file.describe() == path + ":/");
  BOOST_TEST(file.describe("x") == path + ":/x");
}

BOOST_AUTO_TEST_CASE(sample_file_with_trajectory) {
  const auto dir = sdeflow::test::scratch_dir("io_sample_file");
  const std::string path = path_in(dir, "samples.h5");
  std::vector<at::Tensor> states;
  const std::vector<double> times{1.0, 0.5, 0.0};
  {
    sdeflow::SampleFileWriter writer(path, {{"solver", "euler_maruyama"}, {"model", "gmm.h5"}}, true);
    for (int s = 0; s < 3; ++s) {
      const at::Tensor x = torch::arange(8, torch::kDouble).reshape({4, 2}) * (s + 1) - 0.25 * s;
      states.push_back(x);
      writer.on_save(torch::full({4}, times[s], torch::kDouble), x);
    }
    BOOST_TEST(writer.saves() == 3);
    writer.finish(states.back(), {{"seconds", 1.5}, {"nfe", 30.0}});
    BOOST_TEST(writer.path() == path);
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_string("format") == "sdeflow.samples");
  BOOST_TEST(file.attribute_int("version") == 1);
  BOOST_TEST(file.attribute_int("complete") == 1);
  BOOST_TEST(file.attribute_string("solver") == "euler_maruyama");
  BOOST_TEST(file.attribute_string("model") == "gmm.h5");
  BOOST_TEST(file.attribute_double("seconds") == 1.5);
  BOOST_TEST(file.attribute_double("nfe") == 30.0);

  const h5::Location trajectory = file.group("trajectory");
  BOOST_TEST(trajectory.attribute_int("saves") == 3);
  BOOST_TEST(trajectory.dataset_shape("x") == (std::vector<int64_t>{3, 4, 2}));
  BOOST_TEST(trajectory.dataset_type_name("x") == "float64");
  BOOST_TEST(torch::equal(trajectory.read_tensor("x"), torch::stack(states)));
  BOOST_TEST(trajectory.read_tensor("x")[2][3][1].item<double>() == 7.0 * 3 - 0.5);
  const at::Tensor t = trajectory.read_tensor("t");
  BOOST_TEST(t.scalar_type() == at::kDouble);
  BOOST_TEST(torch::equal(t, torch::tensor(times, torch::kDouble)));
  BOOST_TEST(torch::equal(file.read_tensor("samples"), states.back()));
}

BOOST_AUTO_TEST_CASE(sample_file_float32_and_without_trajectory) {
  const auto dir = sdeflow::test::scratch_dir("io_sample_float32");
  const std::string path = path_in(dir, "samples32.h5");
  const at::Tensor x = torch::linspace(-1.0, 1.0, 6, torch::kFloat).reshape({3, 2});
  {
    sdeflow::SampleFileWriter writer(path, {}, true);
    writer.on_save(torch::tensor({0.25f, 0.25f, 0.25f}), x);
    writer.on_save(torch::tensor({0.0f, 0.0f, 0.0f}), x * 2);
    writer.finish(x * 2);
  }
  {
    h5::File file(path, h5::Mode::read);
    BOOST_TEST(file.group("trajectory").dataset_type_name("x") == "float32");
    BOOST_TEST(file.group("trajectory").dataset_type_name("t") == "float64");
    BOOST_TEST(torch::equal(file.group("trajectory").read_tensor("x"), torch::stack({x, x * 2})));
    BOOST_TEST(torch::equal(file.group("trajectory").read_tensor("t"), torch::tensor({0.25, 0.0}, torch::kDouble)));
    BOOST_TEST(file.dataset_type_name("samples") == "float32");
  }

  const std::string plain = path_in(dir, "plain.h5");
  {
    sdeflow::SampleFileWriter writer(plain, {{"note", ""}}, false);
    writer.on_save(torch::tensor({0.5f, 0.5f, 0.5f}), x);   // ignored: no trajectory requested
    BOOST_TEST(writer.saves() == 0);
    writer.finish(x);
  }
  h5::File file(plain, h5::Mode::read);
  BOOST_TEST(!file.has("trajectory"));
  BOOST_TEST(file.children() == std::vector<std::string>{"samples"}, boost::test_tools::per_element());
  BOOST_TEST(file.attribute_int("complete") == 1);
  BOOST_TEST(file.attribute_string("note") == "");
  BOOST_TEST(torch::equal(file.read_tensor("samples"), x));
}

BOOST_AUTO_TEST_CASE(sample_file_state_shape_must_not_change) {
  const auto dir = sdeflow::test::scratch_dir("io_sample_shape");
  const std::string path = path_in(dir, "samples.h5");
  sdeflow::SampleFileWriter writer(path, {}, true);
  writer.on_save(torch::zeros({4}, torch::kDouble), torch::zeros({4, 2}, torch::kDouble));
  check_input_error([&] { writer.on_save(torch::zeros({4}, torch::kDouble), torch::zeros({4, 3}, torch::kDouble)); },
                    {path, "/trajectory/x", "[4, 2]", "[4, 3]"});
  check_input_error([&] { writer.on_save(torch::zeros({4}), torch::zeros({4, 2}, torch::kLong)); },
                    {path, "floating-point"});
  BOOST_TEST(writer.saves() == 1);
}

BOOST_AUTO_TEST_CASE(unfinished_sample_file_keeps_completed_saves) {
  const auto dir = sdeflow::test::scratch_dir("io_sample_unfinished");
  const std::string path = path_in(dir, "partial.h5");
  const at::Tensor x0 = torch::tensor({{1.0, 2.0}, {3.0, 4.0}, {5.0, 6.0}, {7.0, 8.0}}, torch::kDouble);
  {
    sdeflow::SampleFileWriter writer(path, {{"solver", "heun"}}, true);
    writer.on_save(torch::full({4}, 1.0, torch::kDouble), x0);
    writer.on_save(torch::full({4}, 0.75, torch::kDouble), x0 * -1);
    // Destroyed without finish(): as if the run had stopped after two saves.
  }
  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_int("complete") == 0);
  BOOST_TEST(file.attribute_string("format") == "sdeflow.samples");
  BOOST_TEST(!file.has("samples"));
  const h5::Location trajectory = file.group("trajectory");
  BOOST_TEST(trajectory.attribute_int("saves") == 2);
  BOOST_TEST(torch::equal(trajectory.read_tensor("x"), torch::stack({x0, x0 * -1})));
  BOOST_TEST(torch::equal(trajectory.read_tensor("t"), torch::tensor({1.0, 0.75}, torch::kDouble)));
}

BOOST_AUTO_TEST_CASE(killed_writer_leaves_every_flushed_save) {
  // The SDEFLOW_TEST_KILL_AFTER_SAVES hook, exercised in a forked child: SIGKILL right after save 2.
  const auto dir = sdeflow::test::scratch_dir("io_sample_killed");
  const std::string path = path_in(dir, "killed.h5");
  const auto state = [](int s) { return torch::arange(8, torch::kFloat).reshape({4, 2}) + 10.0 * s; };
  const pid_t pid = fork();
  BOOST_REQUIRE(pid >= 0);
  if (pid == 0) {
    setenv("SDEFLOW_TEST_KILL_AFTER_SAVES", "2", 1);
    try {
      sdeflow::SampleFileWriter writer(path, {{"solver", "euler_maruyama"}}, true);
      for (int s = 0; s < 5; ++s) writer.on_save(torch::full({4}, 1.0 - 0.25 * s, torch::kFloat), state(s));
      writer.finish(state(4));
    } catch (...) {
      _exit(3);
    }
    _exit(0);   // not reached when the hook works
  }
  int status = 0;
  BOOST_REQUIRE(waitpid(pid, &status, 0) == pid);
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL));

  h5::File file(path, h5::Mode::read);
  BOOST_TEST(file.attribute_int("complete") == 0);
  BOOST_TEST(file.attribute_string("solver") == "euler_maruyama");
  BOOST_TEST(!file.has("samples"));
  const h5::Location trajectory = file.group("trajectory");
  BOOST_TEST(trajectory.attribute_int("saves") == 2);
  BOOST_TEST(trajectory.dataset_shape("x") == (std::vector<int64_t>{2, 4, 2}));
  BOOST_TEST(torch::equal(trajectory.read_tensor("x"), torch::stack({state(0), state(1)})));
  BOOST_TEST(torch::equal(trajectory.read_tensor("t"), torch::tensor({1.0, 0.75}, torch::kDouble)));
}

// The result-file object every streaming command uses: complete = 0 until commit(); an uncommitted file is kept
// (OnFailure::keep) or removed (OnFailure::discard) when it goes; committed files are never removed; the format's
// own attributes cannot be replaced by the run's description.
BOOST_AUTO_TEST_CASE(result_file_commits_keeps_or_discards) {
  namespace fs = std::filesystem;
  using sdeflow::ResultFile;
  const auto dir = sdeflow::test::scratch_dir("io_result_file");
  const auto committed = (dir / "committed.h5").string();
  {
    ResultFile out(committed, "sdeflow.test", 3, {{"model", "m.h5"}, {"format", "forged"}}, ResultFile::OnFailure::discard);
    out.file().write_tensor("rows", at::arange(4, at::kDouble));
    {
      const h5::File reader(committed, h5::Mode::read);
      BOOST_TEST(reader.attribute_int("complete") == 0);
      BOOST_TEST(reader.attribute_string("format") == "sdeflow.test");
    }
    out.commit({{"rows_mean", 1.5}});
    BOOST_TEST(out.committed());
    BOOST_CHECK_THROW(out.commit(), sdeflow::Error);
    out.discard();   // after commit: nothing happens
  }
  {
    const h5::File reader(committed, h5::Mode::read);
    BOOST_TEST(reader.attribute_int("complete") == 1);
    BOOST_TEST(reader.attribute_int("version") == 3);
    BOOST_TEST(reader.attribute_string("model") == "m.h5");
    BOOST_TEST(reader.attribute_double("rows_mean") == 1.5);
    BOOST_TEST(reader.read_tensor("rows").size(0) == 4);
  }
  const auto kept = (dir / "kept.h5").string(), discarded = (dir / "discarded.h5").string();
  {
    ResultFile a(kept, "sdeflow.test", 1, {}, ResultFile::OnFailure::keep);
    ResultFile b(discarded, "sdeflow.test", 1, {}, ResultFile::OnFailure::discard);
    a.file().write_tensor("rows", at::zeros({2}, at::kDouble));
    b.file().write_tensor("rows", at::zeros({2}, at::kDouble));
  }
  BOOST_TEST(!fs::exists(discarded));
  BOOST_TEST_REQUIRE(fs::exists(kept));
  BOOST_TEST(h5::File(kept, h5::Mode::read).attribute_int("complete") == 0);
  check_input_error([&] { ResultFile r((dir / "no" / "such" / "r.h5").string(), "sdeflow.test", 1, {}, ResultFile::OnFailure::discard); },
                    {"r.h5", "does not exist"});
  BOOST_TEST(!fs::exists(dir / "no"));
}

BOOST_AUTO_TEST_SUITE_END()
