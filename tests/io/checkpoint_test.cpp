// Tests for hybrid/io/checkpoint.hpp: bitwise round trips, name mapping, strictness, dtype conversion, and
// every error (missing, mis-shaped, wrong dtype, clashing names, broken files) leaving the module untouched.
#include <doctest/doctest.h>
#include <unistd.h>

#include <bit>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <hybrid/autodiff/gradient_check.hpp>
#include <hybrid/enc/bert.hpp>
#include <hybrid/io/checkpoint.hpp>
#include <hybrid/layers/layer_norm.hpp>
#include <hybrid/layers/linear.hpp>
#include <random>
#include <string>
#include <vector>

namespace HYBRID_TEST_UNIT {  // one per file in a unity build: see tests/CMakeLists.txt

namespace fs = std::filesystem;
using namespace hybrid;

namespace {

struct temp_dir {
  fs::path path;
  temp_dir() {
    std::random_device rd;
    std::string name = "hybrid_checkpoint_test_";
    name += std::to_string(::getpid());
    name += '_';
    name += std::to_string(rd());
    path = fs::temp_directory_path() / name;
    fs::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A small module: linear -> layer norm -> linear.
template <class T>
struct tiny_net {
  using value_type = T;
  layers::linear<T> fc1{3, 5}, fc2{5, 2};
  layers::layer_norm<T> norm{5};
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    fc1.visit(join_name(prefix, "fc1"), f);
    norm.visit(join_name(prefix, "norm"), f);
    fc2.visit(join_name(prefix, "fc2"), f);
  }
  var<T> operator()(const var<T>& x) const { return fc2(norm(fc1(x))); }
};

// Holds a tiny_net under "inner", to load files written without that prefix.
struct wrapper {
  using value_type = float;
  tiny_net<float> inner;
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    inner.visit(join_name(prefix, "inner"), f);
  }
};

template <module M>
void randomize(M& m, unsigned seed) {
  std::mt19937 rng(seed);
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) { fill_uniform(p.value(), rng, -2, 2); });
}

template <module M>
std::vector<std::vector<typename M::value_type>> snapshot(M& m) {
  std::vector<std::vector<typename M::value_type>> out;
  m.visit("", [&](const std::string&, parameter<typename M::value_type>& p) {
    out.emplace_back(p.value().span().begin(), p.value().span().end());
  });
  return out;
}

template <class T>
bool bitwise_equal(const std::vector<std::vector<T>>& a, const std::vector<std::vector<T>>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (a[i].size() != b[i].size() || std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(T)) != 0) return false;
  return true;
}

std::vector<float> forward(const tiny_net<float>& m) {
  tape::current().reset();
  no_grad ng;
  tensor<float> x({4, 3}, {0.5f, -1.f, 2.f, 0.f, 1.f, -0.25f, 3.f, 1.5f, -2.f, 0.75f, 0.125f, -1.f});
  auto y = m(constant(x));
  return {y.values().begin(), y.values().end()};
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "(no exception)";
}

// The tensors of `m` under their names, F32, with `edit` applied to the list before writing.
template <class Edit>
void write_edited(tiny_net<float>& m, const fs::path& p, Edit edit) {
  io::f32_tensors t;
  t.add_parameters(m);
  std::vector<io::tensor_to_write> list(t.tensors().begin(), t.tensors().end());
  edit(list);
  io::save_safetensors(p, list);
}

std::vector<io::tensor_to_write>::iterator find_tensor(std::vector<io::tensor_to_write>& l, const std::string& name) {
  auto it = std::find_if(l.begin(), l.end(), [&](const io::tensor_to_write& t) { return t.name == name; });
  REQUIRE(it != l.end());
  return it;
}

