// Forward of the vector encoder (MLPBackbone + ProjectionHead) as ONE call into C++.
//
// Why: on the CPU the yeast MLP's layers are small (64 x 512), so a pretraining step spends about as
// much time in Python (module calls, FastDropout's code, argument parsing) as in the kernels. This
// runs exactly the ATen operations the Python modules run, in the same order and on the same
// tensors, so values, autograd graph, gradients, BatchNorm statistics and random draws are the
// same bit for bit (tested against the modules in tests/test_fused_encoder.py). It also releases
// the GIL, so MoCo's key encoder can run on a second thread truly beside the query encoder.
//
// The layout it expects (checked in Python, mulsupcon/models/fused.py):
//   backbone: [Linear -> ReLU(inplace) -> Dropout] x L
//   head:     Linear -> BatchNorm1d -> ReLU(inplace) -> Dropout -> Linear
#include <torch/extension.h>

#include <limits>

namespace {

// mulsupcon.train.common.FastDropout.forward for 0 < dropped < 65536: one 64-bit random word gives
// four 16-bit lanes; an element is kept when its lane (as unsigned) is at least `dropped`, and kept
// elements are scaled by 65536 / (65536 - dropped). Same calls as the Python code, same draws.
at::Tensor fast_dropout(const at::Tensor& x, int64_t dropped, const std::optional<at::Generator>& gen) {
  if (dropped == 0) return x;
  const int64_t n = x.numel();
  at::Tensor words = at::empty({(n + 3) / 4}, x.options().dtype(at::kLong))
                         .random_(std::numeric_limits<int64_t>::min(), std::nullopt, gen);
  at::Tensor lanes = words.view(at::kShort).slice(0, 0, n).view(x.sizes());
  const auto work = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor mask = lanes.to(work).ge_(dropped - 32768).mul_(65536.0 / static_cast<double>(65536 - dropped));
  return x * mask.to(x.scalar_type());
}

// x: (B, F); weights/biases: the backbone's L Linear layers, then the head's two; dropped: FastDropout's
// threshold round(p * 65536) of the L backbone dropouts, then the head's. Returns (B, D), not normalised.
// `train` switches dropout and BatchNorm's batch statistics (and running-stat updates).
at::Tensor mlp_encoder_forward(const at::Tensor& x, const std::vector<at::Tensor>& weights,
                               const std::vector<at::Tensor>& biases, const std::vector<int64_t>& dropped,
                               const at::Tensor& bn_weight, const at::Tensor& bn_bias, const at::Tensor& running_mean,
                               const at::Tensor& running_var, const at::Tensor& num_batches_tracked,
                               double bn_momentum, double bn_eps, bool train,
                               std::optional<at::Generator> generator) {
  TORCH_CHECK(weights.size() == biases.size() && weights.size() >= 3,
              "mlp_encoder_forward: expected as many biases as weights and at least 3 Linear layers, got ",
              weights.size(), " weights and ", biases.size(), " biases");
  const size_t n_backbone = weights.size() - 2;
  TORCH_CHECK(dropped.size() == n_backbone + 1, "mlp_encoder_forward: expected ", n_backbone + 1,
              " dropout thresholds, got ", dropped.size());
  for (int64_t d : dropped) TORCH_CHECK(d >= 0 && d < 65536, "mlp_encoder_forward: dropout threshold ", d, " outside [0, 65536)");
  at::Tensor h = x;
  for (size_t i = 0; i < n_backbone; ++i) {
    h = at::linear(h, weights[i], biases[i]);
    h.relu_();
    if (train) h = fast_dropout(h, dropped[i], generator);
  }
  h = at::linear(h, weights[n_backbone], biases[n_backbone]);
  if (train) {
    // nn.BatchNorm1d counts its training batches (a buffer; not part of the graph).
    at::NoGradGuard no_grad;
    num_batches_tracked.add_(1);
  }
  h = at::batch_norm(h, bn_weight, bn_bias, running_mean, running_var, train, bn_momentum, bn_eps,
                     /*cudnn_enabled=*/false);
  h.relu_();
  if (train) h = fast_dropout(h, dropped[n_backbone], generator);
  return at::linear(h, weights[n_backbone + 1], biases[n_backbone + 1]);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "mulsupcon: the vector encoder's forward in one C++ call (same operations as the modules)";
  m.def("mlp_encoder_forward", &mlp_encoder_forward, py::call_guard<py::gil_scoped_release>());
}
