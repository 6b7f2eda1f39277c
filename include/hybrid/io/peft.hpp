// PEFT's on-disk LoRA layout: adapter_model.safetensors (lora_A / lora_B and modules_to_save tensors named
// base_model.model.<name>) + adapter_config.json, saved from and loaded into any module (layers/lora.hpp).
#pragma once
#include <filesystem>
#include <random>
#include <string>
#include <vector>

// lora_config_to_json / lora_config_from_json take and return nlohmann::json: with HYBRID_COMPILED, callers that
// build or read those values include <nlohmann/json.hpp> themselves (the bodies here need all of it).
#include <nlohmann/json_fwd.hpp>

#include "hybrid/core/compiled.hpp"
#include "hybrid/io/checkpoint.hpp"
#include "hybrid/io/hf_bert.hpp"
#include "hybrid/layers/lora.hpp"

#if HYBRID_DEFINE
#include <nlohmann/json.hpp>
#endif

namespace hybrid::io {

inline constexpr const char* peft_prefix = "base_model.model";

struct peft_save_options {
  std::string base_model_name_or_path{};  // adapter_config.json's pointer to the base checkpoint
};

// adapter_config.json as PEFT (0.1x) writes it for a LoraConfig; fields hybrid has no counterpart for carry
// PEFT's defaults.
HYBRID_DECL nlohmann::json lora_config_to_json(const layers::lora_config& c, const peft_save_options& o = {});

// The fields hybrid implements; anything that would change the computation (bias other than "none",
// rank/alpha patterns, rsLoRA, a target_modules regex, layer selection) is a checkpoint_error.
HYBRID_DECL layers::lora_config lora_config_from_json(const nlohmann::json& j);

namespace detail::peft {

// adapter_config.json written atomically (2-space indent, trailing newline), and read back (not valid JSON or
// not a LoRA config: checkpoint_error).
HYBRID_DECL void write_lora_config(const std::filesystem::path& file, const layers::lora_config& c,
                                   const peft_save_options& o);
HYBRID_DECL layers::lora_config read_lora_config(const std::filesystem::path& file);

// The adapter state of m as a module, so the generic checkpoint code saves and loads it.
template <class M>
struct lora_state_view {
  using value_type = typename M::value_type;
  M& m;
  const layers::lora_config& c;
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    layers::visit_lora_state(m, c, prefix, f);
  }
};

}  // namespace detail::peft

// Writes DIR/adapter_model.safetensors (F32, PEFT's names) and DIR/adapter_config.json, creating DIR. m must
// carry the adapters apply_lora(m, c) added; the modules_to_save found (by default the SEQ_CLS head) are saved whole.
template <module M>
void save_lora_adapter(M& m, const layers::lora_config& c, const std::filesystem::path& dir,
                       const peft_save_options& o = {}) {
  if (layers::count_lora(m) == 0) throw std::logic_error("save_lora_adapter: the model carries no LoRA adapter");
  std::filesystem::create_directories(dir);
  detail::peft::lora_state_view<M> view{m, c};
  save_parameters(view, dir / "adapter_model.safetensors", {{"format", "pt"}}, peft_prefix);
  detail::peft::write_lora_config(dir / "adapter_config.json", c, o);
}