// binary16 bits of a float that is exactly representable as a normal half (or zero).
std::uint16_t to_half(float f) {
  const auto b = std::bit_cast<std::uint32_t>(f);
  const auto sign = static_cast<std::uint16_t>((b >> 16) & 0x8000u);
  if ((b & 0x7fffffffu) == 0) return sign;
  const std::uint32_t exp = (b >> 23) & 0xffu;
  REQUIRE(exp >= 113);
  REQUIRE(exp <= 142);
  REQUIRE((b & 0x1fffu) == 0);
  return static_cast<std::uint16_t>(sign | ((exp - 112) << 10) | ((b >> 13) & 0x3ffu));
}

}  // namespace

TEST_CASE("checkpoint: save then load restores every parameter bitwise and the same forward output") {
  temp_dir d;
  const fs::path file = d.path / "net.safetensors";
  tiny_net<float> a;
  randomize(a, 1);
  io::save_parameters(a, file, {{"step", "12"}});

  auto r = io::safetensors_reader::open(file);
  CHECK(r.tensors().size() == 6);
  for (const auto& t : r.tensors()) CHECK(t.type == io::dtype::F32);
  CHECK(r.at("fc1.weight").shape == std::vector<std::int64_t>{5, 3});
  CHECK(r.at("norm.bias").shape == std::vector<std::int64_t>{5});

  tiny_net<float> b;
  CHECK_FALSE(bitwise_equal(snapshot(a), snapshot(b)));
  const io::load_report rep = io::load_parameters(b, file);
  CHECK(bitwise_equal(snapshot(a), snapshot(b)));
  CHECK(rep.loaded ==
        std::vector<std::string>{"fc1.weight", "fc1.bias", "norm.weight", "norm.bias", "fc2.weight", "fc2.bias"});
  CHECK(rep.missing.empty());
  CHECK(rep.unexpected.empty());
  CHECK(rep.metadata.at("step") == "12");
  const auto ya = forward(a), yb = forward(b);
  CHECK(std::memcmp(ya.data(), yb.data(), ya.size() * sizeof(float)) == 0);

  // Saving again over the file replaces it and leaves no temporary file behind.
  randomize(a, 2);
  io::save_parameters(a, file);
  CHECK(std::distance(fs::directory_iterator(d.path), fs::directory_iterator()) == 1);
  io::load_parameters(b, file);
  CHECK(bitwise_equal(snapshot(a), snapshot(b)));
}

TEST_CASE("checkpoint: a whole BERT round-trips bitwise with identical outputs") {
  temp_dir d;
  const enc::bert_config cfg{.vocab = 11, .hidden = 8, .layers = 2, .heads = 2, .ffn = 12, .max_positions = 7};
  enc::bert_model<float> a(cfg), b(cfg);
  randomize(a, 5);
  io::save_parameters(a, d.path / "bert.safetensors");
  const auto rep = io::load_parameters(b, d.path / "bert.safetensors");
  CHECK(rep.loaded.size() == 5 + 16 * 2 + 2);
  CHECK(bitwise_equal(snapshot(a), snapshot(b)));
  enc::text_input in{tensor<std::int32_t>({2, 5}, {1, 4, 2, 9, 3, 10, 0, 5, 5, 7}),
                     {},
                     tensor<float>({2, 5}, {1, 1, 1, 1, 1, 1, 1, 1, 0, 0})};
  tape::current().reset();
  no_grad ng;
  dropout_rng rng{};
  auto oa = a(in, rng), ob = b(in, rng);
  CHECK(std::memcmp(oa.sequence.data(), ob.sequence.data(), static_cast<std::size_t>(oa.sequence.numel()) * 4) == 0);
  CHECK(std::memcmp(oa.pooled.data(), ob.pooled.data(), static_cast<std::size_t>(oa.pooled.numel()) * 4) == 0);
}

