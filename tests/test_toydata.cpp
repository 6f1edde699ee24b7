// Toy data sets (io/toy_data.hpp), `sdeflow data`, and the digits conversion (scripts/digits_to_hdf5.py).
// Every statistic is derived from the generator's definition in docs/datasets.md; with n = 20000 samples a
// sample mean must lie within 5 Monte-Carlo standard errors (the sample's own standard deviation / sqrt(n), or
// sqrt(p (1 - p) / n) for a fraction p) of its exact value.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <numbers>
#include <string>
#include <vector>

#include "core/device.hpp"
#include "core/error.hpp"
#include "io/data_file.hpp"
#include "io/h5.hpp"
#include "io/toy_data.hpp"
#include "support.hpp"

using sdeflow::test::run_cli;
namespace fs = std::filesystem;
using std::numbers::pi;

namespace {

constexpr int64_t kSamples = 20000;
constexpr double kStandardErrors = 5.0;

at::Tensor draw(const std::string& name, uint64_t seed = 1, int64_t n = kSamples) {
  at::Generator generator = sdeflow::make_generator(at::Device(at::kCPU), seed);
  return sdeflow::sample_toy_data(name, n, generator);
}

// The sample mean of `values` ([n]) is within 5 standard errors (+ `bias`, a known bound on the statistic's own
// bias) of `exact`; the standard error is the sample's standard deviation / sqrt(n).
void check_mean(const std::string& what, const at::Tensor& values, double exact, double bias = 0.0) {
  const double mean = values.mean().item<double>();
  const double se = values.std().item<double>() / std::sqrt(static_cast<double>(values.numel()));
  BOOST_TEST_MESSAGE(what << ": " << mean << " (exact " << exact << ", SE " << se << ")");
  BOOST_TEST(std::abs(mean - exact) <= kStandardErrors * se + bias,
             what << ": sample " << mean << ", exact " << exact << ", 5 SE = " << kStandardErrors * se);
}

// The fraction of `flags` ([n] bool) that are true is p within 5 sqrt(p (1 - p) / n).
void check_fraction(const std::string& what, const at::Tensor& flags, double p) {
  const double n = static_cast<double>(flags.numel());
  const double fraction = flags.to(at::kDouble).sum().item<double>() / n;
  const double se = std::sqrt(p * (1.0 - p) / n);
  BOOST_TEST(std::abs(fraction - p) <= kStandardErrors * se,
             what << ": fraction " << fraction << ", exact " << p << ", 5 SE = " << kStandardErrors * se);
}

struct Moments {
  double mean_x, mean_y, var_x, var_y, cov_xy;
};

// Means, variances and the covariance: E[x], and E[(x - mu)^2], E[(x - mu_x)(y - mu_y)] with the exact means
// mu, so that each is the mean of one statistic and has a plain standard error.
void check_moments(const std::string& name, const at::Tensor& x, const Moments& exact) {
  const at::Tensor a = x.select(1, 0) - exact.mean_x, b = x.select(1, 1) - exact.mean_y;
  check_mean(name + " mean x", x.select(1, 0), exact.mean_x);
  check_mean(name + " mean y", x.select(1, 1), exact.mean_y);
  check_mean(name + " var x", a * a, exact.var_x);
  check_mean(name + " var y", b * b, exact.var_y);
  check_mean(name + " cov xy", a * b, exact.cov_xy);
}

at::Tensor squared_norm(const at::Tensor& x) { return (x * x).sum(1); }

// Index of the nearest of `centers` ([K, 2]) to each row of x, and the squared distance to it.
std::pair<at::Tensor, at::Tensor> nearest(const at::Tensor& x, const at::Tensor& centers) {
  const at::Tensor d2 = (x.unsqueeze(1) - centers.unsqueeze(0)).pow(2).sum(2);
  const auto [value, index] = d2.min(1);
  return {index, value};
}

// Expectation of f(a, b) over a ~ N(1, 0.3^2), b ~ N(0, 0.1^2) by the trapezoidal rule on +-9 standard
// deviations (801 x 801 nodes), for the pinwheel's angular statistics.
template <typename F>
double pinwheel_expectation(F&& f) {
  const int nodes = 801;
  const double sa = 0.3, sb = 0.1, h = 18.0 / (nodes - 1);
  double total = 0.0, weight_sum = 0.0;
  for (int i = 0; i < nodes; ++i) {
    const double za = -9.0 + i * h;
    for (int j = 0; j < nodes; ++j) {
      const double zb = -9.0 + j * h;
      const double w = std::exp(-0.5 * (za * za + zb * zb));
      total += w * f(1.0 + sa * za, sb * zb);
      weight_sum += w;
    }
  }
  return total / weight_sum;
}

// The project environment's Python (SDEFLOW_PYTHON, set by CTest from the Python CMake found) with h5py, numpy
// and scikit-learn. Missing, the test that needs it fails: a check that silently skips claims what it never ran.
std::string required_python() {
  const char* python = std::getenv("SDEFLOW_PYTHON");
  BOOST_TEST_REQUIRE(python != nullptr, "SDEFLOW_PYTHON is not set (run the tests through ctest)");
  BOOST_TEST_REQUIRE(fs::exists(python), "SDEFLOW_PYTHON=" << python << " does not exist");
  const std::string probe = std::string("'") + python + "' -c 'import h5py, numpy, sklearn' 2>/dev/null";
  BOOST_TEST_REQUIRE(std::system(probe.c_str()) == 0,
                     python << " cannot import h5py, numpy and scikit-learn; scripts/install-deps.sh makes the environment");
  return python;
}

fs::path source_dir() {
  const char* dir = std::getenv("SDEFLOW_SOURCE_DIR");
  return dir != nullptr ? fs::path(dir) : fs::current_path();
}

}  // namespace