// Reads DIR/adapter_config.json, adds the adapters it describes to m (apply_lora, freezing the rest) unless m
// already carries them, and loads every adapter and modules_to_save tensor from DIR/adapter_model.safetensors.
// A missing, unexpected or mis-shaped tensor is an error (m's values are left unchanged on a tensor error).
template <module M>
layers::lora_config load_lora_adapter(M& m, const std::filesystem::path& dir) {
  layers::lora_config c = detail::peft::read_lora_config(dir / "adapter_config.json");
  bool merged = false;
  layers::for_each_lora(m, [&](const std::string&, auto& l) { merged = merged || l.lora()->merged(); });
  if (merged) throw std::logic_error("load_lora_adapter: unmerge the model's adapters first");
  if (layers::count_lora(m) == 0) layers::apply_lora(m, c);
  detail::peft::lora_state_view<M> view{m, c};
  load_parameters(view, dir / "adapter_model.safetensors",
                  {.strip_prefix = peft_prefix,
                   .add_prefix = "",
                   .rename = {},
                   .strict = true,
                   .unexpected = unexpected_tensors::error});
  return c;
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL void detail::peft::write_lora_config(const std::filesystem::path& file, const layers::lora_config& c,
                                                 const peft_save_options& o) {
  detail::hf::write_json(file, lora_config_to_json(c, o));
}

HYBRID_DECL layers::lora_config detail::peft::read_lora_config(const std::filesystem::path& file) {
  return lora_config_from_json(detail::hf::read_json(file));
}

HYBRID_DECL nlohmann::json lora_config_to_json(const layers::lora_config& c, const peft_save_options& o) {
  nlohmann::json modules_to_save = nullptr;
  if (!c.modules_to_save.empty() || c.task_type == "SEQ_CLS") {
    modules_to_save = nlohmann::json::array();
    for (const auto& s : c.saved_modules()) modules_to_save.push_back(s.name);
  }
  return {{"alpha_pattern", nlohmann::json::object()},
          {"auto_mapping", nullptr},
          {"base_model_name_or_path",
           o.base_model_name_or_path.empty() ? nlohmann::json(nullptr) : nlohmann::json(o.base_model_name_or_path)},
          {"bias", "none"},
          {"fan_in_fan_out", false},
          {"inference_mode", true},
          {"init_lora_weights", true},
          {"layers_pattern", nullptr},
          {"layers_to_transform", nullptr},
          {"lora_alpha", c.alpha},
          {"lora_dropout", c.dropout},
          {"modules_to_save", modules_to_save},
          {"peft_type", "LORA"},
          {"r", c.rank},
          {"rank_pattern", nlohmann::json::object()},
          {"revision", nullptr},
          {"target_modules", c.target_modules},
          {"task_type", c.task_type.empty() ? nlohmann::json(nullptr) : nlohmann::json(c.task_type)},
          {"use_rslora", false}};
}

HYBRID_DECL layers::lora_config lora_config_from_json(const nlohmann::json& j) {
  auto bad = [](const std::string& what) -> checkpoint_error {
    return checkpoint_error("adapter_config.json: " + what);
  };
  if (!j.is_object()) throw bad(std::string("expected a JSON object, got ") + j.type_name());
  if (j.value("peft_type", "") != "LORA") throw bad("peft_type is not \"LORA\"");
  auto get = [&](const char* key) -> const nlohmann::json& {
    auto it = j.find(key);
    if (it == j.end()) throw bad(std::string("'") + key + "' is missing");
    return *it;
  };
  auto unsupported_unless = [&](const char* key, auto&& ok) {
    if (auto it = j.find(key); it != j.end() && !ok(*it))
      throw bad(std::string("'") + key + "' = " + it->dump() + " is not supported");
  };
  auto empty_or_null = [](const nlohmann::json& v) { return v.is_null() || v.empty(); };
  unsupported_unless("bias", [](const nlohmann::json& v) { return v == "none"; });
  unsupported_unless("use_rslora", [](const nlohmann::json& v) { return v == false; });
  unsupported_unless("use_dora", [](const nlohmann::json& v) { return v == false; });
  unsupported_unless("fan_in_fan_out", [](const nlohmann::json& v) { return v == false; });
  for (const char* k : {"rank_pattern", "alpha_pattern", "layers_to_transform", "layers_pattern"})
    unsupported_unless(k, empty_or_null);

  layers::lora_config c;
  const auto& r = get("r");
  if (!r.is_number_integer() || r.get<std::int64_t>() <= 0)
    throw bad("'r' = " + r.dump() + " is not a positive integer");
  c.rank = r.get<index_t>();
  const auto& alpha = get("lora_alpha");
  if (!alpha.is_number()) throw bad("'lora_alpha' = " + alpha.dump() + " is not a number");
  c.alpha = alpha.get<double>();
  c.dropout = 0;
  if (auto it = j.find("lora_dropout"); it != j.end()) {
    if (!it->is_number() || !(it->get<double>() >= 0 && it->get<double>() < 1))
      throw bad("'lora_dropout' = " + it->dump() + " is not a number in [0, 1)");
    c.dropout = it->get<double>();
  }
  auto string_list = [&](const char* key, bool required) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) {
      if (required) throw bad(std::string("'") + key + "' is missing");
      return out;
    }
    if (!it->is_array())
      throw bad(std::string("'") + key + "' = " + it->dump() +
                " is not a list of module names (regexes are not supported)");
    for (const auto& s : *it) {
      if (!s.is_string()) throw bad(std::string("'") + key + "' = " + it->dump() + " is not a list of strings");
      out.push_back(s.get<std::string>());
    }
    return out;
  };
  c.target_modules = string_list("target_modules", true);
  c.modules_to_save = string_list("modules_to_save", false);
  c.task_type = "";
  if (auto it = j.find("task_type"); it != j.end() && !it->is_null()) {
    if (!it->is_string()) throw bad("'task_type' = " + it->dump() + " is not a string");
    c.task_type = it->get<std::string>();
  }
  return c;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