TEST_CASE("checkpoint: a double module is written as F32 and read back rounded to float") {
  temp_dir d;
  tiny_net<double> a, b;
  randomize(a, 3);
  io::save_parameters(a, d.path / "d.safetensors");
  auto r = io::safetensors_reader::open(d.path / "d.safetensors");
  for (const auto& t : r.tensors()) CHECK(t.type == io::dtype::F32);
  io::load_parameters(b, d.path / "d.safetensors");
  auto sa = snapshot(a), sb = snapshot(b);
  bool rounded = true, changed = false;
  for (std::size_t i = 0; i < sa.size(); ++i)
    for (std::size_t k = 0; k < sa[i].size(); ++k) {
      rounded = rounded && sb[i][k] == static_cast<double>(static_cast<float>(sa[i][k]));
      changed = changed || sb[i][k] != sa[i][k];
    }
  CHECK(rounded);
  CHECK(changed);  // the values really went through float
}

TEST_CASE("checkpoint: prefixes and rename map file names onto parameter names") {
  temp_dir d;
  tiny_net<float> a;
  randomize(a, 4);

  SUBCASE("strip a prefix the file has") {
    io::save_parameters(a, d.path / "p.safetensors", {}, "model");
    CHECK(io::safetensors_reader::open(d.path / "p.safetensors").find("model.fc1.weight"));
    tiny_net<float> b;
    io::load_parameters(b, d.path / "p.safetensors", {.strip_prefix = "model"});
    CHECK(bitwise_equal(snapshot(a), snapshot(b)));
    tiny_net<float> c;  // a trailing dot is accepted too
    io::load_parameters(c, d.path / "p.safetensors", {.strip_prefix = "model."});
    CHECK(bitwise_equal(snapshot(a), snapshot(c)));
  }
  SUBCASE("add a prefix the module has") {
    io::save_parameters(a, d.path / "p.safetensors");
    wrapper w;
    const auto rep = io::load_parameters(w, d.path / "p.safetensors", {.add_prefix = "inner"});
    CHECK(rep.loaded.front() == "inner.fc1.weight");
    CHECK(bitwise_equal(snapshot(a), snapshot(w.inner)));
  }
  SUBCASE("rename, and skip what rename drops") {
    write_edited(a, d.path / "p.safetensors", [](std::vector<io::tensor_to_write>& l) {
      for (auto& t : l)
        if (t.name.starts_with("fc1.")) t.name.replace(0, 3, "dense_in");
      static const std::vector<std::int64_t> ids{0, 1, 2};
      l.push_back({"fc1.position_ids", {3}, std::span<const std::int64_t>(ids)});
    });
    tiny_net<float> b;
    const auto rep =
        io::load_parameters(b, d.path / "p.safetensors", {.rename = [](const std::string& n) -> std::string {
                              if (n.ends_with("position_ids")) return "";
                              return n.starts_with("dense_in.") ? "fc1." + n.substr(9) : n;
                            }});
    CHECK(bitwise_equal(snapshot(a), snapshot(b)));
    CHECK(rep.skipped == std::vector<std::string>{"fc1.position_ids"});
    CHECK(rep.unexpected.empty());
  }
}

TEST_CASE("checkpoint: a missing tensor is an error naming it; not strict, it is reported") {
  temp_dir d;
  const fs::path file = d.path / "m.safetensors";
  tiny_net<float> a;
  randomize(a, 6);
  write_edited(a, file, [](auto& l) { l.erase(find_tensor(l, "norm.bias")); });

  tiny_net<float> b;
  const auto before = snapshot(b);
  const std::string msg = message_of([&] { io::load_parameters(b, file); });
  CHECK(msg.find("norm.bias") != std::string::npos);
  CHECK(msg.find("1 parameter not found") != std::string::npos);
  CHECK(msg.find(file.string()) != std::string::npos);
  CHECK_THROWS_AS(io::load_parameters(b, file), io::checkpoint_error);
  CHECK(bitwise_equal(before, snapshot(b)));  // nothing was written

  const auto rep = io::load_parameters(b, file, {.strict = false});
  CHECK(rep.missing == std::vector<std::string>{"norm.bias"});
  CHECK(rep.loaded.size() == 5);
  CHECK(std::memcmp(b.fc1.weight().value().data(), a.fc1.weight().value().data(), 15 * sizeof(float)) == 0);
  CHECK(bitwise_equal(std::vector<std::vector<float>>{before[3]},
                      std::vector<std::vector<float>>{snapshot(b)[3]}));  // norm.bias kept its value

  // A file whose names carry a prefix the options do not strip: the message suggests it.
  io::save_parameters(a, file, {}, "bert");
  const std::string hint = message_of([&] { io::load_parameters(b, file); });
  CHECK(hint.find("6 parameters not found") != std::string::npos);
  CHECK(hint.find("'bert.fc1.weight'") != std::string::npos);
  CHECK(hint.find("prefix to strip") != std::string::npos);
}

