// Tests of networks/network, networks/mlp, networks/unet and io/network_file: the C++ networks against their
// PyTorch twins (scripts/sdeflow_nets.py) on the same weights, model-file round trips, output shapes on CPU
// (and CUDA when present) in float32 and float64, the network-as-score conversion and its autograd gradient,
// deterministic initialisation, and the InputError of every malformed file.
#include <boost/test/unit_test.hpp>

#include <hdf5.h>
#include <unistd.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>

#include "core/error.hpp"
#include "io/h5.hpp"
#include "io/network_file.hpp"
#include "networks/network.hpp"
#include "processes/linear.hpp"
#include "support.hpp"

using namespace sdeflow;
namespace fs = std::filesystem;

namespace {

const auto f64 = at::TensorOptions().dtype(at::kDouble);

NetworkConfig mlp_config(std::vector<int64_t> shape = {2}) {
  NetworkConfig config;
  config.architecture = "mlp";
  config.data_shape = std::move(shape);
  config.width = 32;
  config.depth = 3;
  config.embedding_dim = 16;
  return config;
}

NetworkConfig unet_config(int64_t size, std::vector<int64_t> mult = {1, 2}, int64_t channels = 16, int64_t groups = 4) {
  NetworkConfig config;
  config.architecture = "unet";
  config.data_shape = {1, size, size};
  config.channels = channels;
  config.channel_mult = std::move(mult);
  config.groups = groups;
  config.embedding_dim = 32;
  return config;
}

// Every parameter then every buffer, by name.
std::vector<std::pair<std::string, at::Tensor>> tensors(const torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  for (const auto& item : module.named_buffers()) out.emplace_back(item.key(), item.value());
  return out;
}

bool same_weights(const torch::nn::Module& a, const torch::nn::Module& b) {
  const auto ta = tensors(a), tb = tensors(b);
  if (ta.size() != tb.size()) return false;
  for (size_t i = 0; i < ta.size(); ++i) {
    if (ta[i].first != tb[i].first || !torch::equal(ta[i].second, tb[i].second)) return false;
  }
  return true;
}

// A complete model: float64 MLP with EMA, training text/numbers and a loss log.
NetworkModel sample_model(const NetworkConfig& config) {
  NetworkModel model;
  model.config = config;
  model.parameterisation = Parameterisation::noise;
  model.process = make_linear_process("vp", {{"beta_max", 12.5}});
  model.network = make_network(config, 3);
  model.network->to(at::kDouble);
  model.ema = make_network(config, 4);
  model.ema->to(at::kDouble);
  model.data = {"checkerboard", config.data_shape, 0.5, -0.25, false, 256};
  model.training_text = {{"dataset", "checkerboard"}, {"command_line", "sdeflow train --steps 3"}};
  model.training_numbers = {{"steps", 3.0}, {"final_loss", 0.123456789012345}};
  model.loss_step = at::arange(1, 4, at::TensorOptions().dtype(at::kLong));
  model.loss = at::tensor({0.9, 0.5, 1.0 / 3.0}, f64);
  return model;
}

void expect_input_error(const std::function<void()>& action, const std::string& substring, const std::string& what) {
  try {
    action();
    BOOST_ERROR(what << ": no exception (expected InputError containing '" << substring << "')");
  } catch (const InputError& error) {
    const std::string message = error.what();
    BOOST_TEST(message.find(substring) != std::string::npos,
               what << ": message '" << message << "' does not contain '" << substring << "'");
  } catch (const std::exception& error) {
    BOOST_ERROR(what << ": wrong exception type: " << error.what());
  }
}

// The project environment's Python with torch and h5py (SDEFLOW_PYTHON, set by CTest from the Python CMake
// found). Missing, it fails the test that needs it: a comparison that silently skips would claim what it never ran.
std::string python_with_torch() {
  const char* python = std::getenv("SDEFLOW_PYTHON");
  BOOST_TEST_REQUIRE(python != nullptr, "SDEFLOW_PYTHON is not set (run the tests through ctest)");
  BOOST_TEST_REQUIRE(fs::exists(python), "SDEFLOW_PYTHON=" << python << " does not exist");
  BOOST_TEST_REQUIRE(std::system((std::string("'") + python + "' -c 'import torch, h5py' 2>/dev/null").c_str()) == 0,
                     python << " cannot import torch and h5py; scripts/install-deps.sh makes the environment");
  return python;
}

fs::path scripts_dir() {
  if (const char* source = std::getenv("SDEFLOW_SOURCE_DIR")) return fs::path(source) / "scripts";
  return fs::path(__FILE__).parent_path().parent_path() / "scripts";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(networks)

BOOST_AUTO_TEST_CASE(predictions_equal_pytorch_reference) {
  const auto python = python_with_torch();
  const auto dir = test::scratch_dir("networks_pytorch");
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"mlp_sinusoidal", R"({"architecture": "mlp", "data_shape": [2], "width": 32, "depth": 3, "embedding_dim": 16})"},
      {"mlp_fourier",
       R"({"architecture": "mlp", "data_shape": [1, 4, 4], "width": 24, "depth": 2, "embedding": "fourier",
           "embedding_dim": 8, "fourier_scale": 4.0, "activation": "gelu"})"},
      {"unet_8x8", R"({"architecture": "unet", "data_shape": [1, 8, 8], "channels": 16, "groups": 4,
                       "embedding_dim": 32, "channel_mult": [1, 2]})"},
      {"unet_8x8_fourier_3_levels",
       R"({"architecture": "unet", "data_shape": [1, 8, 8], "channels": 8, "groups": 2, "embedding": "fourier",
           "embedding_dim": 16, "channel_mult": [1, 2, 2], "activation": "tanh"})"},
  };
  // All exports at once (torch's import dominates), then every comparison. Each export's own exit status is
  // collected (`wait PID`), so one failing export fails the command; a bare `wait` would always return 0.
  std::string command = "pids=''; ";
  for (const auto& [name, json] : cases) {
    command += "'" + python + "' " + (scripts_dir() / "export_state_dict.py").string() + " --random-init --seed 5" +
               " --dtype float64 --process vp --parameterisation noise --config '" + json + "' --out " +
               (dir / (name + ".h5")).string() + " --reference " + (dir / (name + "_ref.h5")).string() +
               " & pids=\"$pids $!\"; ";
  }
  command += "status=0; for pid in $pids; do wait $pid || status=1; done; exit $status";
  BOOST_TEST_REQUIRE(std::system(command.c_str()) == 0, command);
  // The same construction reports a failing export: one job exits 3, so the whole command must not return 0.
  BOOST_TEST(std::system("pids=''; true & pids=\"$pids $!\"; sh -c 'exit 3' & pids=\"$pids $!\"; "
                         "status=0; for pid in $pids; do wait $pid || status=1; done; exit $status") != 0);
  for (const auto& [name, json] : cases) {
    const auto model = load_network_model((dir / (name + ".h5")).string());
    BOOST_TEST(model.config.architecture == name.substr(0, name.find('_')));
    const h5::File reference((dir / (name + "_ref.h5")).string(), h5::Mode::read);
    const auto x = reference.read_tensor("x");
    const auto t = reference.read_tensor("t");
    const auto expected = reference.read_tensor("prediction");
    BOOST_TEST_REQUIRE(x.scalar_type() == at::kDouble);
    torch::NoGradGuard no_grad;
    const auto predicted = model.network->forward(x, t);
    BOOST_TEST_REQUIRE(predicted.scalar_type() == at::kDouble);
    const double difference = (predicted - expected).abs().max().item<double>();
    const double scale = expected.abs().max().item<double>();
    BOOST_TEST_MESSAGE(name << ": max |C++ - PyTorch| = " << difference << " (predictions up to " << scale << ")");
    BOOST_TEST(difference <= 1e-6, name);
    BOOST_TEST(scale > 1e-3, name << ": a trivial (zero) prediction would make the comparison empty");
    // The same numbers through the score adapter's flattening.
    NetworkScore score(model.network, model.parameterisation, model.process);
    const auto flat = score.prediction(x.reshape({x.size(0), -1}), t);
    BOOST_TEST((flat - expected.reshape({x.size(0), -1})).abs().max().item<double>() <= 1e-6, name);
  }
}

