// The vector encoder's forward (MLPBackbone + ProjectionHead) in one C++ call, for CPU pretraining.
//
// Why: on the CPU the yeast MLP's layers are small (64 x 512), so a pretraining step spends about as
// much time in Python (module calls, FastDropout's code, argument parsing) as in the kernels.
//
// * mlp_encoder_forward: one encoder in one call, through exactly the ATen operations the Python
//   modules run, in the same order and on the same tensors: values, autograd graph, gradients,
//   BatchNorm statistics and random draws are the same bit for bit (tested against the modules in
//   tests/test_fused_encoder.py). It releases the GIL, so MoCo's key encoder can run on a second
//   thread truly beside the query encoder.
// * FastDropout's masks from SplitMix64 in one pass (dropout_mask), the same as the Python code.
//
// The layout it expects (checked in Python, mulsupcon/models/fused.py):
//   backbone: [Linear -> ReLU(inplace) -> Dropout] x L
//   head:     Linear -> BatchNorm1d -> ReLU(inplace) -> Dropout -> Linear
#include <torch/extension.h>

#include <algorithm>
#include <cstdint>
#include <limits>

namespace {

// SplitMix64's output number w + 1 after `seed` (mulsupcon.train.common.splitmix64; unsigned arithmetic wraps).
inline uint64_t splitmix64_at(int64_t seed, int64_t w) {
  uint64_t z = static_cast<uint64_t>(seed) + static_cast<uint64_t>(w + 1) * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// One 64-bit draw from the generator (or the global one), exactly as FastDropout draws its seed.
int64_t draw_seed(const std::optional<at::Generator>& gen) {
  return at::empty({1}, at::kLong).random_(std::numeric_limits<int64_t>::min(), std::nullopt, gen).item<int64_t>();
}

// FastDropout's mask for x in ONE pass (the Python code takes six tensor operations), computed in
// float32 (float64 for float64 x), then cast to x's type: word w of SplitMix64(seed) gives the 16-bit
// lanes of elements 4w .. 4w+3 (little-endian, as the int16 view in Python); an element is kept, with
// value 65536 / (65536 - dropped) rounded to the working type, when its lane as a signed 16-bit number is
// at least dropped - 32768, else 0. Same values as FastDropout, bit for bit.
at::Tensor dropout_mask(const at::Tensor& x, int64_t dropped, int64_t seed) {
  const auto work = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor mask = at::empty(x.sizes(), x.options().dtype(work));  // contiguous
  const int64_t n = mask.numel();
  const int64_t threshold = dropped - 32768;
  const double scale = 65536.0 / static_cast<double>(65536 - dropped);
  AT_DISPATCH_FLOATING_TYPES(work, "dropout_mask", [&] {
    const scalar_t kept = static_cast<scalar_t>(scale);
    scalar_t* out = mask.data_ptr<scalar_t>();
    // Serial below 2^16 words (a 64 x 512 mask is 8192): waking a second thread costs more (measured
    // 23 us on one thread, 52 us split over two) than the ~0.7 ns per element of the loop.
    at::parallel_for(0, (n + 3) / 4, int64_t{1} << 16, [&](int64_t begin, int64_t end) {
      for (int64_t w = begin; w < end; ++w) {
        const uint64_t z = splitmix64_at(seed, w);
        const int64_t first = 4 * w, count = std::min<int64_t>(4, n - first);
        for (int64_t j = 0; j < count; ++j) {
          const auto lane = static_cast<int16_t>(static_cast<uint16_t>(z >> (16 * j)));
          out[first + j] = lane >= threshold ? kept : scalar_t(0);
        }
      }
    });
  });
  return mask.scalar_type() == x.scalar_type() ? mask : mask.to(x.scalar_type());
}

at::Tensor fast_dropout(const at::Tensor& x, int64_t dropped, const std::optional<at::Generator>& gen) {
  if (dropped == 0) return x;
  return x * dropout_mask(x, dropped, draw_seed(gen));
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
  m.def("dropout_mask", &dropout_mask, "FastDropout's mask for x's shape and dtype from a seed (tests)",
        py::call_guard<py::gil_scoped_release>());
}