TEST_CASE("checkpoint: a mis-shaped tensor is a shape_error naming the tensor and both shapes") {
  temp_dir d;
  const fs::path file = d.path / "s.safetensors";
  tiny_net<float> a;
  randomize(a, 7);
  static const std::vector<float> wrong(15, 1.f);
  write_edited(a, file, [](auto& l) {
    *find_tensor(l, "fc1.weight") = {"fc1.weight", {3, 5}, std::span<const float>(wrong)};
  });
  tiny_net<float> b;
  const auto before = snapshot(b);
  CHECK_THROWS_AS(io::load_parameters(b, file), shape_error);
  const std::string msg = message_of([&] { io::load_parameters(b, file); });
  CHECK(msg ==
        "load_parameters: checkpoint tensor 'fc1.weight' [3, 5] does not fit parameter 'fc1.weight' [5, 3] (file '" +
            file.string() + "')");
  CHECK(bitwise_equal(before, snapshot(b)));

  // A rank the library cannot hold is reported the same way.
  static const std::vector<float> five_d(5, 1.f);
  write_edited(a, file, [](auto& l) {
    *find_tensor(l, "fc2.bias") = {"fc2.bias", {1, 1, 1, 1, 2}, std::span<const float>(five_d).first(2)};
  });
  CHECK(message_of([&] {
          io::load_parameters(b, file);
        }).find("'fc2.bias' [1, 1, 1, 1, 2] does not fit parameter 'fc2.bias' [2]") != std::string::npos);
}

TEST_CASE("checkpoint: float dtypes convert to the module's type; integer dtypes are an error") {
  temp_dir d;
  const fs::path file = d.path / "t.safetensors";
  tiny_net<float> a;
  // Values k/8 are exact in every float dtype.
  std::mt19937 rng(8);
  a.visit("", [&](const std::string&, parameter<float>& p) {
    for (float& v : p.value().span()) v = static_cast<float>(static_cast<int>(rng() % 33) - 16) / 8.f;
  });
  std::vector<double> w64(a.fc1.weight().value().span().begin(), a.fc1.weight().value().span().end());
  std::vector<std::uint16_t> b16, h16;
  for (float v : a.fc1.bias().value().span())
    b16.push_back(static_cast<std::uint16_t>(std::bit_cast<std::uint32_t>(v) >> 16));
  const std::vector<float> norm_weight = snapshot(a)[2];
  for (float v : norm_weight) h16.push_back(to_half(v));
  write_edited(a, file, [&](auto& l) {
    *find_tensor(l, "fc1.weight") = {"fc1.weight", {5, 3}, std::span<const double>(w64)};
    *find_tensor(l, "fc1.bias") = {
        "fc1.bias", {5}, io::raw_tensor_data{io::dtype::BF16, std::as_bytes(std::span(b16))}};
    *find_tensor(l, "norm.weight") = {
        "norm.weight", {5}, io::raw_tensor_data{io::dtype::F16, std::as_bytes(std::span(h16))}};
  });
  tiny_net<float> b;
  io::load_parameters(b, file);
  CHECK(bitwise_equal(snapshot(a), snapshot(b)));
  tiny_net<double> c;
  io::load_parameters(c, file);
  CHECK(c.fc1.bias().value()[2] == static_cast<double>(a.fc1.bias().value()[2]));
  CHECK(snapshot(c)[2][4] == static_cast<double>(norm_weight[4]));

  static const std::vector<std::int32_t> ints{1, 2};
  write_edited(a, file, [](auto& l) {
    *find_tensor(l, "fc2.bias") = {"fc2.bias", {2}, std::span<const std::int32_t>(ints)};
  });
  const auto before = snapshot(b);
  CHECK_THROWS_AS(io::load_parameters(b, file), io::checkpoint_error);
  const std::string msg = message_of([&] { io::load_parameters(b, file); });
  CHECK(msg.find("tensor 'fc2.bias' has dtype I32") != std::string::npos);
  CHECK(msg.find("floating-point") != std::string::npos);
  CHECK(bitwise_equal(before, snapshot(b)));
}