BOOST_AUTO_TEST_CASE(mlp_parameter_names_follow_pytorch) {
  auto config = mlp_config();
  config.embedding = "fourier";
  const auto network = make_network(config, 0);
  std::vector<std::string> names;
  for (const auto& [name, tensor] : tensors(*network)) names.push_back(name + ":" + std::to_string(tensor.dim()));
  const std::vector<std::string> expected = {
      "time_embed.linear1.weight:2", "time_embed.linear1.bias:1", "time_embed.linear2.weight:2",
      "time_embed.linear2.bias:1", "input.weight:2", "input.bias:1", "hidden.0.weight:2", "hidden.0.bias:1",
      "hidden.1.weight:2", "hidden.1.bias:1", "output.weight:2", "output.bias:1", "time_embed.frequencies:1"};
  BOOST_TEST(names == expected, boost::test_tools::per_element());
  // Linear layout [out, in].
  BOOST_TEST(network->named_parameters()["input.weight"].sizes() == at::IntArrayRef({32, 2}));
}

BOOST_AUTO_TEST_CASE(save_and_load_round_trip_is_exact) {
  const auto dir = test::scratch_dir("networks_round_trip");
  for (const auto& config : {mlp_config(), unet_config(8)}) {
    auto model = sample_model(config);
    const auto path = (dir / (config.architecture + ".h5")).string();
    save_network_model(path, model);
    for (const auto& entry : fs::directory_iterator(dir)) {   // no temporary file left behind
      BOOST_TEST(entry.path().filename().string().find(".tmp-") == std::string::npos, entry.path());
    }
    const auto loaded = load_network_model(path);
    BOOST_TEST(same_weights(*loaded.network, *model.network));
    BOOST_TEST_REQUIRE(loaded.ema != nullptr);
    BOOST_TEST(same_weights(*loaded.ema, *model.ema));
    BOOST_TEST(loaded.evaluation_network() == loaded.ema);
    BOOST_TEST(!loaded.network->is_training());
    for (const auto& parameter : loaded.network->parameters()) BOOST_TEST(!parameter.requires_grad());
    BOOST_TEST(loaded.network->parameters().front().scalar_type() == at::kDouble);
    const auto& a = loaded.config;
    const auto& b = config;
    BOOST_TEST((a.architecture == b.architecture && a.data_shape == b.data_shape && a.embedding == b.embedding &&
                a.embedding_dim == b.embedding_dim && a.fourier_scale == b.fourier_scale &&
                a.activation == b.activation && a.width == b.width && a.depth == b.depth &&
                a.channels == b.channels && a.channel_mult == b.channel_mult && a.groups == b.groups));
    BOOST_TEST(to_string(loaded.parameterisation) == "noise");
    BOOST_TEST(loaded.process->name() == "vp");
    BOOST_TEST((loaded.process->parameters() == model.process->parameters()));
    BOOST_TEST(loaded.data.name == "checkerboard");
    BOOST_TEST((loaded.data.shape == config.data_shape));
    BOOST_TEST((loaded.data.scale == 0.5 && loaded.data.shift == -0.25 && !loaded.data.integer &&
                loaded.data.levels == 256));
    BOOST_TEST((loaded.training_text == model.training_text));
    BOOST_TEST((loaded.training_numbers == model.training_numbers));
    BOOST_TEST(torch::equal(loaded.loss_step, model.loss_step));
    BOOST_TEST(torch::equal(loaded.loss, model.loss));
  }
  // float32 weights stay float32; no EMA, no loss log.
  NetworkModel model;
  model.config = mlp_config({3});
  model.process = make_linear_process("ve", {});
  model.network = make_network(model.config, 9);
  model.parameterisation = Parameterisation::score;
  model.data = {"digits", {3}, 2.0, -1.0, true, 17};
  const auto path = (dir / "float32.h5").string();
  save_network_model(path, model);
  const auto loaded = load_network_model(path);
  BOOST_TEST(loaded.network->parameters().front().scalar_type() == at::kFloat);
  BOOST_TEST(same_weights(*loaded.network, *model.network));
  BOOST_TEST(loaded.ema == nullptr);
  BOOST_TEST(loaded.evaluation_network() == loaded.network);
  BOOST_TEST(!loaded.loss_step.defined());
  BOOST_TEST((loaded.data.integer && loaded.data.levels == 17));
  BOOST_TEST(to_string(loaded.parameterisation) == "score");
  BOOST_TEST(loaded.process->name() == "ve");
  // copy_weights carries the float32 weights into a float64 copy of another seed.
  auto target = make_network(model.config, 10);
  target->to(at::kDouble);
  copy_weights(*model.network, *target);
  BOOST_TEST(target->parameters().front().scalar_type() == at::kDouble);
  for (const auto& [name, tensor] : tensors(*target)) {
    BOOST_TEST(torch::equal(tensor, model.network->named_parameters()[name].to(at::kDouble)), name);
  }
}

