// Tests of `sdeflow nll` as a user runs it: a good run writes every row and the summary and its NLL matches
// the exact mixture density; failed rows are reported with exit status 1; every handled bad input gives
// exit status 2, one message naming the problem, and no output file.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "io/data_file.hpp"
#include "io/model_file.hpp"
#include "io/nll_file.hpp"
#include "support.hpp"

using namespace sdeflow;
using sdeflow::test::run_cli;
namespace fs = std::filesystem;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

}  // namespace

BOOST_AUTO_TEST_SUITE(nll_cli)

BOOST_AUTO_TEST_CASE(nll_of_mixture_samples_matches_the_exact_density) {
  const auto dir = test::scratch_dir("nll_good");
  const auto model = builtin_model("gmm2d");
  auto generator = at::detail::createCPUGenerator(4);
  const auto x = model.mixture->sample(300, generator, f64).first;
  const auto data = (dir / "data.h5").string();
  save_data(data, x);
  const auto out = (dir / "nll.h5").string();
  const auto result = run_cli("nll --data " + data + " --solver dopri5 --rtol 1e-8 --atol 1e-8 --trace exact "
                              "--prior exact --eps 1e-8 --batch 128 --out " + out);
  BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
  BOOST_TEST(result.output.find("bits/dim") != std::string::npos);
  const auto file = read_nll_file(out);
  BOOST_TEST(file.complete);
  BOOST_TEST(file.rows == 300);
  BOOST_TEST((file.status == 0).all().item<bool>());
  const auto exact = -model.mixture->log_prob(x);
  BOOST_TEST((file.nll - exact).abs().max().item<double>() <= 1e-4);
  BOOST_TEST((file.bpd - file.nll / (2 * std::log(2.0))).abs().max().item<double>() <= 1e-12);
  BOOST_TEST(file.summary.at("nll_mean") == exact.mean().item<double>(), boost::test_tools::tolerance(1e-5));
  BOOST_TEST(file.summary.at("failures") == 0.0);
  BOOST_TEST(file.summary.at("nfe_mean") > 0.0);
  BOOST_TEST(file.attributes.at("solver") == "dopri5");
  BOOST_TEST(file.attributes.at("trace") == "exact");

  // Every solver family through the CLI, with the standard prior (the prior mismatch is part of the NLL,
  // about 1e-2 nats here, so the comparison allows it).
  for (const std::string solver : {"dopri5-shared", "cvode-adams", "arkode-dp", "rk4"}) {
    const auto other = (dir / ("nll-" + solver + ".h5")).string();
    const auto r = run_cli("nll --data " + data + " --solver " + solver + " --steps 200 --rtol 1e-6 --atol 1e-6 "
                           "--trace analytic --out " + other + " --quiet");
    BOOST_TEST_REQUIRE(r.exit_status == 0, solver << ": " << r.output);
    const auto f = read_nll_file(other);
    BOOST_TEST((f.nll - exact).abs().mean().item<double>() <= 0.05, solver);
  }
}

BOOST_AUTO_TEST_CASE(failed_rows_are_reported) {
  const auto dir = test::scratch_dir("nll_fail");
  const auto data = (dir / "data.h5").string();
  save_data(data, at::tensor({0.1, 0.2, -1.0, 0.5, 2.0, -0.3}, f64).reshape({3, 2}));
  const auto out = (dir / "nll.h5").string();
  const auto result = run_cli("nll --data " + data + " --max-steps 5 --out " + out);
  BOOST_TEST(result.exit_status == 1, result.output);
  BOOST_TEST(result.output.find("3 of 3 rows failed") != std::string::npos, result.output);
  const auto file = read_nll_file(out);
  BOOST_TEST(file.complete);
  BOOST_TEST((file.status == 1).all().item<bool>());
  BOOST_TEST(at::isnan(file.nll).all().item<bool>());
}

BOOST_AUTO_TEST_CASE(bad_input_gives_status_two_and_no_output) {
  const auto dir = test::scratch_dir("nll_bad");
  const auto good = (dir / "good.h5").string();
  save_data(good, at::zeros({4, 2}, f64));
  const auto wrong_dim = (dir / "wrong_dim.h5").string();
  save_data(wrong_dim, at::zeros({4, 3}, f64));
  const auto with_nan = (dir / "nan.h5").string();
  auto bad = at::zeros({20, 2}, f64);
  bad[17][1] = std::nan("");
  save_data(with_nan, bad);
  const auto integers = (dir / "integers.h5").string();
  save_data(integers, at::full({3, 2}, 300, at::TensorOptions().dtype(at::kLong)));
  const auto text = (dir / "text.h5").string();
  std::ofstream(text) << "not hdf5";
  const auto out = (dir / "out.h5");
  const auto o = " --out " + out.string();
  test::expect_input_error("nll --data " + wrong_dim + o, "rows have dimension 3 but the model has dimension 2", out);
  test::expect_input_error("nll --data " + with_nan + o, "row 17 is not finite", out);
  test::expect_input_error("nll --data " + (dir / "missing.h5").string() + o, "missing.h5", out);
  test::expect_input_error("nll --data " + text + o, "text.h5", out);
  test::expect_input_error("nll --data " + integers + o, "integer data must lie in {0, ..., 255}: row 0", out);
  test::expect_input_error("nll --data " + good + " --rtol 0" + o, "rtol must be positive", out);
  test::expect_input_error("nll --data " + good + " --atol -1" + o, "atol must be positive", out);
  test::expect_input_error("nll --data " + good + " --trace hutchinson-gauss --probes 0" + o, "probes must be positive", out);
  test::expect_input_error("nll --data " + good + " --eps 0" + o, "eps must lie in (0, T)", out);
  test::expect_input_error("nll --data " + good + " --eps 1.5" + o, "eps must lie in (0, T)", out);
  test::expect_input_error("nll --data " + good + " --solver rk45" + o, "unknown ODE solver 'rk45'", out);
  test::expect_input_error("nll --data " + good + " --trace approx" + o, "unknown trace estimator 'approx'", out);
  test::expect_input_error("nll --data " + good + " --prior flat" + o, "unknown prior 'flat'", out);
  test::expect_input_error("nll --data " + good + " --batch 0" + o, "--batch must be positive", out);
  test::expect_input_error("nll --data " + good + " --solver rk4 --steps 0" + o, "number of steps must be positive", out);
  test::expect_input_error("nll --data " + good + " --max-steps 0" + o, "max-steps must be positive", out);
  test::expect_input_error("nll --data " + good + " --dequant-samples 4" + o, "integer data only", out);
  test::expect_input_error("nll --data " + good + " --scale 0" + o, "data scale must be finite and non-zero", out);
  test::expect_input_error("nll" + o, "--data", out);
}

BOOST_AUTO_TEST_SUITE_END()
