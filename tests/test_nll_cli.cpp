// Tests of `sdeflow nll` as a user runs it: a good run writes every row and the summary and its NLL matches
// the exact mixture density; failed rows are reported with exit status 1; every handled bad input gives
// exit status 2, one message naming the problem, and no output file.
#include <boost/test/unit_test.hpp>

#include <torch/torch.h>

#include <cmath>
#include <cstdio>
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
  const auto x = model->mixture()->sample(300, generator, f64).first;
  const auto data = (dir / "data.h5").string();
  save_data(data, x);
  // dopri5 at rtol = atol = tol for tol = 1e-5 and 1e-8, exact trace, exact prior, eps = 1e-8 (p_eps = p_0 to
  // ~1e-8): the error of each row against the exact -log p_0 is bounded by the sum of the local errors the
  // controller admits, accepted steps x sqrt(D + 1) x tol x (1 + |log p|) (each accepted step has an RMS scaled
  // error estimate <= 1 over the D + 1 components, so the log-density component's local error is at most
  // sqrt(D + 1) (atol + rtol |y|); steps = NFE / 6 for the FSAL Dormand-Prince pair; propagation of earlier errors
  // is neglected: the probability-flow ODE of this mixture does not amplify them over [eps, T]). That bound is
  // proportional to tol, and the error must shrink with it: the fitted exponent q of max error ~ tol^q over the
  // three decades is at least 0.7 (local extrapolation makes dopri5 tolerance-proportional, q = 1; measured 1.07, with
  // max error / bound 0.20 at 1e-5 and 0.027 at 1e-8).
  const auto exact = -model->mixture()->log_prob(x);
  std::vector<double> tolerances = {1e-5, 1e-8}, max_errors;
  for (double tol : tolerances) {
    char tol_text[16];
    std::snprintf(tol_text, sizeof tol_text, "%g", tol);
    const auto out = (dir / ("nll-" + std::string(tol_text) + ".h5")).string();
    const auto result = run_cli("nll --data " + data + " --solver dopri5 --rtol " + tol_text + " --atol " + tol_text +
                                " --trace exact --prior exact --eps 1e-8 --batch 128 --out " + out);
    BOOST_TEST_REQUIRE(result.exit_status == 0, result.output);
    BOOST_TEST(result.output.find("bits/dim") != std::string::npos);
    const auto file = read_nll_file(out);
    BOOST_TEST(file.complete);
    BOOST_TEST(file.rows == 300);
    BOOST_TEST((file.status == 0).all().item<bool>());
    const auto error = (file.nll - exact).abs();
    const auto bound = file.nfe.to(at::kDouble) / 6 * std::sqrt(3.0) * tol * (1 + exact.abs());
    max_errors.push_back(error.max().item<double>());
    BOOST_TEST_MESSAGE("dopri5 tol " << tol << ": max |NLL - exact| " << max_errors.back() << ", max error / bound "
                       << (error / bound).max().item<double>() << ", mean NFE " << file.summary.at("nfe_mean"));
    BOOST_TEST((error <= bound).all().item<bool>(), "tol " << tol);
    BOOST_TEST((file.bpd - file.nll / (2 * std::log(2.0))).abs().max().item<double>() <= 1e-12);
    BOOST_TEST(std::abs(file.summary.at("nll_mean") - exact.mean().item<double>()) <= bound.mean().item<double>());
    BOOST_TEST(file.summary.at("failures") == 0.0);
    BOOST_TEST(file.summary.at("nfe_mean") > 0.0);
    BOOST_TEST(file.attributes.at("solver") == "dopri5");
    BOOST_TEST(file.attributes.at("trace") == "exact");
  }
  const double q = std::log(max_errors[0] / max_errors[1]) / std::log(tolerances[0] / tolerances[1]);
  BOOST_TEST_MESSAGE("error ~ tol^q with q = " << q);
  BOOST_TEST(q >= 0.7);

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