TEST_CASE("checkpoint: unexpected tensors are reported by default, an error or ignored on request") {
  temp_dir d;
  const fs::path file = d.path / "u.safetensors";
  tiny_net<float> a;
  static const std::vector<float> extra{1, 2, 3};
  write_edited(a, file, [](auto& l) {
    l.push_back({"head.bias", {3}, std::span<const float>(extra)});
    l.push_back({"head.weight", {1, 3}, std::span<const float>(extra)});
  });
  tiny_net<float> b;
  auto rep = io::load_parameters(b, file);
  CHECK(rep.unexpected == std::vector<std::string>{"head.bias", "head.weight"});
  CHECK(rep.loaded.size() == 6);
  rep = io::load_parameters(b, file, {.unexpected = io::unexpected_tensors::ignore});
  CHECK(rep.unexpected.empty());
  const std::string msg =
      message_of([&] { io::load_parameters(b, file, {.unexpected = io::unexpected_tensors::error}); });
  CHECK(msg.find("2 tensors match no parameter: 'head.bias', 'head.weight'") != std::string::npos);
}

TEST_CASE("checkpoint: two file tensors claiming one parameter are an error naming both") {
  temp_dir d;
  const fs::path file = d.path / "c.safetensors";
  tiny_net<float> a;
  io::save_parameters(a, d.path / "plain.safetensors");
  write_edited(a, file, [](auto& l) {
    auto t = *find_tensor(l, "fc2.bias");
    t.name = "bert.fc2.bias";
    l.push_back(t);
  });
  tiny_net<float> b;
  const std::string msg = message_of([&] { io::load_parameters(b, file, {.strip_prefix = "bert"}); });
  CHECK(msg.find("tensors 'bert.fc2.bias' and 'fc2.bias' both map to parameter 'fc2.bias'") != std::string::npos);
}

TEST_CASE("checkpoint: broken and absent files are format and system errors") {
  temp_dir d;
  tiny_net<float> a, b;
  randomize(a, 9);
  io::save_parameters(a, d.path / "ok.safetensors");
  const auto size = fs::file_size(d.path / "ok.safetensors");
  fs::copy_file(d.path / "ok.safetensors", d.path / "cut.safetensors");
  fs::resize_file(d.path / "cut.safetensors", size - 4);
  const auto before = snapshot(b);
  CHECK_THROWS_AS(io::load_parameters(b, d.path / "cut.safetensors"), io::format_error);
  CHECK(message_of([&] { io::load_parameters(b, d.path / "cut.safetensors"); }).find("cut.safetensors") !=
        std::string::npos);
  fs::resize_file(d.path / "cut.safetensors", 5);
  CHECK_THROWS_AS(io::load_parameters(b, d.path / "cut.safetensors"), io::format_error);
  CHECK_THROWS_AS(io::load_parameters(b, d.path / "absent.safetensors"), std::system_error);
  CHECK(bitwise_equal(before, snapshot(b)));
  CHECK_THROWS_AS(io::save_parameters(a, d.path / "no_such_dir" / "x.safetensors"), std::system_error);
}

}  // namespace HYBRID_TEST_UNIT