BOOST_AUTO_TEST_SUITE(toydata)

BOOST_AUTO_TEST_CASE(every_generator_returns_n_by_2_float64_and_is_seeded) {
  BOOST_TEST(sdeflow::toy_data_names().size() == 7u);
  for (const std::string& name : sdeflow::toy_data_names()) {
    BOOST_TEST(sdeflow::is_toy_data(name));
    const at::Tensor a = draw(name, 7, 1000), b = draw(name, 7, 1000), c = draw(name, 8, 1000);
    BOOST_TEST(a.sizes().vec() == (std::vector<int64_t>{1000, 2}), name);
    BOOST_TEST(a.scalar_type() == at::kDouble, name);
    BOOST_TEST(a.device().is_cpu(), name);
    BOOST_TEST(a.is_contiguous(), name);
    BOOST_TEST(at::isfinite(a).all().item<bool>(), name);
    BOOST_TEST(torch::equal(a, b), name << ": same seed, same samples");
    BOOST_TEST(!torch::equal(a, c), name << ": another seed, other samples");
    BOOST_TEST(draw(name, 7, 1).size(0) == 1, name);
  }
  BOOST_TEST(!sdeflow::is_toy_data("circles"));
  at::Generator generator = sdeflow::make_generator(at::Device(at::kCPU), 0);
  try {
    sdeflow::sample_toy_data("circles", 10, generator);
    BOOST_ERROR("expected InputError for an unknown name");
  } catch (const sdeflow::InputError& e) {
    const std::string message = e.what();
    BOOST_TEST(message.find("circles") != std::string::npos, message);
    for (const std::string& name : sdeflow::toy_data_names()) {
      BOOST_TEST(message.find(name) != std::string::npos, message);
    }
  }
  BOOST_CHECK_THROW(sdeflow::sample_toy_data("moons", 0, generator), sdeflow::InputError);
  BOOST_CHECK_THROW(sdeflow::sample_toy_data("moons", -3, generator), sdeflow::InputError);
}