BOOST_AUTO_TEST_CASE(scale_shift_float32_shared_steps_and_dequantisation) {
  // The options of `nll` that change what is computed, each against an exact value (the built-in mixture, analytic
  // trace, exact prior, eps = 1e-8; tolerance bound per row as in the test above: NFE / evaluations-per-step x
  // sqrt(D + 1) x tol x (1 + |log p|)).
  const auto dir = test::scratch_dir("nll_options");
  const auto model = builtin_model("gmm2d");
  auto generator = at::detail::createCPUGenerator(8);
  const auto x = model->mixture()->sample(200, generator, f64).first;
  const auto exact = -model->mixture()->log_prob(x);
  const std::string common = " --trace analytic --prior exact --eps 1e-8 --quiet";
  auto run = [&](const std::string& name, const at::Tensor& data, const std::string& options) {
    const auto data_path = (dir / (name + "-data.h5")).string(), out = (dir / (name + ".h5")).string();
    save_data(data_path, data);
    const auto r = run_cli("nll --data " + data_path + " " + options + common + " --out " + out);
    BOOST_TEST_REQUIRE(r.exit_status == 0, name << ": " << r.output);
    return read_nll_file(out);
  };
  auto bound = [&](const NllFile& f, double tol, double evaluations_per_step) {
    return f.nfe.to(at::kDouble) / evaluations_per_step * std::sqrt(3.0) * tol * (1 + exact.abs());
  };

  // --scale / --shift: data u = (x - 0.5) / 2 mapped back by x = 2 u + 0.5, so -log p_u(u) = -log p(x) - 2 log 2.
  {
    const auto f = run("scaled", (x - 0.5) / 2, "--scale 2 --shift 0.5 --rtol 1e-7 --atol 1e-7");
    const auto error = (f.nll - (exact - 2 * std::log(2.0))).abs();
    BOOST_TEST_MESSAGE("--scale 2 --shift 0.5: max error " << error.max().item<double>());
    BOOST_TEST((error <= bound(f, 1e-7, 6)).all().item<bool>());
    BOOST_TEST(f.attributes.at("shift") == "0.500000");
  }
  // bosh3-shared (one step size for the batch; Bogacki-Shampine, FSAL, 3 evaluations per step) at 1e-7.
  {
    const auto f = run("bosh3", x, "--solver bosh3-shared --rtol 1e-7 --atol 1e-7");
    const auto error = (f.nll - exact).abs();
    BOOST_TEST_MESSAGE("bosh3-shared: max error " << error.max().item<double>() << ", NFE " << f.summary.at("nfe_mean"));
    BOOST_TEST((error <= bound(f, 1e-7, 3)).all().item<bool>());
    BOOST_TEST((f.nfe == f.nfe[0]).all().item<bool>());   // shared steps: every row the same evaluations
  }
  // --dtype float32 at 1e-5: the tolerance bound plus float32 rounding, at most a few units of 2^-24 of
  // (1 + |log p|) per evaluation (7 stages per step), accumulated over the NFE.
  {
    const auto f = run("float32", x, "--dtype float32 --rtol 1e-5 --atol 1e-5");
    const auto error = (f.nll - exact).abs();
    const auto rounding = f.nfe.to(at::kDouble) * 4 * std::ldexp(1.0, -24) * (1 + exact.abs());
    BOOST_TEST_MESSAGE("float32: max error " << error.max().item<double>() << ", max error / bound "
                       << (error / (bound(f, 1e-5, 6) + rounding)).max().item<double>());
    BOOST_TEST((error <= bound(f, 1e-5, 6) + rounding).all().item<bool>());
    BOOST_TEST(f.attributes.at("dtype") == "float32");
  }
  // Integer data with --levels 8 --scale 4 --shift -2: cell x in {0..7}^2 covers [x/2 - 2, x/2 - 1.5)^2 in model
  // space and P(x) = int_cell p. Its exact value by a 100 x 100 midpoint rule (relative error h^2/24 |p''/p|, below
  // 1e-4 here). With K uniform dequantisation samples, the importance-weighted NLL is an upper bound whose mean
  // gap to -log P shrinks like 1/K (Burda et al.: gap_K ~ Var(w) / (2 K E[w]^2)); with K = 1 it is the
  // Jensen gap. Asserted: the K = 1 and K = 16 mean gaps are >= -4 SE (upper bounds), the K = 16 gap is at most
  // 2 gap_1 / 16 + 4 SE (the 1/K law with its second-order term allowed a factor 2), and the spread over rows of
  // the per-row gap falls like 1/K too (delta method: Var(-log mean_K w) ~ Var(w) / (K E[w]^2)): the variance
  // ratio K = 1 : K = 16 lies in 16 x [1/2, 2] (an F(199, 199) ratio lies in [0.63, 1.58] with probability 0.999;
  // the rest is the delta method's higher-order terms). Measured: gaps 0.16 +- 0.05 and 0.004 +- 0.011, ratio 18.
  {
    const auto cells = at::clamp(at::floor((x + 2) * 2), 0, 7);
    const auto integers = cells.to(at::kLong);
    const int64_t m = 100;
    const auto offsets = (at::arange(m, f64) + 0.5) / m * 0.5;
    const auto mesh = at::meshgrid({offsets, offsets}, "ij");
    const auto grid = at::stack({mesh[0].flatten(), mesh[1].flatten()}, 1);   // [m^2, 2] inside one cell
    std::vector<double> log_cell;
    for (int64_t i = 0; i < cells.size(0); ++i) {
      const auto corner = cells[i] / 2 - 2;
      const auto log_p = model->mixture()->log_prob(grid + corner);
      log_cell.push_back((at::logsumexp(log_p, 0) + std::log(0.25 / (m * m))).item<double>());
    }
    const auto exact_discrete = -at::tensor(log_cell, f64);
    const std::string options = "--levels 8 --scale 4 --shift -2 --rtol 1e-6 --atol 1e-6 --seed 3";
    const auto k1 = run("dequant1", integers, options + " --dequant-samples 1");
    const auto k16 = run("dequant16", integers, options + " --dequant-samples 16");
    BOOST_TEST(k16.attributes.at("dequant_samples") == "16");
    BOOST_TEST(k16.attributes.at("levels") == "8");
    const auto gap1 = k1.nll - exact_discrete, gap16 = k16.nll - exact_discrete;
    const double n = static_cast<double>(gap1.size(0));
    const double g1 = gap1.mean().item<double>(), se1 = gap1.std().item<double>() / std::sqrt(n);
    const double g16 = gap16.mean().item<double>(), se16 = gap16.std().item<double>() / std::sqrt(n);
    BOOST_TEST_MESSAGE("dequantisation: mean gap to -log P(x): K = 1 " << g1 << " +- " << se1 << ", K = 16 " << g16
                       << " +- " << se16 << " (exact mean -log P " << exact_discrete.mean().item<double>() << ")");
    BOOST_TEST(g1 >= -4 * se1);
    BOOST_TEST(g16 >= -4 * se16);
    const double ratio = gap1.var().item<double>() / gap16.var().item<double>();
    BOOST_TEST_MESSAGE("dequantisation: variance ratio of the per-row gaps K = 1 : K = 16 is " << ratio);
    BOOST_TEST(ratio >= 8.0);
    BOOST_TEST(ratio <= 32.0);
    BOOST_TEST(g16 <= 2 * g1 / 16 + 4 * se16);
    BOOST_TEST((k1.bpd - k1.nll / (2 * std::log(2.0))).abs().max().item<double>() <= 1e-12);
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
