// Score / noise / data parameterisations: with x = alpha x0 + sigma eps, the score of the Gaussian
// marginal is -(x - alpha x0) / sigma^2 = -eps / sigma (docs/processes.md, "Parameterisations").
#include "processes/score_model.hpp"

#include "core/error.hpp"
#include "core/tensor.hpp"
#include "processes/linear.hpp"

namespace sdeflow {

std::pair<at::Tensor, at::Tensor> ScoreModel::score_and_divergence(const at::Tensor& x, const at::Tensor& t) const {
  (void)x; (void)t;
  throw InputError("this score model has no closed-form divergence (use an exact or Hutchinson trace)");
}

std::pair<at::Tensor, at::Tensor> ScoreModel::score_and_weighted_divergence(const at::Tensor& x, const at::Tensor& t,
                                                                        const Diffusion& g) const {
  if (g.kind != Diffusion::Kind::scalar) {
    throw InputError("this score model's closed-form divergence is a Laplacian; a matrix diffusion needs "
                     "tr(G G^T grad s) (use --trace exact or hutchinson-*)");
  }
  auto [score, laplacian] = score_and_divergence(x, t);
  return {score, g.value.pow(2).reshape({-1}) * laplacian};
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

at::Tensor prediction_to_score(Parameterisation from, const at::Tensor& prediction, const at::Tensor& x,
                               const at::Tensor& t, const Process& process) {
  if (const auto* linear = dynamic_cast<const LinearProcess*>(&process)) {
    return prediction_to_score(from, prediction, x, t, *linear);
  }
  if (from == Parameterisation::noise && process.has_noise_parameterisation()) {
    // A model may predict the scored coordinates only (CLD: the velocity half).
    const auto eps = prediction.size(1) == x.size(1) ? prediction : process.embed_scored(prediction, x.size(1));
    return process.noise_to_score(eps, t);
  }
  throw InputError("a " + to_string(from) + " prediction under process " + process.name() +
                   " has no score conversion (use the noise parameterisation)");
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

NetworkScore::NetworkScore(std::shared_ptr<ScoreNetwork> network, Parameterisation parameterisation,
                           std::shared_ptr<const Process> process)
    : network_(std::move(network)), parameterisation_(parameterisation), process_(std::move(process)) {
  if (!network_) throw InputError("NetworkScore: no network");
  if (!process_) throw InputError("NetworkScore: no process");
  dim_ = 1;
  for (const int64_t extent : network_->config().data_shape) dim_ *= extent;
}

at::Tensor NetworkScore::prediction(const at::Tensor& x, const at::Tensor& t) const {
  if (x.dim() != 2 || x.size(1) != dim_) {
    throw InputError("network score: expected x of shape [B, " + std::to_string(dim_) + "], got " +
                     shape_text(x.sizes().vec()));
  }
  const int64_t batch = x.size(0);
  const auto parameters = network_->parameters();
  const auto& first = parameters.front();
  std::vector<int64_t> shape = {batch};
  shape.insert(shape.end(), network_->config().data_shape.begin(), network_->config().data_shape.end());
  const auto xin = x.reshape(shape).to(first.device(), first.scalar_type());
  auto tin = t.reshape({-1}).to(first.device(), first.scalar_type());
  if (tin.size(0) == 1 && batch != 1) tin = tin.expand({batch});
  const auto out = network_->forward(xin, tin);
  const int64_t outputs = network_->config().output_dim > 0 ? network_->config().output_dim : dim_;
  return out.to(x.device(), x.scalar_type()).reshape({batch, outputs});
}

at::Tensor NetworkScore::score(const at::Tensor& x, const at::Tensor& t) const {
  return prediction_to_score(parameterisation_, prediction(x, t), x, t, *process_);
}

}  // namespace sdeflow