BOOST_AUTO_TEST_CASE(output_shapes_cpu_and_cuda) {
  std::vector<at::Device> devices = {at::kCPU};
  if (torch::cuda::is_available()) devices.emplace_back(at::kCUDA);
  else BOOST_TEST_MESSAGE("skipped: no CUDA device");
  struct Case {
    NetworkConfig config;
    std::vector<int64_t> shape;
  };
  const std::vector<Case> cases = {{mlp_config({2}), {3, 2}},
                                   {unet_config(8, {1, 2}), {3, 1, 8, 8}},
                                   {unet_config(28, {1, 2}, 32, 8), {2, 1, 28, 28}},
                                   {unet_config(28, {1, 2, 2}, 32, 8), {2, 1, 28, 28}}};
  for (const auto& c : cases) {
    const auto network = make_network(c.config, 1);
    int64_t count = 0;
    for (const auto& parameter : network->parameters()) count += parameter.numel();
    if (c.config.architecture == "unet" && c.config.channels == 32) BOOST_TEST(count < 1000000);
    auto generator = at::detail::createCPUGenerator(2);
    const auto x = at::randn(c.shape, generator, f64);
    const auto t = at::rand({c.shape[0]}, generator, f64);
    network->to(at::kDouble);
    at::Tensor cpu64;
    {
      torch::NoGradGuard no_grad;
      cpu64 = network->forward(x, t);
    }
    for (const auto& device : devices) {
      for (const auto dtype : {at::kFloat, at::kDouble}) {
        network->to(device, dtype);
        torch::NoGradGuard no_grad;
        const auto out = network->forward(x.to(device, dtype), t.to(device, dtype));
        BOOST_TEST(out.sizes() == x.sizes());
        BOOST_TEST(out.scalar_type() == dtype);
        BOOST_TEST(out.device() == device);
        BOOST_TEST(at::isfinite(out).all().item<bool>());
        const double tolerance = dtype == at::kFloat ? 1e-4 : 1e-10;
        BOOST_TEST((out.to(at::kCPU, at::kDouble) - cpu64).abs().max().item<double>() <=
                       tolerance * (1 + cpu64.abs().max().item<double>()),
                   c.config.architecture << " " << device << " " << dtype);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(network_score_and_its_gradient) {
  const auto process = make_linear_process("vp", {});
  auto network = make_network(mlp_config({2}), 11);
  network->to(at::kDouble);
  NetworkScore model(network, Parameterisation::noise, process);
  BOOST_TEST(model.dim() == 2);
  auto generator = at::detail::createCPUGenerator(12);
  const auto x = at::randn({4, 2}, generator, f64);
  const auto t = at::tensor({0.01, 0.2, 0.5, 1.0}, f64);
  const auto prediction = model.prediction(x, t);
  const auto expected = -prediction / process->sigma(t).unsqueeze(1);
  BOOST_TEST((model.score(x, t) - expected).abs().max().item<double>() <= 1e-12);

  // d score_0 / d x_1 by autograd against a central difference (error O(h^2) + O(eps / h)).
  const auto xg = x.clone().requires_grad_(true);
  const auto score = model.score(xg, t);
  const auto gradient = torch::autograd::grad({score.select(1, 0).sum()}, {xg})[0];
  const double h = 1e-5;
  auto plus = x.clone(), minus = x.clone();
  plus.select(1, 1).add_(h);
  minus.select(1, 1).sub_(h);
  const auto difference = (model.score(plus, t) - model.score(minus, t)).select(1, 0) / (2 * h);
  const auto autograd = gradient.select(1, 1);
  const double scale = 1 + autograd.abs().max().item<double>();
  BOOST_TEST((autograd - difference).abs().max().item<double>() <= 1e-6 * scale);

  // A float32 U-Net behind float64 [B, 64] states: converted there and back, still differentiable.
  auto unet = make_network(unet_config(8), 13);
  NetworkScore image_model(unet, Parameterisation::data, process);
  BOOST_TEST(image_model.dim() == 64);
  const auto xi = at::randn({2, 64}, generator, f64).requires_grad_(true);
  const auto si = image_model.score(xi, at::full({2}, 0.3, f64));
  BOOST_TEST(si.sizes() == xi.sizes());
  BOOST_TEST(si.scalar_type() == at::kDouble);
  const auto gi = torch::autograd::grad({si.sum()}, {xi})[0];
  BOOST_TEST(at::isfinite(gi).all().item<bool>());
  expect_input_error([&] { image_model.score(at::zeros({2, 63}, f64), at::full({2}, 0.3, f64)); }, "[B, 64]",
                     "wrong state dimension");
}

BOOST_AUTO_TEST_CASE(same_seed_same_parameters) {
  for (const auto& config : {mlp_config(), unet_config(8)}) {
    auto fourier = config;
    fourier.embedding = "fourier";
    torch::manual_seed(1);
    const auto a = make_network(fourier, 21);
    torch::manual_seed(2);   // the global generator plays no part
    const auto b = make_network(fourier, 21);
    const auto c = make_network(fourier, 22);
    BOOST_TEST(same_weights(*a, *b));
    for (const auto& [name, tensor] : tensors(*a)) {
      if (name.find("norm") != std::string::npos) continue;   // GroupNorm: 1 and 0 whatever the seed
      BOOST_TEST(!torch::equal(tensor, c->named_parameters(true).contains(name) ? c->named_parameters()[name]
                                                                                : c->named_buffers()[name]),
                 name);
    }
    // PyTorch's default bounds: |w| <= 1 / sqrt(fan_in); frequencies ~ N(0, fourier_scale^2).
    const auto params = a->named_parameters();
    const auto& first = config.architecture == "mlp" ? params["input.weight"] : params["conv_in.weight"];
    const double bound = 1.0 / std::sqrt(static_cast<double>(first.numel() / first.size(0)));
    BOOST_TEST(first.abs().max().item<double>() <= bound);
    BOOST_TEST(first.abs().max().item<double>() >= 0.5 * bound);
    const auto frequencies = a->named_buffers()["time_embed.frequencies"];
    BOOST_TEST(frequencies.abs().max().item<double>() > 1.0);   // scale 16: not left at zero
  }
}

// An MLP with output_dim predicts that many values (CLD: the velocity half of its 2 d inputs); the attribute
// round-trips through the model file and is absent (the input's shape) when unset.
BOOST_AUTO_TEST_CASE(mlp_output_dim_round_trips) {
  const auto dir = test::scratch_dir("networks_output_dim");
  auto config = mlp_config({4});
  config.output_dim = 2;
  auto model = sample_model(config);
  const auto x = at::randn({5, 4}, at::kDouble), t = at::full({5}, 0.4, at::kDouble);
  at::NoGradGuard no_grad;
  const auto out = model.network->forward(x, t);
  BOOST_TEST((out.sizes() == at::IntArrayRef{5, 2}));
  const auto path = (dir / "half.h5").string();
  save_network_model(path, model);
  const auto loaded = load_network_model(path);
  BOOST_TEST(loaded.config.output_dim == 2);
  BOOST_TEST((loaded.network->forward(x, t) - out).abs().max().item<double>() <= 1e-12 * out.abs().max().item<double>());
  save_network_model((dir / "full.h5").string(), sample_model(mlp_config({4})));
  BOOST_TEST(!h5::File((dir / "full.h5").string(), h5::Mode::read).group("network").has_attribute("output_dim"));
}

BOOST_AUTO_TEST_CASE(config_validation_names_the_field) {
  const std::vector<std::pair<std::function<void(NetworkConfig&)>, std::string>> cases = {
      {[](NetworkConfig& c) { c.architecture = "transformer"; }, "unknown architecture 'transformer'"},
      {[](NetworkConfig& c) { c.embedding = "learned"; }, "unknown embedding 'learned'"},
      {[](NetworkConfig& c) { c.embedding_dim = 7; }, "embedding_dim"},
      {[](NetworkConfig& c) { c.activation = "swish"; }, "unknown activation 'swish'"},
      {[](NetworkConfig& c) { c.data_shape = {}; }, "data_shape"},
      {[](NetworkConfig& c) { c.depth = 0; }, "depth"},
      {[](NetworkConfig& c) { c.width = 0; }, "width"},
      {[](NetworkConfig& c) { c.fourier_scale = -1; }, "fourier_scale"},
      {[](NetworkConfig& c) { c.output_dim = -2; }, "output_dim must be >= 0"},
  };
  for (const auto& [edit, substring] : cases) {
    auto config = mlp_config();
    edit(config);
    expect_input_error([&] { validate(config); }, substring, substring);
    expect_input_error([&] { make_network(config, 0); }, substring, substring);
  }
  const std::vector<std::pair<std::function<void(NetworkConfig&)>, std::string>> unet_cases = {
      {[](NetworkConfig& c) { c.data_shape = {64}; }, "[C, H, W]"},
      {[](NetworkConfig& c) { c.groups = 5; }, "groups"},
      {[](NetworkConfig& c) { c.channel_mult = {1, 2, 2, 2}; }, "divisible by 2^(levels - 1) = 8"},
      {[](NetworkConfig& c) { c.channel_mult = {}; }, "channel_mult"},
      {[](NetworkConfig& c) { c.output_dim = 4; }, "output_dim applies to the mlp only"},
  };
  for (const auto& [edit, substring] : unet_cases) {
    auto config = unet_config(28);
    edit(config);
    expect_input_error([&] { validate(config); }, substring, substring);
  }
  BOOST_TEST(architecture_names() == std::vector<std::string>({"mlp", "unet"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(malformed_files_throw_input_error_naming_the_object) {
  const auto dir = test::scratch_dir("networks_bad");
  const auto model = sample_model(mlp_config());
  int counter = 0;
  // Writes a valid file, applies `edit` to it, and expects load_network_model to fail naming `substring`.
  const auto check = [&](const std::function<void(const h5::File&)>& edit, const std::string& substring,
                         const std::string& what) {
    const auto path = (dir / ("bad" + std::to_string(counter++) + ".h5")).string();
    save_network_model(path, model);
    {
      const h5::File file(path, h5::Mode::read_write);
      edit(file);
    }
    expect_input_error([&] { load_network_model(path); }, substring, what);
  };
  const auto parameters = [](const h5::File& file) { return file.group("network").group("parameters"); };
  check([&](const h5::File& f) { H5Ldelete(parameters(f).id(), "hidden.1.weight", H5P_DEFAULT); },
        "/network/parameters/hidden.1.weight: missing", "missing parameter");
  check([&](const h5::File& f) { parameters(f).write_tensor("input.weight", at::zeros({64, 3}, f64)); },
        "/network/parameters/input.weight: shape [64, 3] but the architecture needs [32, 2]", "mis-shaped tensor");
  check([&](const h5::File& f) { parameters(f).write_tensor("extra.weight", at::zeros({3}, f64)); },
        "/network/parameters/extra.weight", "extra tensor");
  check([&](const h5::File& f) { f.group("network").group("ema").write_tensor("input.scale", at::zeros({3}, f64)); },
        "/network/ema/input.scale", "extra EMA tensor");
  check([&](const h5::File& f) { H5Ldelete(f.group("network").group("ema").id(), "output.bias", H5P_DEFAULT); },
        "/network/ema/output.bias: missing", "missing EMA tensor");
  check([&](const h5::File& f) { f.group("network").set_attribute("architecture", "transformer"); },
        "unknown architecture 'transformer'", "unknown architecture");
  check([&](const h5::File& f) {
          parameters(f).write_tensor("output.bias", at::zeros({2}, at::TensorOptions().dtype(at::kLong)));
        },
        "/network/parameters/output.bias: expected float32 or float64, got int64", "integer parameter");
  check([&](const h5::File& f) { f.group("network").set_attribute("parameterisation", "velocity"); },
        "parameterisation", "bad parameterisation");
  check([&](const h5::File& f) { f.group("network").set_attribute("dtype", "float16"); }, "'dtype'", "bad dtype");
  check([&](const h5::File& f) { f.set_attribute("kind", "gmm"); }, "model kind is 'gmm'", "wrong kind");
  check([&](const h5::File& f) { f.group("data").set_attribute("shape", std::vector<int64_t>{3}); },
        "/data attribute 'shape'", "data shape");
  check([&](const h5::File& f) { f.group("training").write_tensor("loss", at::zeros({5}, f64)); },
        "/training/loss: expected shape [3]", "loss log length");
  check([&](const h5::File& f) {
          parameters(f).write_tensor("output.bias", at::full({2}, std::nan(""), f64));
        },
        "/network/parameters/output.bias: not finite", "NaN parameter");

  // Truncated to half: whatever the HDF5 library makes of it, an InputError naming the file.
  const auto path = (dir / "truncated.h5").string();
  save_network_model(path, model);
  fs::resize_file(path, fs::file_size(path) / 2);
  expect_input_error([&] { load_network_model(path); }, path, "truncated file");
  expect_input_error([&] { load_network_model((dir / "missing.h5").string()); }, "missing.h5", "missing file");
}

BOOST_AUTO_TEST_SUITE_END()
