// BERT encoder: matches a PyTorch re-statement of BertModel (fixture) and has correct gradients.
#include <doctest/doctest.h>

#include "../test_util.hpp"

#include <atomic>
#include <cstdlib>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/backend/gemm_avx512.hpp>
#include <hybrid/backend/prepacked_weights.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/io/safetensors.hpp>
#include <new>
#include <nlohmann/json.hpp>
#include <optional>

// Every C++ heap allocation of this test executable is counted (the replaceable global operator new; issue 7: the
// inference path allocates nothing per call after warm-up). Only this file of any test executable replaces it.
namespace bert_test_allocations {
inline std::atomic<long> count{0};
inline void* allocate(std::size_t n, std::size_t align) {
  count.fetch_add(1, std::memory_order_relaxed);
  n = n ? n : 1;
  void* p = align > alignof(std::max_align_t) ? std::aligned_alloc(align, (n + align - 1) / align * align)
                                               : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace bert_test_allocations
void* operator new(std::size_t n) { return bert_test_allocations::allocate(n, 0); }
void* operator new[](std::size_t n) { return bert_test_allocations::allocate(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return bert_test_allocations::allocate(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return bert_test_allocations::allocate(n, static_cast<std::size_t>(a));
}
// They free what the operators above took from malloc; GCC, seeing operator new's pointer reach free() once inlined,
// would warn of a mismatch that is not one.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

using namespace hybrid;

namespace {
const char* fixture = HYBRID_SOURCE_DIR "/tests/enc/fixtures/bert_reference.safetensors";

template <class T>
tensor<T> read_tensor(const io::safetensors_reader& r, const std::string& name) {
  const auto& info = r.at(name);
  tensor<T> t(hybrid::shape::from_range(info.shape.begin(), info.shape.end()));
  r.read_into<T>(name, t.span());
  return t;
}
}  // namespace

TEST_CASE("bert forward matches the PyTorch reference in float32") {
  auto r = io::safetensors_reader::open(fixture);
  auto j = nlohmann::json::parse(r.metadata().at("config"));
  enc::bert_config cfg{.vocab = j["vocab_size"], .hidden = j["hidden_size"], .layers = j["num_hidden_layers"],
                       .heads = j["num_attention_heads"], .ffn = j["intermediate_size"],
                       .max_positions = j["max_position_embeddings"], .type_vocab = j["type_vocab_size"]};
  enc::bert_model<float> m(cfg);
  int loaded = 0;
  m.visit("", [&](const std::string& name, parameter<float>& p) {
    const auto& info = r.at(name);
    REQUIRE(hybrid::shape::from_range(info.shape.begin(), info.shape.end()) == p.shape());
    r.read_into<float>(name, p.value().span());
    ++loaded;
  });
  CHECK(loaded == 5 + 16 * cfg.layers + 2);

  enc::text_input in{read_tensor<std::int32_t>(r, "input.input_ids"), read_tensor<std::int32_t>(r, "input.token_type_ids"),
                     read_tensor<float>(r, "input.attention_mask")};
  const auto want_seq = read_tensor<double>(r, "output.last_hidden_state");
  const auto want_pool = read_tensor<double>(r, "output.pooler_output");
  tape::current().reset();
  no_grad ng;
  dropout_rng rng{};
  auto out = m(in, rng, false);
  REQUIRE(out.sequence.shape() == want_seq.shape());
  REQUIRE(out.pooled.shape() == want_pool.shape());
  auto rel_err = [](std::span<const float> got, const tensor<double>& want) {
    double err = 0, scale = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      err = std::max(err, std::abs(got[i] - want[static_cast<index_t>(i)]));
      scale = std::max(scale, std::abs(want[static_cast<index_t>(i)]));
    }
    return err / scale;
  };
  CHECK(rel_err(out.sequence.values(), want_seq) < 1e-5);
  CHECK(rel_err(out.pooled.values(), want_pool) < 1e-5);
}

TEST_CASE("bert parameter names follow Hugging Face") {
  enc::bert_model<float> m({.vocab = 10, .hidden = 8, .layers = 1, .heads = 2, .ffn = 16, .max_positions = 6});
  std::vector<std::string> names;
  m.visit("bert", [&](const std::string& n, parameter<float>&) { names.push_back(n); });
  CHECK(names.front() == "bert.embeddings.word_embeddings.weight");
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.attention.self.query.weight") != names.end());
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.attention.output.LayerNorm.bias") != names.end());
  CHECK(std::find(names.begin(), names.end(), "bert.encoder.layer.0.output.dense.weight") != names.end());
  CHECK(names.back() == "bert.pooler.dense.bias");
  const index_t embeddings = 10 * 8 + 6 * 8 + 2 * 8 + 2 * 8;
  const index_t block = 4 * (8 * 8 + 8) + 2 * 8 + (16 * 8 + 16) + (8 * 16 + 8) + 2 * 8;
  CHECK(count_parameters(m) == embeddings + block + 8 * 8 + 8);
}

TEST_CASE("bert gradients match finite differences (double, tiny config, with padding)") {
  enc::bert_model<double> m({.vocab = 7, .hidden = 4, .layers = 1, .heads = 2, .ffn = 6, .max_positions = 5,
                             .dropout = 0, .attention_dropout = 0});
  std::mt19937 rng(3);
  const std::vector<parameter<double>*> ps = test_util::randomized_parameters(m, rng);
  enc::text_input in{tensor<std::int32_t>({2, 4}, {1, 5, 2, 6, 3, 3, 0, 4}), tensor<std::int32_t>({2, 4}, {0, 0, 1, 1, 0, 1, 1, 1}),
                     tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 0, 0})};
  dropout_rng drng{};
  auto r = check_gradients([&] {
    auto o = m(in, drng, false);
    return o.pooled;
  }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(r.report());
  CHECK(r.ok);
  auto r2 = check_gradients([&] { return m(in, drng, false).sequence; }, ps, {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  INFO(r2.report());
  CHECK(r2.ok);
}

TEST_CASE("bert inputs_embeds: the looked-up embeddings give the ids' outputs; gradients reach them") {
  const enc::bert_config cfg{.vocab = 7, .hidden = 4, .layers = 2, .heads = 2, .ffn = 6, .max_positions = 5,
                             .dropout = 0, .attention_dropout = 0};
  enc::bert_model<double> m(cfg);
  std::mt19937 rng(5);
  const std::vector<parameter<double>*> ps = test_util::randomized_parameters(m, rng);
  enc::text_input in{tensor<std::int32_t>({2, 4}, {1, 5, 2, 6, 3, 3, 0, 4}), tensor<std::int32_t>({2, 4}, {0, 0, 1, 1, 0, 1, 1, 1}),
                     tensor<float>({2, 4}, {1, 1, 1, 1, 1, 1, 0, 0})};
  dropout_rng drng{};
  {
    tape::current().reset();
    enc::bert_trace<double> by_ids_trace, by_embeds_trace;
    const auto by_ids = m(in, drng, false, &by_ids_trace);
    const var<double> words = m.word_embeddings()(in.ids.span(), {2, 4});
    enc::text_input no_ids{{}, in.token_types, in.attention_mask};
    const auto by_embeds = m(no_ids, words, drng, false, &by_embeds_trace);
    CHECK(test_util::same_values(by_embeds.sequence.value(), by_ids.sequence.value()));
    CHECK(test_util::same_values(by_embeds.pooled.value(), by_ids.pooled.value()));
    // Hugging Face's hidden_states: the embeddings' output, then each layer's; the last is the sequence output.
    const auto& states = by_ids_trace.hidden_states;
    REQUIRE(states.size() == 3);
    REQUIRE(by_embeds_trace.hidden_states.size() == 3);
    CHECK(test_util::same_values(states.back(), by_ids.sequence.value()));
    for (std::size_t i = 0; i < 3; ++i) CHECK(test_util::same_values(by_embeds_trace.hidden_states[i], states[i]));
    CHECK(states[0].shape() == hybrid::shape{2, 4, 4});
    // output_attentions: per layer [B, heads, L, L], rows summing to 1, nothing on the padded keys.
    const auto& att = by_ids_trace.attentions;
    REQUIRE(att.size() == 2);
    for (const auto& a : att) {
      REQUIRE(a.shape() == hybrid::shape{2, 2, 4, 4});
      for (index_t r = 0; r < 2 * 2 * 4; ++r) {
        double sum = 0;
        for (index_t j = 0; j < 4; ++j) sum += a.data()[r * 4 + j];
        CHECK(sum == doctest::Approx(1.0).epsilon(1e-12));
        if (r >= 2 * 4)  // batch row 1: its last two keys are padding
          CHECK(a.data()[r * 4 + 2] + a.data()[r * 4 + 3] < 1e-12);
      }
    }
    // A trace changes nothing in the outputs.
    CHECK(test_util::same_values(m(in, drng, false).pooled.value(), by_ids.pooled.value()));
  }
  // d pooled / d inputs_embeds by finite differences, with the model's parameters.
  parameter<double> embeds("inputs_embeds", {2, 4, 4});
  fill_uniform(embeds.value(), rng, -1, 1);
  std::vector<parameter<double>*> with_embeds = ps;
  with_embeds.push_back(&embeds);
  test_util::expect_gradients([&] { return m(in, embeds.use(), drng, false).pooled; }, with_embeds,
                               {.eps = 1e-6, .rtol = 1e-5, .atol = 1e-8});
  // Shapes are checked, naming both.
  tape::current().reset();
  parameter<double> wrong("w", {2, 4, 3}), longer("l", {2, 6, 4});
  CHECK_THROWS_WITH_AS(m(in, wrong.use(), drng), doctest::Contains("[2, 4, 3]"), shape_error);
  CHECK_THROWS_WITH_AS(m(in, longer.use(), drng), doctest::Contains("[2, 4]"), shape_error);  // ids of another length
  CHECK_THROWS_WITH_AS(m(enc::text_input{}, longer.use(), drng), doctest::Contains("max_positions"), shape_error);
}

TEST_CASE("bert inference keeps no tape and allocates nothing per call after warm-up") {
  enc::bert_model<float> m(enc::bert_config{.vocab = 500, .hidden = 64, .layers = 2, .heads = 2, .ffn = 128,
                                            .max_positions = 64});
  enc::text_input in;
  const index_t B = 4, L = 48;
  in.ids = tensor<std::int32_t>({B, L});
  in.token_types = tensor<std::int32_t>({B, L});
  in.attention_mask = tensor<float>({B, L});
  for (index_t i = 0; i < B * L; ++i) {
    in.ids.data()[i] = static_cast<std::int32_t>((7 * i) % 500);
    in.token_types.data()[i] = static_cast<std::int32_t>(i % L >= L / 2);
    in.attention_mask.data()[i] = i % L < L - 5 * (i / L) ? 1.f : 0.f;  // rows padded by 0, 5, 10, 15
  }
  dropout_rng rng{3, 0};
  for (const bool given_types : {true, false})
    for (const bool prepacked : {true, false}) {
      CAPTURE(given_types);
      CAPTURE(prepacked);
      enc::text_input input = in;
      if (!given_types) input.token_types = {};
      std::optional<gemm::prepacked_weights> serving;
      if (prepacked) serving.emplace();
      float first = 0;
      for (int call = 0; call < 4; ++call) {
        const long before = bert_test_allocations::count.load();
        const long pack_buffers_before = gemm::avx512_detail::pack_buffers_allocated().load();
        {
          no_grad ng;
          tape_scope scope;
          const auto out = m(input, rng, false);
          CHECK(tape::current().entries() == 0);  // nothing recorded for a backward pass
          if (call == 0) first = out.sequence.data()[0] + out.pooled.data()[0];
          else CHECK(out.sequence.data()[0] + out.pooled.data()[0] == first);
        }
        // Less the GEMM kernel's per-thread pack buffers: two on each thread's first product, whichever call
        // oneTBB first hands one to a given worker (counted apart, so none other hides among them).
        const long allocations = bert_test_allocations::count.load() - before -
                                 (gemm::avx512_detail::pack_buffers_allocated().load() - pack_buffers_before);
        if (call >= 2) CHECK(allocations == 0);  // call 0 grows the arena and packs; call 1 may fill pools
      }
    }
  // The counter does count (the replacement above is the one in use).
  const long before = bert_test_allocations::count.load();
  const tensor<float> probe({64});
  CHECK(probe.numel() == 64);
  CHECK(bert_test_allocations::count.load() > before);
}

}  // namespace HYBRID_TEST_UNIT

