// `sdeflow train`: denoising score matching of a score network on a toy data set or a data file, with
// checkpoints written atomically into the output model file and exact resume (training/trainer.hpp).
#include <CLI/CLI.hpp>

#include <cmath>
#include <cstdio>

#include "apps/common.hpp"
#include "core/device.hpp"
#include "core/error.hpp"
#include "io/model_file.hpp"
#include "processes/fp_field.hpp"
#include "processes/fp_learned.hpp"
#include "processes/matrix_linear.hpp"
#include "processes/registry.hpp"
#include "training/trainer.hpp"
#include "sdeflow_version.hpp"
#include "io/output_path.hpp"

namespace sdeflow::app {

namespace {

struct TrainCliOptions {
  std::string process = "vp";
  std::string process_from;        // copy /process from this model file
  int64_t fp_seed = -1;            // fp: random rinv and omega from this seed
  int64_t metric_width = 32;       // fp-field: hidden units of the metric network
  std::string data = "checkerboard";
  std::string out = "sdeflow-model.h5";
  std::string resume;
  std::string device = "auto";
  std::string weighting = "variance";
  std::string parameterisation = "noise";
  NetworkConfig network;
  TrainOptions train;
  bool no_importance = false;
  double scale = 1.0, shift = 0.0;
  int64_t levels = 0;
  int64_t stop_after = 0;
  bool quiet = false;
};

// Options that define a run; when resuming they come from the checkpoint and may not be given again.
const std::vector<std::string> kRunOptions = {
    "--objective", "--strategy", "--forward-steps", "--forward-lr", "--reg-kinetic", "--reg-jacobian",
    "--simulation-steps", "--metric-width", "--process", "--process-from", "--fp-seed", "--arch", "--iters", "--batch", "--lr", "--ema", "--weighting", "--seed", "--parameterisation",
    "--width", "--depth", "--activation", "--embedding", "--embedding-dim", "--fourier-scale", "--channels",
    "--channel-mult", "--groups", "--warmup", "--decay", "--lr-min-fraction", "--grad-clip", "--eps",
    "--log-every", "--checkpoint-every", "--no-importance-sampling", "--scale", "--shift", "--levels"};

// The forward process of a new run: a registered name with its defaults, the /process group of another model
// file (--process-from), or for fp random matrices of the data's dimension (--fp-seed).
std::shared_ptr<Process> make_training_process(const TrainCliOptions& options, const CLI::App& cmd, int64_t data_dim) {
  std::shared_ptr<Process> process;
  if (!options.process_from.empty()) {
    process = load_model(options.process_from)->process();   // a whole, valid model file
    if (cmd.count("--process") > 0 && process->name() != options.process) {
      throw InputError("--process " + options.process + " but " + options.process_from + " holds process " +
                       process->name());
    }
  } else if (options.process == "fp") {
    if (options.fp_seed < 0) {
      throw InputError("--process fp needs its matrices: --process-from FILE (a model file's /process) or --fp-seed S");
    }
    const auto [rinv, omega] = random_fp_matrices(data_dim, static_cast<uint64_t>(options.fp_seed));
    process = make_process("fp", {}, {{"rinv", rinv}, {"omega", omega}});
  } else if (options.process == "fp-noise" || options.process == "fp-drift") {
    // A learned FP process of the data's dimension, starting at D = I, omega = 0 (VP) with the registry's defaults.
    const auto& defaults = process_info(options.process).defaults;
    process = std::make_shared<LearnedFpProcess>(
        options.process == "fp-noise" ? LearnedFpProcess::Variant::noise : LearnedFpProcess::Variant::drift, data_dim,
        defaults.at("beta_min"), defaults.at("beta_max"), TimeRange{defaults.at("eps"), defaults.at("T")});
  } else if (options.process == "fp-field") {
    // A fresh metric network (last layer zero: D = I, VP) initialised from the run's seed; omega = 0.
    const auto& defaults = process_info(options.process).defaults;
    process = make_fp_field_process(data_dim, options.metric_width, defaults.at("floor"), options.train.seed,
                                    defaults.at("beta_min"), defaults.at("beta_max"),
                                    TimeRange{defaults.at("eps"), defaults.at("T")});
  } else {
    process = make_process(options.process, {});
  }
  if (cmd.count("--metric-width") > 0 && options.process != "fp-field") {
    throw InputError("--metric-width applies to --process fp-field only");
  }
  if (options.fp_seed >= 0 && process->name() != "fp") throw InputError("--fp-seed applies to --process fp only");
  // The process checks the state's shape (fp: its matrices are data_dim x data_dim).
  const int64_t n = process->state_dim(data_dim);
  (void)process->drift(at::zeros({1, n}, at::kDouble), at::full({1}, 0.5, at::kDouble));
  return process;
}

int run_train(TrainCliOptions options, const CLI::App& cmd) {
  // Resuming writes back into the checkpoint unless --out says otherwise.
  if (!options.resume.empty() && cmd.count("--out") == 0) options.out = options.resume;
  if (options.out.empty()) throw InputError("--out must name a file");
  check_output_path(options.out);   // a missing directory: exit 2 before any work
  const auto device = parse_device(options.device);
  std::unique_ptr<Trainer> trainer;
  if (!options.resume.empty()) {
    for (const auto& name : kRunOptions) {
      if (cmd.count(name) > 0) {
        throw InputError(name + " cannot be given with --resume: the run's settings are read from " + options.resume);
      }
    }
    const auto stored = load_network_model(options.resume);   // validates the file before anything else
    const std::string data = cmd.count("--data") > 0 ? options.data : stored.data.name;
    trainer = Trainer::resume(options.resume, open_training_data(data, stored.data.levels), device);
    if (trainer->steps_done() >= trainer->options().iterations) {
      throw InputError(options.resume + ": training is already complete (" + std::to_string(trainer->steps_done()) +
                       " of " + std::to_string(trainer->options().iterations) + " steps)");
    }
  } else {
    TrainOptions train = options.train;
    train.weighting = parse_weighting(options.weighting);
    const bool learned_process =
        options.process == "fp-noise" || options.process == "fp-drift" || options.process == "fp-field";
    // A learned forward process trains with the whole likelihood bound (the denoising loss alone would collapse it).
    if (cmd.count("--objective") == 0 && learned_process) train.objective = "bound";
    if (train.objective == "bound") {
      if (cmd.count("--weighting") > 0 && train.weighting != Weighting::likelihood) {
        throw InputError("--objective bound is the likelihood bound: its weighting is likelihood, not " +
                         options.weighting);
      }
      train.weighting = Weighting::likelihood;
    } else {
      for (const char* name : {"--strategy", "--forward-steps", "--forward-lr", "--reg-kinetic", "--reg-jacobian",
                               "--simulation-steps"}) {
        if (cmd.count(name) > 0) throw InputError(std::string(name) + " applies to --objective bound (a learned process)");
      }
    }
    train.importance_sampling = !options.no_importance;
    validate(train);
    NetworkModel model;
    model.parameterisation = parse_parameterisation(options.parameterisation);
    const auto data = open_training_data(options.data, options.levels);
    int64_t data_dim = 1;
    for (auto extent : data->shape()) data_dim *= extent;
    model.process = make_training_process(options, cmd, data_dim);
    model.config = options.network;
    model.config.data_shape = data->shape();
    if (model.config.architecture == "mlp") {
      // The network scores the process's state: the data, or CLD's phase space (x, v).
      model.config.data_shape = {model.process->state_dim(data_dim)};
      // ... and predicts only the coordinates that carry a score (CLD: the velocity half).
      const int64_t state = model.process->state_dim(data_dim), scored = model.process->scored_dim(state);
      if (scored != state) model.config.output_dim = scored;
    } else if (model.process->augmented()) {
      throw InputError("--arch " + model.config.architecture + ": process " + model.process->name() +
                       " trains an mlp on its phase space (x, v) only");
    }
    model.data.name = data->name();
    model.data.shape = data->shape();
    model.data.integer = data->integer();
    model.data.levels = data->integer() ? data->levels() : 256;
    const bool scale_given = cmd.count("--scale") > 0, shift_given = cmd.count("--shift") > 0;
    // Integer data (images) default to [-1, 1]: y = 2 (x + u) / levels - 1.
    model.data.scale = scale_given ? options.scale : (data->integer() ? 2.0 : 1.0);
    model.data.shift = shift_given ? options.shift : (data->integer() ? -1.0 : 0.0);
    if (!(std::isfinite(model.data.scale) && model.data.scale != 0 && std::isfinite(model.data.shift))) {
      throw InputError("--scale must be finite and non-zero and --shift finite");
    }
    model.training_text["sdeflow_version"] = SDEFLOW_VERSION;
    model.training_text["command_line"] = recorded_command_line();
    trainer = std::make_unique<Trainer>(std::move(model), train, data, device);
  }
  int64_t parameter_count = 0;
  for (const auto& p : trainer->model().network->parameters()) parameter_count += p.numel();
  const auto& run = trainer->options();
  if (!options.quiet) {
    std::printf("sdeflow train: %s (%s, %lld parameters) on %s, process %s, objective %s, %s weighting, %s prediction, device %s\n",
                trainer->model().config.architecture.c_str(), trainer->model().config.embedding.c_str(),
                static_cast<long long>(parameter_count), trainer->model().data.name.c_str(),
                trainer->model().process->name().c_str(), run.objective.c_str(), to_string(run.weighting).c_str(),
                to_string(trainer->model().parameterisation).c_str(), device.str().c_str());
    std::printf("  steps %lld -> %lld, batch %lld, lr %g (warm-up %lld, %s decay), EMA %g, seed %llu\n",
                static_cast<long long>(trainer->steps_done()), static_cast<long long>(run.iterations),
                static_cast<long long>(run.batch), run.lr, static_cast<long long>(run.warmup), run.decay.c_str(),
                run.ema, static_cast<unsigned long long>(run.seed));
  }
  ProgressBar bar("train");
  TrainProgress last;
  trainer->run(options.out, options.stop_after, [&](const TrainProgress& p) {
    last = p;
    char note[96];
    std::snprintf(note, sizeof note, "loss %.4f  %.0f steps/s", p.loss, p.steps_per_second);
    bar.update(p.step, p.iterations, note);
  });
  bar.finish();
  if (!options.quiet) {
    std::printf("  trained to step %lld of %lld: loss %.5f (mean of the last %lld steps), %.1f steps/s, %.1f s\n",
                static_cast<long long>(trainer->steps_done()), static_cast<long long>(run.iterations),
                trainer->model().training_numbers.at("final_loss"), static_cast<long long>(run.log_every),
                last.steps_per_second, trainer->model().training_numbers.at("wall_time_s"));
    std::printf("  wrote %s%s\n", options.out.c_str(),
                trainer->steps_done() < run.iterations ? " (a checkpoint: resume with --resume)" : "");
  }
  return kExitOk;
}

}  // namespace

Runner add_train_command(CLI::App& app) {
  auto options = std::make_shared<TrainCliOptions>();
  auto* cmd = app.add_subcommand("train", "train a score network by denoising score matching");
  auto& n = options->network;
  auto& t = options->train;
  std::string processes;
  for (const auto& info : process_registry()) processes += "\n    " + info.name + ": " + info.description;
  std::string objectives;
  for (const auto& info : objective_registry()) objectives += "\n    " + info.name + ": " + info.summary;
  cmd->add_option("--objective", t.objective, "training objective:" + objectives)->capture_default_str();
  cmd->add_option("--strategy", t.strategy,
                  "a learned process (--objective bound): joint (process and score together), mix (joint for "
                  "--forward-steps, then the process frozen) or fixed")
      ->capture_default_str();
  cmd->add_option("--forward-steps", t.forward_steps, "mix: steps of the joint stage")->capture_default_str();
  cmd->add_option("--forward-lr", t.forward_lr, "peak learning rate of the forward process (0: --lr)")
      ->capture_default_str();
  cmd->add_option("--reg-kinetic", t.reg_kinetic,
                  "weight of the probability flow's kinetic energy int E|v|^2 dt (gradients into the process only)")
      ->capture_default_str();
  cmd->add_option("--reg-jacobian", t.reg_jacobian,
                  "weight of the flow's Jacobian norm int E|e^T grad v|^2 dt (Hutchinson; into the process only)")
      ->capture_default_str();
  cmd->add_option("--simulation-steps", t.simulation_steps,
                  "fp-field: steps of each simulated forward segment ([0, t] and [t, T])")
      ->capture_default_str();
  cmd->add_option("--metric-width", options->metric_width, "fp-field: hidden units of the metric network D(x)")
      ->capture_default_str();
  cmd->add_option("--process", options->process, "forward process:" + processes)->capture_default_str();
  cmd->add_option("--process-from", options->process_from, "copy the forward process (/process) from this model file");
  cmd->add_option("--fp-seed", options->fp_seed,
                  "fp: draw a random SPD rinv and antisymmetric omega of the data's dimension from this seed");
  cmd->add_option("--arch", n.architecture, "network: mlp, unet")->capture_default_str();
  cmd->add_option("--data", options->data,
                  "built-in data set (checkerboard, 8gaussians, 2spirals, moons, pinwheel, rings, swissroll) or an "
                  "HDF5 data file (/data [N, ...])")
      ->capture_default_str();
  cmd->add_option("--iters", t.iterations, "optimisation steps")->capture_default_str();
  cmd->add_option("--batch", t.batch, "batch size")->capture_default_str();
  cmd->add_option("--lr", t.lr, "peak learning rate (Adam)")->capture_default_str();
  cmd->add_option("--warmup", t.warmup, "linear warm-up steps")->capture_default_str();
  cmd->add_option("--decay", t.decay, "learning-rate decay: cosine or constant")->capture_default_str();
  cmd->add_option("--lr-min-fraction", t.lr_min_fraction, "cosine decay ends at lr * this")->capture_default_str();
  cmd->add_option("--grad-clip", t.grad_clip, "maximum gradient norm (<= 0: off)")->capture_default_str();
  cmd->add_option("--ema", t.ema, "EMA rate of the weights (0: none)")->capture_default_str();
  cmd->add_option("--weighting", options->weighting, "likelihood (g^2, importance-sampled t) or variance (sigma^2)")
      ->capture_default_str();
  cmd->add_flag("--no-importance-sampling", options->no_importance, "likelihood weighting with uniform t");
  cmd->add_option("--parameterisation", options->parameterisation, "network output: noise, score, data")
      ->capture_default_str();
  cmd->add_option("--eps", t.eps, "t is drawn from [eps, T]")->capture_default_str();
  cmd->add_option("--seed", t.seed, "seed of the initialisation, batches, times and noise")->capture_default_str();
  cmd->add_option("--device", options->device, "cpu, cuda, cuda:N or auto")->capture_default_str();
  cmd->add_option("--out", options->out, "output model file (also the checkpoint; with --resume: the resumed file)")->capture_default_str();
  cmd->add_option("--resume", options->resume, "continue the run of this checkpoint (its settings are reused)");
  cmd->add_option("--stop-after", options->stop_after, "stop (with a checkpoint) after this many steps in total");
  cmd->add_option("--checkpoint-every", t.checkpoint_every, "steps between checkpoints")->capture_default_str();
  cmd->add_option("--log-every", t.log_every, "steps per entry of the loss log")->capture_default_str();
  cmd->add_option("--width", n.width, "mlp: hidden units")->capture_default_str();
  cmd->add_option("--depth", n.depth, "mlp: hidden layers")->capture_default_str();
  cmd->add_option("--activation", n.activation, "silu, relu, gelu, tanh, softplus")->capture_default_str();
  cmd->add_option("--embedding", n.embedding, "time embedding: sinusoidal or fourier")->capture_default_str();
  cmd->add_option("--embedding-dim", n.embedding_dim, "time embedding size")->capture_default_str();
  cmd->add_option("--fourier-scale", n.fourier_scale, "std of the Fourier frequencies")->capture_default_str();
  cmd->add_option("--channels", n.channels, "unet: base channels")->capture_default_str();
  cmd->add_option("--channel-mult", n.channel_mult, "unet: channel multiplier per resolution")->delimiter(',');
  cmd->add_option("--groups", n.groups, "unet: GroupNorm groups")->capture_default_str();
  cmd->add_option("--scale", options->scale, "model space = scale * data + shift (integer data: scale * (x + u) / levels "
                                             "+ shift; default 2 and -1 for integer data, else 1 and 0)");
  cmd->add_option("--shift", options->shift, "see --scale");
  cmd->add_option("--levels", options->levels, "integer data: number of levels (default: value_range's top + 1, or 256)");
  cmd->add_flag("--quiet", options->quiet, "print no summary");
  return [options, cmd] { return run_train(*options, *cmd); };
}

}  // namespace sdeflow::app
