// A user's program: composes a small model from the umbrella header, takes one training step, writes a
// safetensors checkpoint and reads it back. Exits non-zero on any mismatch.
#include <hybrid/hybrid.hpp>
#include <hybrid/io/checkpoint.hpp>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>

int main(int argc, char** argv) {
  using namespace hybrid;
  if (std::strcmp(version_string, EXPECTED_VERSION) != 0) {
    std::fprintf(stderr, "version %s, expected %s\n", version_string, EXPECTED_VERSION);
    return 1;
  }
  static_assert(HYBRID_VERSION == HYBRID_VERSION_MAJOR * 10000 + HYBRID_VERSION_MINOR * 100 + HYBRID_VERSION_PATCH);
  layers::linear<float> net(4, 3);
  std::mt19937 rng(1);
  net.init_bert(rng);
  assign_names(net);
  optim::adamw<float> opt(parameters_of(net), {.lr = 1e-2});
  tensor<float> x({2, 4}, {1, 2, 3, 4, -1, 0, 1, 2});
  const std::vector<std::int32_t> y{0, 2};
  opt.zero_grad();
  var<float> loss = cross_entropy(net(constant(x)), y);
  const double before = loss.item();
  loss.backward();
  opt.step();
  const auto file = std::filesystem::path(argc > 1 ? argv[1] : ".") / "consumer.safetensors";
  io::save_parameters(net, file);
  layers::linear<float> back(4, 3);
  assign_names(back);
  io::load_parameters(back, io::safetensors_reader::open(file));
  no_grad ng;
  const double after = cross_entropy(back(constant(x)), y).item();
  std::printf("hybrid %s: loss %.4f -> %.4f after one step, checkpoint round trip ok\n", version_string, before, after);
  return after < before ? 0 : 1;
}