BOOST_AUTO_TEST_CASE(checkerboard_fills_the_eight_black_squares_uniformly) {
  const at::Tensor x = draw("checkerboard");
  // Each coordinate uniform on [-4, 4): mean 0, variance 64 / 12; E[xy] = mean of the 8 square centres' products = 1.
  check_moments("checkerboard", x, {0.0, 0.0, 16.0 / 3.0, 16.0 / 3.0, 1.0});
  BOOST_TEST((x >= -4.0).all().item<bool>());
  BOOST_TEST((x < 4.0).all().item<bool>());
  // Square (i, j) = (floor(x / 2), floor(y / 2)): every point in a black square (i + j even), exactly.
  const at::Tensor cell = at::floor(x / 2.0).to(at::kLong);
  const at::Tensor i = cell.select(1, 0), j = cell.select(1, 1);
  BOOST_TEST(at::remainder(i + j, 2).eq(0).all().item<bool>());
  for (int64_t ci = -2; ci <= 1; ++ci) {
    for (int64_t cj = -2; cj <= 1; ++cj) {
      if ((ci + cj) % 2 != 0) continue;
      check_fraction("checkerboard square (" + std::to_string(ci) + ", " + std::to_string(cj) + ")",
                     i.eq(ci) & j.eq(cj), 1.0 / 8.0);
    }
  }
}

BOOST_AUTO_TEST_CASE(eight_gaussians_have_equal_weights_and_sigma) {
  const at::Tensor x = draw("8gaussians");
  const double radius = 2.0 * std::sqrt(2.0), sigma = std::sqrt(2.0) / 4.0;
  // Cov = (R^2 / 2 + sigma^2) I = (4 + 1/8) I.
  check_moments("8gaussians", x, {0.0, 0.0, 33.0 / 8.0, 33.0 / 8.0, 0.0});
  const at::Tensor angles = at::arange(8, at::TensorOptions().dtype(at::kDouble)) * (pi / 4.0);
  const at::Tensor centers = radius * at::stack({at::cos(angles), at::sin(angles)}, 1);
  const auto [index, d2] = nearest(x, centers);
  for (int64_t k = 0; k < 8; ++k) check_fraction("8gaussians component " + std::to_string(k), index.eq(k), 1.0 / 8.0);
  // |x - c_k|^2 ~ sigma^2 chi^2_2 about the generating centre: mean 2 sigma^2 = 1/4. The nearest centre is
  // another one for the ~0.2% of points past a bisector, which lowers the mean by ~9e-4 (docs/datasets.md).
  check_mean("8gaussians squared distance to the nearest centre", d2, 2.0 * sigma * sigma, 1.5e-3);
}

BOOST_AUTO_TEST_CASE(two_spirals_moments_and_extent) {
  const at::Tensor x = draw("2spirals");
  const double l = 3.0 * pi;
  check_moments("2spirals", x,
                {0.0, 0.0, (l * l / 4.0 + 0.75 + 2.0 / l + 1.0 / 12.0) / 9.0 + 0.01,
                 (l * l / 4.0 + 0.25 - 4.0 / (l * l) + 1.0 / 12.0) / 9.0 + 0.01,
                 (l / 2.0 + 1.0 / (4.0 * l) + 0.5 - 2.0 / (l * l) + 1.0 / 16.0) / 9.0});
  // Noise-free radius at most (3 pi + sqrt2 / 2) / 3; the noise's norm exceeds 0.6 (6 sigma) with probability e^-18.
  const double bound = (l + std::sqrt(2.0) / 2.0) / 3.0 + 0.6;
  BOOST_TEST(at::sqrt(squared_norm(x)).max().item<double>() <= bound);
  // theta^2 ~ U[0, (3 pi)^2]: the fraction of points with theta < 3 pi / 2 is 1/4 exactly; the offsets and the
  // noise move |3x| by at most sqrt2 / 2 + 3 * 0.6 from theta, which no point crosses past the bound below.
  const at::Tensor r3 = 3.0 * at::sqrt(squared_norm(x));
  const double se = std::sqrt(0.25 * 0.75 / kSamples);
  BOOST_TEST(r3.lt(l / 2.0 - 2.6).to(at::kDouble).mean().item<double>() <= 0.25 + kStandardErrors * se);
  BOOST_TEST(r3.lt(l / 2.0 + 2.6).to(at::kDouble).mean().item<double>() >= 0.25 - kStandardErrors * se);
}

