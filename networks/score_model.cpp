// Score / noise / data parameterisations: with x = alpha x0 + sigma eps, the score of the Gaussian
// marginal is -(x - alpha x0) / sigma^2 = -eps / sigma (docs/processes.md, "Parameterisations").
#include "networks/score_model.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"

namespace sdeflow {

std::pair<at::Tensor, at::Tensor> ScoreModel::score_and_divergence(const at::Tensor& x, const at::Tensor& t) const {
  (void)x; (void)t;
  throw InputError("this score model has no closed-form divergence (use an exact or Hutchinson trace)");
}

at::Tensor ScoreModel::marginal_log_prob(const at::Tensor& x, const at::Tensor& t) const {
  (void)x; (void)t;
  throw InputError("this score model has no closed-form marginal density (use the standard prior)");
}

Parameterisation parse_parameterisation(const std::string& name) {
  if (name == "score") return Parameterisation::score;
  if (name == "noise" || name == "eps") return Parameterisation::noise;
  if (name == "data" || name == "x0") return Parameterisation::data;
  throw InputError("unknown parameterisation '" + name + "' (known: score, noise, data)");
}

std::string to_string(Parameterisation p) {
  switch (p) {
    case Parameterisation::score: return "score";
    case Parameterisation::noise: return "noise";
    case Parameterisation::data: return "data";
  }
  return "?";
}

at::Tensor prediction_to_score(Parameterisation from, const at::Tensor& prediction, const at::Tensor& x,
                               const at::Tensor& t, const LinearProcess& process) {
  switch (from) {
    case Parameterisation::score:
      return prediction;
    case Parameterisation::noise:
      return -prediction / per_sample(process.sigma(t));
    case Parameterisation::data: {
      const auto s = per_sample(process.sigma(t));
      return -(x - per_sample(process.alpha(t)) * prediction) / (s * s);
    }
  }
  throw Error("prediction_to_score: unknown parameterisation");
}

at::Tensor score_to_prediction(Parameterisation to, const at::Tensor& score, const at::Tensor& x,
                               const at::Tensor& t, const LinearProcess& process) {
  switch (to) {
    case Parameterisation::score:
      return score;
    case Parameterisation::noise:
      return -score * per_sample(process.sigma(t));
    case Parameterisation::data: {
      const auto s = per_sample(process.sigma(t));
      return (x + s * s * score) / per_sample(process.alpha(t));
    }
  }
  throw Error("score_to_prediction: unknown parameterisation");
}

ParameterisedScore::ParameterisedScore(Predictor predictor, Parameterisation parameterisation,
                                       std::shared_ptr<const LinearProcess> process, int64_t dim)
    : predictor_(std::move(predictor)), parameterisation_(parameterisation), process_(std::move(process)),
      dim_(dim) {}

at::Tensor ParameterisedScore::score(const at::Tensor& x, const at::Tensor& t) const {
  return prediction_to_score(parameterisation_, predictor_(x, t), x, t, *process_);
}

}  // namespace sdeflow
