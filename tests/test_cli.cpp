// Tests of the sdeflow CLI as a user runs it: sample and info on good input, the trajectory dump and the
// killed-run property, TOML config files, determinism, and every handled bad input (exit status 2, one
// message naming the problem, no output file left behind).
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "io/h5.hpp"
#include "io/model_file.hpp"
#include "support.hpp"

using namespace sdeflow;
using sdeflow::test::run_cli;
namespace fs = std::filesystem;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

// Writes a model file by hand so that each field can be made wrong on purpose.
struct ModelSpec {
  std::string format = "sdeflow.model";
  int64_t version = 1;
  std::string kind = "gmm";
  std::string process = "vp";
  double beta_max = 20.0;
  at::Tensor weights = at::tensor({0.6, 0.4}, f64);
  at::Tensor means = at::tensor({-1.0, 0.0, 1.0, 0.5}, f64).reshape({2, 2});
  at::Tensor covariances = at::tensor({0.2, 0.0, 0.0, 0.2, 0.1, 0.02, 0.02, 0.1}, f64).reshape({2, 2, 2});
};

std::string write_model(const fs::path& path, const ModelSpec& spec) {
  h5::File file(path.string(), h5::Mode::create);
  file.set_attribute("format", spec.format);
  file.set_attribute("version", spec.version);
  file.set_attribute("kind", spec.kind);
  const auto process = file.create_group("process");
  process.set_attribute("name", spec.process);
  process.set_attribute("beta_max", spec.beta_max);
  const auto gmm = file.create_group("gmm");
  gmm.write_tensor("weights", spec.weights);
  gmm.write_tensor("means", spec.means);
  gmm.write_tensor("covariances", spec.covariances);
  return path.string();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(cli)

BOOST_AUTO_TEST_CASE(sample_writes_samples_and_a_trajectory) {
  const auto dir = test::scratch_dir("cli_sample");
  const auto out = (dir / "out.h5").string();
  const auto result = run_cli("sample --n 200 --steps 20 --save-every 5 --seed 3 --out " + out);
  BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
  BOOST_TEST(result.output.find("component fractions") != std::string::npos);
  h5::File file(out, h5::Mode::read);
  BOOST_TEST(file.attribute_string("format") == "sdeflow.samples");
  BOOST_TEST(file.attribute_int("complete") == 1);
  BOOST_TEST(file.attribute_string("solver") == "em");
  BOOST_TEST(file.attribute_string("seed") == "3");
  BOOST_TEST(file.attribute_string("command_line").find("--save-every 5") != std::string::npos);
  BOOST_TEST(file.dataset_shape("samples") == std::vector<int64_t>({200, 2}), boost::test_tools::per_element());
  const auto trajectory = file.group("trajectory");
  // x_T, after steps 5, 10, 15, and the result at eps.
  BOOST_TEST(trajectory.dataset_shape("x") == std::vector<int64_t>({5, 200, 2}), boost::test_tools::per_element());
  const auto t = trajectory.read_tensor("t");
  BOOST_TEST(t[0].item<double>() == 1.0);
  BOOST_TEST(t[4].item<double>() == 1e-3, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(t[2].item<double>() == 1.0 - 10 * (1.0 - 1e-3) / 20, boost::test_tools::tolerance(1e-12));
  const auto last = trajectory.read_tensor("x").select(0, 4);
  BOOST_TEST(at::equal(last, file.read_tensor("samples")));
}

BOOST_AUTO_TEST_CASE(same_seed_gives_identical_files_and_config_files_are_read) {
  const auto dir = test::scratch_dir("cli_seed");
  const auto a = (dir / "a.h5").string(), b = (dir / "b.h5").string();
  BOOST_TEST_REQUIRE(run_cli("sample --solver pc --n 50 --steps 10 --seed 9 --out " + a).exit_status == 0);
  BOOST_TEST_REQUIRE(run_cli("sample --solver pc --n 50 --steps 10 --seed 9 --out " + b).exit_status == 0);
  BOOST_TEST(at::equal(h5::File(a, h5::Mode::read).read_tensor("samples"), h5::File(b, h5::Mode::read).read_tensor("samples")));

  const auto config = dir / "run.toml";
  std::ofstream(config) << "[sample]\nn = 40\nsteps = 8\nsolver = \"heun\"\n";
  const auto c = (dir / "c.h5").string();
  BOOST_TEST_REQUIRE(run_cli("sample --config " + config.string() + " --out " + c).exit_status == 0);
  h5::File from_config(c, h5::Mode::read);
  BOOST_TEST(from_config.dataset_shape("samples")[0] == 40);
  BOOST_TEST(from_config.attribute_string("solver") == "heun");
  const auto d = (dir / "d.h5").string();
  BOOST_TEST_REQUIRE(run_cli("sample --config " + config.string() + " --n 30 --out " + d).exit_status == 0);
  BOOST_TEST(h5::File(d, h5::Mode::read).dataset_shape("samples")[0] == 30);   // the command line wins
}

BOOST_AUTO_TEST_CASE(a_killed_run_leaves_every_completed_save) {
  const auto dir = test::scratch_dir("cli_killed");
  const auto out = (dir / "killed.h5").string();
  const auto result = run_cli("sample --n 100 --steps 50 --save-every 5 --out " + out, "SDEFLOW_TEST_KILL_AFTER_SAVES=3");
  BOOST_TEST(result.exit_status == 128 + 9, result.output);   // SIGKILL
  h5::File file(out, h5::Mode::read);
  BOOST_TEST(file.attribute_int("complete") == 0);
  BOOST_TEST(!file.has("samples"));
  const auto x = file.group("trajectory").read_tensor("x");
  BOOST_TEST(x.size(0) == 3);
  BOOST_TEST(at::isfinite(x).all().item<bool>());
  const auto info = run_cli("info " + out);
  BOOST_TEST(info.output.find("INCOMPLETE") != std::string::npos);
}

BOOST_AUTO_TEST_CASE(info_describes_models_and_samples) {
  const auto dir = test::scratch_dir("cli_info");
  const auto model = write_model(dir / "model.h5", ModelSpec{});
  const auto result = run_cli("info " + model);
  BOOST_TEST(result.exit_status == 0, result.output);
  BOOST_TEST(result.output.find("kind gmm") != std::string::npos, result.output);
  BOOST_TEST(result.output.find("K = 2 components, D = 2") != std::string::npos, result.output);
  BOOST_TEST(result.output.find("/gmm/covariances  float64 [2, 2, 2]") != std::string::npos, result.output);
  // The model also samples, on its own process.
  const auto out = (dir / "s.h5").string();
  BOOST_TEST(run_cli("sample --model " + model + " --solver rk4 --steps 20 --n 10 --out " + out).exit_status == 0);
  BOOST_TEST(h5::File(out, h5::Mode::read).attribute_string("model") == model);
}

BOOST_AUTO_TEST_CASE(round_trip_through_the_library_writer) {
  const auto dir = test::scratch_dir("cli_roundtrip");
  const auto builtin = builtin_model("gmm2d");
  const auto path = (dir / "builtin.h5").string();
  save_gmm_model(path, builtin->process(), builtin->mixture());
  const auto loaded = load_model(path);
  BOOST_TEST(loaded->kind() == "gmm");
  BOOST_TEST(loaded->process()->name() == "vp");
  BOOST_TEST_REQUIRE(loaded->exact_mixture() != nullptr);
  BOOST_TEST(at::equal(loaded->exact_mixture()->covariances(), builtin->mixture()->covariances()));
  BOOST_TEST(loaded->process()->parameters() == builtin->process()->parameters());
  BOOST_TEST(!loaded->data_scaling().has_value());
}

BOOST_AUTO_TEST_CASE(bad_input_gives_exit_status_two_and_a_named_problem) {
  const auto dir = test::scratch_dir("cli_bad");
  const auto out = dir / "out.h5";
  const auto o = " --out " + out.string();
  const auto good = write_model(dir / "good.h5", ModelSpec{});

  test::expect_input_error("sample --model " + (dir / "missing.h5").string() + o, "no such file", out);
  std::ofstream(dir / "text.h5") << "this is not HDF5\n";
  test::expect_input_error("sample --model " + (dir / "text.h5").string() + o, "not an HDF5 file", out);

  ModelSpec spec;
  spec.format = "something.else";
  test::expect_input_error("sample --model " + write_model(dir / "format.h5", spec) + o, "format is 'something.else'", out);
  spec = {};
  spec.version = 7;
  test::expect_input_error("sample --model " + write_model(dir / "version.h5", spec) + o, "unsupported version 7", out);
  spec = {};
  spec.kind = "flow";
  test::expect_input_error("sample --model " + write_model(dir / "kind.h5", spec) + o, "unknown model kind 'flow'", out);
  spec.kind = "network";   // a mixture file that claims to be a network: its /network group is named
  test::expect_input_error("sample --model " + write_model(dir / "kind.h5", spec) + o, "kind.h5:/network: no such group", out);
  spec = {};
  spec.process = "langevin";
  test::expect_input_error("sample --model " + write_model(dir / "process.h5", spec) + o, "unknown process 'langevin'", out);
  spec = {};
  spec.beta_max = std::nan("");
  test::expect_input_error("sample --model " + write_model(dir / "nanparam.h5", spec) + o, "not finite", out);
  spec = {};
  spec.covariances = at::ones({2, 3, 3}, f64);
  test::expect_input_error("sample --model " + write_model(dir / "shape.h5", spec) + o, "/gmm/covariances: expected shape", out);
  spec = {};
  spec.covariances = at::tensor({1.0, 0.5, 0.5, 0.1, 1.0, 0.0, 0.0, 1.0}, f64).reshape({2, 2, 2});
  test::expect_input_error("sample --model " + write_model(dir / "spd.h5", spec) + o, "not positive-definite", out);
  spec = {};
  spec.covariances = at::tensor({1.0, 0.5, 0.2, 1.0, 1.0, 0.0, 0.0, 1.0}, f64).reshape({2, 2, 2});
  test::expect_input_error("sample --model " + write_model(dir / "sym.h5", spec) + o, "not symmetric", out);
  spec = {};
  spec.weights = at::tensor({1.2, -0.2}, f64);
  test::expect_input_error("sample --model " + write_model(dir / "negative.h5", spec) + o, "non-negative", out);
  spec = {};
  spec.weights = at::tensor({0.5, 0.6}, f64);
  test::expect_input_error("sample --model " + write_model(dir / "sum.h5", spec) + o, "sum to 1", out);
  spec = {};
  spec.means = at::tensor({std::nan(""), 0.0, 1.0, 0.5}, f64).reshape({2, 2});
  test::expect_input_error("sample --model " + write_model(dir / "nan.h5", spec) + o, "means: contains NaN or Inf", out);
  spec = {};
  spec.weights = at::tensor({0.6, 0.4}, f64).to(at::kInt);
  test::expect_input_error("sample --model " + write_model(dir / "dtype.h5", spec) + o, "/gmm/weights", out);

  test::expect_input_error("sample --model " + good + " --solver dopri8" + o, "unknown solver 'dopri8'", out);
  test::expect_input_error("sample --model " + good + " --steps 0" + o, "--steps must be positive", out);
  test::expect_input_error("sample --model " + good + " --steps -3" + o, "--steps must be positive", out);
  test::expect_input_error("sample --model " + good + " --n 0" + o, "--n must be positive", out);
  test::expect_input_error("sample --model " + good + " --n -5" + o, "--n must be positive", out);
  test::expect_input_error("sample --model " + good + " --dtype float16" + o, "--dtype float16", out);
  test::expect_input_error("sample --model " + good + " --solver pc --snr -1" + o, "--snr", out);
  test::expect_input_error("sample --model " + good + " --save-every -1" + o, "--save-every", out);
  test::expect_input_error("sample --model builtin:nothing" + o, "unknown built-in model", out);
  test::expect_input_error("sample --steps many" + o, "--steps", out);
  test::expect_input_error("sample --no-such-option 1" + o, "no-such-option", out);
  test::expect_input_error("info " + (dir / "missing.h5").string(), "no such file", out);
  test::expect_input_error("sample --config " + (dir / "missing.toml").string() + o, "missing.toml", out);
  std::ofstream(dir / "bogus.toml") << "[sample]\nbogus = 3\n";
  test::expect_input_error("sample --config " + (dir / "bogus.toml").string() + o, "bogus", out);
  if (!torch::cuda::is_available()) test::expect_input_error("sample --device cuda" + o, "no CUDA device", out);
}

BOOST_AUTO_TEST_CASE(trajectory_is_readable_with_h5py) {
  // The project's Python is required (tests/CMakeLists.txt finds it and passes SDEFLOW_PYTHON to every suite):
  // without it this check fails instead of passing unrun.
  const char* python = std::getenv("SDEFLOW_PYTHON");
  BOOST_TEST_REQUIRE(python != nullptr, "SDEFLOW_PYTHON is not set; run the suite through ctest");
  BOOST_TEST_REQUIRE(fs::exists(python), "SDEFLOW_PYTHON=" << python << " does not exist");
  BOOST_TEST_REQUIRE(std::system((std::string("'") + python + "' -c 'import h5py'").c_str()) == 0,
                     python << " cannot import h5py; scripts/install-deps.sh makes the environment");
  const auto dir = test::scratch_dir("cli_h5py");
  const auto out = (dir / "t.h5").string();
  BOOST_TEST_REQUIRE(run_cli("sample --n 30 --steps 10 --save-every 2 --out " + out).exit_status == 0);
  const std::string script =
      "import h5py, numpy as np, sys\n"
      "f = h5py.File(sys.argv[1], 'r')\n"
      "x = f['trajectory/x'][...]; t = f['trajectory/t'][...]\n"
      "assert x.shape == (6, 30, 2), x.shape\n"
      "assert np.all(np.diff(t) < 0)\n"
      "assert np.array_equal(x[-1], f['samples'][...])\n"
      "assert int(f.attrs['complete']) == 1 and f.attrs['format'] in (b'sdeflow.samples', 'sdeflow.samples')\n"
      "print('h5py ok')\n";
  std::ofstream(dir / "check.py") << script;
  const auto status = std::system(("'" + std::string(python) + "' " + (dir / "check.py").string() + " " + out).c_str());
  BOOST_TEST(status == 0);
}

BOOST_AUTO_TEST_SUITE_END()