BOOST_AUTO_TEST_CASE(moons_lie_on_two_interleaved_half_circles) {
  const at::Tensor x = draw("moons");
  check_moments("moons", x, {0.0, 0.3, 3.04, 2.29 - 4.0 / pi, 0.5 - 4.0 / pi});
  // Pre-scale coordinates m = (x + (1, 0.2)) / 2: A = |m|^2 - 1 vanishes on the outer circle, B = |m - (1, 1/2)|^2
  // - 1 on the inner one, so AB = 0 on the noise-free moons; with noise 0.1, E[AB] = s^2 (6.5 - 8/pi) + 8 s^4.
  const at::Tensor m = (x + at::tensor({1.0, 0.2}, at::TensorOptions().dtype(at::kDouble))) / 2.0;
  const at::Tensor a = squared_norm(m) - 1.0;
  const at::Tensor b = squared_norm(m - at::tensor({1.0, 0.5}, at::TensorOptions().dtype(at::kDouble))) - 1.0;
  check_mean("moons E[AB]", a * b, 0.01 * (6.5 - 8.0 / pi) + 8e-4);
  // A alone: 2 s^2 on the outer moon, E[|u|^2 - 1] + 2 s^2 = 1.25 - 2/pi + 2 s^2 on the inner one.
  check_mean("moons E[A]", a, 0.5 * 0.02 + 0.5 * (1.25 - 2.0 / pi + 0.02));
}

BOOST_AUTO_TEST_CASE(pinwheel_moments_and_five_fold_arms) {
  const at::Tensor x = draw("pinwheel");
  // E|x|^2 = 4 E[a^2 + b^2] = 4.4; five-fold symmetry makes the mean 0 and the covariance isotropic.
  check_moments("pinwheel", x, {0.0, 0.0, 2.2, 2.2, 0.0});
  // E|x|^4 = 16 E[(a^2 + b^2)^2] = 16 (1.5643 + 2 * 0.0109 + 0.0003).
  const at::Tensor r2 = squared_norm(x);
  check_mean("pinwheel E|x|^4", r2 * r2, 16.0 * (1.5643 + 2.0 * 0.0109 + 0.0003));
  // The arms: the polar angle is phi = -alpha + atan2(b, a), so 5 phi = 5 atan2(b, a) - 1.25 e^a (mod 2 pi).
  const at::Tensor phi = at::atan2(x.select(1, 1), x.select(1, 0));
  const auto five_phi = [](double a, double b) { return 5.0 * std::atan2(b, a) - 1.25 * std::exp(a); };
  const double cos5 = pinwheel_expectation([&](double a, double b) { return std::cos(five_phi(a, b)); });
  const double sin5 = pinwheel_expectation([&](double a, double b) { return std::sin(five_phi(a, b)); });
  check_mean("pinwheel E[cos 5 phi]", at::cos(5.0 * phi), cos5, 1e-3);
  check_mean("pinwheel E[sin 5 phi]", at::sin(5.0 * phi), sin5, 1e-3);
}

BOOST_AUTO_TEST_CASE(rings_have_equal_weights_and_radii) {
  const at::Tensor x = draw("rings");
  const std::vector<double> radii{0.75, 1.65, 2.4, 3.0};
  const double sigma = 0.08;
  double mean_r2 = 0.0;
  for (double r : radii) mean_r2 += r * r / 4.0;
  check_moments("rings", x, {0.0, 0.0, mean_r2 / 2.0 + sigma * sigma, mean_r2 / 2.0 + sigma * sigma, 0.0});
  const at::Tensor r = at::sqrt(squared_norm(x));
  const at::Tensor ring_radii = at::tensor(radii, at::TensorOptions().dtype(at::kDouble));
  const at::Tensor ring = (r.unsqueeze(1) - ring_radii.unsqueeze(0)).abs().argmin(1);
  for (size_t k = 0; k < radii.size(); ++k) {
    const at::Tensor on_ring = ring.eq(static_cast<int64_t>(k));
    check_fraction("rings ring " + std::to_string(k), on_ring, 0.25);
    // E[|R u + sigma Z|^2] = R^2 + 2 sigma^2 on each ring.
    check_mean("rings r^2 on ring " + std::to_string(k), (r * r).index({on_ring}),
               radii[k] * radii[k] + 2.0 * sigma * sigma);
  }
}

