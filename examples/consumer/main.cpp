// Samples the built-in 2-D mixture with the probability-flow ODE through the installed library and
// checks the sample mean against the mixture's (exit status 0 when within 0.1).
#include <cstdio>

#include <sdeflow/io/model_file.hpp>
#include <sdeflow/processes/mixture.hpp>
#include <sdeflow/samplers/sampling.hpp>

int main() {
  const auto model = sdeflow::builtin_model("gmm2d");
  sdeflow::SamplingRequest request;
  request.process = model->process();
  request.model = model->score();
  request.solver = "rk4";
  request.steps = 50;
  request.n = 2000;
  const auto solution = sdeflow::sample(request, nullptr);
  const auto error = (solution.y.mean(0) - model->mixture()->mean()).abs().max().item<double>();
  std::printf("consumer: max |mean error| = %.4f\n", error);
  return error < 0.1 ? 0 : 1;
}