BOOST_AUTO_TEST_CASE(swissroll_moments_and_radial_law) {
  const at::Tensor x = draw("swissroll");
  const double pi2 = pi * pi;
  check_moments("swissroll", x,
                {0.4, 2.0 / (15.0 * pi), (4.875 * pi2 - 3.25) / 25.0, (4.875 * pi2 + 1.25 - 4.0 / (9.0 * pi2)) / 25.0,
                 (1.5 * pi - 4.0 / (3.0 * pi)) / 25.0});
  // With y = 5x = t (cos t, sin t) + Z, t ~ U[3pi/2, 9pi/2]: E|y|^4 = E[t^4] + 8 E[t^2] + 8.
  const double lo = 1.5 * pi, hi = 4.5 * pi;
  const double t2 = (std::pow(hi, 3) - std::pow(lo, 3)) / (3.0 * (hi - lo));
  const double t4 = (std::pow(hi, 5) - std::pow(lo, 5)) / (5.0 * (hi - lo));
  const at::Tensor y2 = squared_norm(5.0 * x);
  check_mean("swissroll E|5x|^4", y2 * y2, t4 + 8.0 * t2 + 8.0);
  check_mean("swissroll E|5x|^2", y2, t2 + 2.0);
}

// ---------------------------------------------------------------------------------------------------
// sdeflow data

BOOST_AUTO_TEST_CASE(cli_data_writes_a_toy_data_file) {
  const auto dir = sdeflow::test::scratch_dir("toydata_cli");
  const std::string a = (dir / "a.h5").string(), b = (dir / "b.h5").string(), c = (dir / "c.h5").string();
  const auto result = run_cli("data --name rings --n 500 --seed 4 --out " + a);
  BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
  BOOST_TEST(result.output.find("500 samples of rings") != std::string::npos, result.output);
  const sdeflow::DataFile file = sdeflow::load_data(a, 2);
  BOOST_TEST(file.data.sizes().vec() == (std::vector<int64_t>{500, 2}));
  BOOST_TEST(file.shape == std::vector<int64_t>{2}, boost::test_tools::per_element());
  BOOST_TEST(!file.integer);
  BOOST_TEST(file.name == "rings");
  BOOST_TEST(file.split == "train");
  BOOST_TEST(file.value_range.empty());
  BOOST_TEST(torch::equal(file.data, draw("rings", 4, 500)), "the file holds sample_toy_data's samples");

  BOOST_TEST_REQUIRE(run_cli("data --name rings --n 500 --seed 4 --split test --out " + b).exit_status == 0);
  const sdeflow::DataFile same = sdeflow::load_data(b);
  BOOST_TEST(torch::equal(same.data, file.data));
  BOOST_TEST(same.split == "test");
  BOOST_TEST_REQUIRE(run_cli("data --name rings --n 500 --seed 5 --out " + c).exit_status == 0);
  BOOST_TEST(!torch::equal(sdeflow::load_data(c).data, file.data));
}

BOOST_AUTO_TEST_CASE(cli_data_rejects_bad_input) {
  const auto dir = sdeflow::test::scratch_dir("toydata_cli_bad");
  const fs::path out = dir / "out.h5";
  const std::string o = " --out " + out.string();
  sdeflow::test::expect_input_error("data --name circles --n 10" + o, "circles", out);
  sdeflow::test::expect_input_error("data --name circles --n 10" + o, "checkerboard, 8gaussians", out);
  sdeflow::test::expect_input_error("data --name moons --n 0" + o, "--n", out);
  sdeflow::test::expect_input_error("data --name moons --n -5" + o, "--n", out);
  sdeflow::test::expect_input_error("data --name moons --n 10 --split valid" + o, "--split", out);
  sdeflow::test::expect_input_error("data --name moons --n 10 --out ''", "--out", out);
  sdeflow::test::expect_input_error("data --n 10" + o, "--name", out);
  const auto once = run_cli("data --name circles --n 10" + o);
  int lines = 0;
  for (char ch : once.output) lines += ch == '\n';
  BOOST_TEST(lines == 1, "one message: " << once.output);
}

// ---------------------------------------------------------------------------------------------------
// scripts/digits_to_hdf5.py

BOOST_AUTO_TEST_CASE(digits_conversion_round_trips_through_load_data) {
  const std::string python = required_python();
  const auto dir = sdeflow::test::scratch_dir("toydata_digits");
  const fs::path script = source_dir() / "scripts" / "digits_to_hdf5.py";
  BOOST_TEST_REQUIRE(fs::exists(script), script.string());
  const std::string command = "'" + python + "' '" + script.string() + "' --out-dir '" + dir.string() + "' 2>&1";
  std::FILE* pipe = ::popen(command.c_str(), "r");
  BOOST_TEST_REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = ::pclose(pipe);
  BOOST_TEST_REQUIRE(status == 0, output);
  BOOST_TEST_MESSAGE(output);
  double pixel_sum = -1.0, row_signature = -1.0;
  if (const auto at = output.find("pixel_sum "); at != std::string::npos) pixel_sum = std::stod(output.substr(at + 10));
  if (const auto at = output.find("row_signature "); at != std::string::npos) {
    row_signature = std::stod(output.substr(at + 14));
  }

  std::map<std::string, int64_t> rows{{"train", 1437}, {"test", 360}};
  double sum = 0.0, signature = 0.0;
  const at::Tensor weights = at::arange(1, 65, at::TensorOptions().dtype(at::kDouble));
  for (const auto& [split, expected_rows] : rows) {
    const std::string path = (dir / ("digits-" + split + ".h5")).string();
    const sdeflow::DataFile file = sdeflow::load_data(path, 64);
    BOOST_TEST(file.data.sizes().vec() == (std::vector<int64_t>{expected_rows, 64}), split);
    BOOST_TEST(file.shape == (std::vector<int64_t>{1, 8, 8}), boost::test_tools::per_element());
    BOOST_TEST(file.integer);
    BOOST_TEST(file.name == "digits");
    BOOST_TEST(file.split == split);
    BOOST_TEST(file.value_range == (std::vector<double>{0.0, 16.0}), boost::test_tools::per_element());
    BOOST_TEST(file.data.min().item<double>() >= 0.0);
    BOOST_TEST(file.data.max().item<double>() <= 16.0);
    BOOST_TEST(torch::equal(file.data, at::round(file.data)));
    sdeflow::h5::File raw(path, sdeflow::h5::Mode::read);
    BOOST_TEST(raw.dataset_type_name("data") == "uint8");
    BOOST_TEST(raw.attribute_int("levels") == 17);
    BOOST_TEST(raw.attribute_int("version") == 1);
    BOOST_TEST(raw.attribute_string("format") == "sdeflow.data");
    const at::Tensor labels = raw.read_tensor("labels");
    BOOST_TEST(labels.scalar_type() == at::kLong);
    BOOST_TEST(labels.numel() == expected_rows);
    BOOST_TEST((labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() <= 9));
    sum += file.data.sum().item<double>();
    signature += file.data.matmul(weights).pow(2).sum().item<double>();
  }
  // train + test is sklearn's data set as a multiset of images (order-free checksums computed by the script).
  BOOST_TEST(sum == pixel_sum);
  BOOST_TEST(signature == row_signature);
  BOOST_TEST(pixel_sum > 0.0);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  BOOST_TEST(names.size() == 2u, "no temporary files left");
}

BOOST_AUTO_TEST_SUITE_END()
