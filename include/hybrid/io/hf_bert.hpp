// Hugging Face BERT checkpoints: config.json <-> enc::bert_config, and model.safetensors of BertModel /
// BertFor* models (with or without the "bert." prefix, legacy gamma/beta names) loaded into and saved from bert_model.
#pragma once
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <system_error>
#include <utility>

// bert_config_from_json / bert_config_to_json take and return nlohmann::json: with HYBRID_COMPILED, callers
// that build or read those values include <nlohmann/json.hpp> themselves (the bodies here need all of it).
#include <nlohmann/json_fwd.hpp>

#include "hybrid/core/compiled.hpp"
#include "hybrid/enc/bert.hpp"
#include "hybrid/io/checkpoint.hpp"

#if HYBRID_DEFINE
#include <nlohmann/json.hpp>
#endif

namespace hybrid::io {

// ---- config.json ----------------------------------------------------------------------------------

namespace detail::hf {

[[noreturn]] inline void bad_config(const std::string& what) {
  throw checkpoint_error(cat("BERT config.json: ", what));
}

// A positive integer field; absent fields keep BertConfig's default (already in `out`).
HYBRID_DECL void get_positive(const nlohmann::json& j, const char* key, index_t& out);

HYBRID_DECL void get_number(const nlohmann::json& j, const char* key, double& out, double lo, double hi);

// Sizes a model can be built with: ids, positions and token types are int32, and every weight matrix
// (rows x hidden_size) must have a byte size (as double) that size_t holds, else building the model would
// overflow its size computations instead of failing cleanly.
HYBRID_DECL void check_buildable(const enc::bert_config& c);

// A string field that must equal `want` when present.
HYBRID_DECL void expect_string(const nlohmann::json& j, const char* key, const char* want, const char* why);

HYBRID_DECL std::string slurp(const std::filesystem::path& p);

HYBRID_DECL std::filesystem::path in_dir(const std::filesystem::path& p, const char* file);

// A JSON file of a checkpoint directory, parsed; not JSON: checkpoint_error "<what>'<p>' is not valid JSON: ...".
HYBRID_DECL nlohmann::json read_json(const std::filesystem::path& p, std::string_view what = "");

// Writes j atomically as transformers writes its JSON files: 2-space indent, a trailing newline.
HYBRID_DECL void write_json(const std::filesystem::path& p, const nlohmann::json& j);

}  // namespace detail::hf

// BertConfig's fields -> enc::bert_config. Absent fields take BertConfig's defaults (which are
// bert_config's); wrong types, non-positive sizes, sizes no model can be built with (above 2^31 - 1, or a
// weight matrix too large to address), hidden_size not divisible by the heads, and features
// hybrid's BERT lacks (hidden_act other than "gelu", relative positions, decoders) are checkpoint_errors.
HYBRID_DECL enc::bert_config bert_config_from_json(const nlohmann::json& j);

// Reads config.json (or DIR/config.json). Unreadable file: std::system_error; bad JSON: checkpoint_error.
HYBRID_DECL enc::bert_config read_bert_config(const std::filesystem::path& file_or_dir);

// The config.json transformers writes for a BertConfig (keys sorted, as transformers sorts them).
// A model without a pooler adds "add_pooling_layer": false, which transformers keeps as an attribute.
HYBRID_DECL nlohmann::json bert_config_to_json(const enc::bert_config& c,
                                               const std::string& architecture = "BertModel");

// Writes config.json atomically (2-space indent, trailing newline, as transformers does).
HYBRID_DECL void write_bert_config(const enc::bert_config& c, const std::filesystem::path& file,
                                   const std::string& architecture = "BertModel");

// ---- model.safetensors ----------------------------------------------------------------------------

// File name -> BertModel parameter name (after the "bert." prefix is stripped): legacy TF names
// LayerNorm.gamma/beta become weight/bias; the position_ids / token_type_ids buffers are skipped.
HYBRID_DECL std::string hf_bert_parameter_name(const std::string& name);

struct hf_bert_report : load_report {
  std::string prefix;  // "bert" for BertFor* checkpoints, "" for BertModel
};

struct hf_bert_load_options {
  bool strict = true;  // false: parameters absent from the file keep their values and are listed as missing
};

// Loads a BertModel / BertForMaskedLM / BertForPreTraining / BertForSequenceClassification checkpoint
// (a .safetensors file, or a directory holding model.safetensors). Tensors outside BertModel (cls.*,
// classifier.*, ...) are left for the caller: their file names are in report.unexpected.
// A checkpoint without a pooler fits a model built with `pooler = false`; loading it into a model with a
// pooler is a checkpoint_error saying so (or, not strict, leaves the pooler as it is).
template <class T>
hf_bert_report load_hf_bert(enc::bert_model<T>& model, const safetensors_reader& r,
                            const hf_bert_load_options& o = {}) {
  hf_bert_report rep;
  for (const tensor_info& t : r.tensors())
    if (t.name.starts_with("bert.embeddings.") || t.name.starts_with("bert.encoder.")) rep.prefix = "bert";
  const std::string pooler = join_name(rep.prefix, "pooler.dense.weight");
  if (o.strict && model.config().pooler && !r.find(pooler))
    throw checkpoint_error(
        detail::cat("load_hf_bert: '", r.source(), "' has no pooler ('", pooler,
                    "'): build the model with bert_config.pooler = false, or load with strict = false "
                    "to keep the pooler's own weights"));
  load_options lo{.strip_prefix = rep.prefix,
                  .add_prefix = "",
                  .rename = hf_bert_parameter_name,
                  .strict = o.strict,
                  .unexpected = unexpected_tensors::report};
  static_cast<load_report&>(rep) = load_parameters(model, r, lo);
  return rep;
}

template <class T>
hf_bert_report load_hf_bert(enc::bert_model<T>& model, const std::filesystem::path& file_or_dir,
                            const hf_bert_load_options& o = {}) {
  const std::filesystem::path p = detail::hf::in_dir(file_or_dir, "model.safetensors");
  std::error_code ec;
  if (!std::filesystem::exists(p, ec) && std::filesystem::exists(p.parent_path() / "pytorch_model.bin", ec))
    throw checkpoint_error(detail::cat("load_hf_bert: '", p,
                                       "' does not exist; pytorch_model.bin (pickle) is not read: "
                                       "convert it with safetensors.torch.save_file"));
  return load_hf_bert(model, safetensors_reader::open(p), o);
}

// A bert_model built from DIR/config.json and loaded from DIR/model.safetensors; without pooler weights
// in the file the model gets no pooler.
template <class T = float>
enc::bert_model<T> load_hf_bert_model(const std::filesystem::path& dir, hf_bert_report* report = nullptr) {
  enc::bert_config c = read_bert_config(dir / "config.json");
  const safetensors_reader r = safetensors_reader::open(dir / "model.safetensors");
  c.pooler = r.find("pooler.dense.weight") || r.find("bert.pooler.dense.weight");
  enc::bert_model<T> m(c);
  hf_bert_report rep = load_hf_bert(m, r);
  if (report) *report = std::move(rep);
  return m;
}

struct hf_bert_save_options {
  bool bert_prefix = false;    // "bert.embeddings...", the layout of BertForMaskedLM and the other BertFor* models
  std::string architecture{};  // config.json "architectures"; default "BertModel", or "BertForMaskedLM" with the prefix
  std::map<std::string, std::string> metadata{};  // extra __metadata__; "format": "pt" is always written
};

// Writes DIR/model.safetensors (F32, BertModel names) and DIR/config.json, creating DIR; transformers'
// from_pretrained and safetensors.torch.load_file read both (the "format": "pt" metadata is required there).
template <class T>
void save_hf_bert(enc::bert_model<T>& model, const std::filesystem::path& dir, const hf_bert_save_options& o = {}) {
  std::filesystem::create_directories(dir);
  std::map<std::string, std::string> meta = o.metadata;
  meta["format"] = "pt";
  save_parameters(model, dir / "model.safetensors", meta, o.bert_prefix ? "bert" : "");
  const std::string arch = !o.architecture.empty() ? o.architecture : o.bert_prefix ? "BertForMaskedLM" : "BertModel";
  write_bert_config(model.config(), dir / "config.json", arch);
}

// ---- definitions (see hybrid/core/compiled.hpp) ------------------------------------------------------

#if HYBRID_DEFINE

HYBRID_DECL void detail::hf::get_positive(const nlohmann::json& j, const char* key, index_t& out) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
    bad_config(cat('\'', key, "' = ", it->dump(), " is not a positive integer"));
  out = it->get<index_t>();
}

HYBRID_DECL void detail::hf::get_number(const nlohmann::json& j, const char* key, double& out, double lo, double hi) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_number() || !(it->get<double>() >= lo && it->get<double>() < hi))
    bad_config(cat('\'', key, "' = ", it->dump(), " is not a number in [", nlohmann::json(lo).dump(), ", ",
                   nlohmann::json(hi).dump(), ')'));
  out = it->get<double>();
}

HYBRID_DECL void detail::hf::check_buildable(const enc::bert_config& c) {
  constexpr index_t max_dim = std::numeric_limits<std::int32_t>::max();
  constexpr index_t max_elements = std::numeric_limits<index_t>::max() / 8;
  const std::pair<const char*, index_t> rows[] = {{"vocab_size", c.vocab},
                                                  {"max_position_embeddings", c.max_positions},
                                                  {"type_vocab_size", c.type_vocab},
                                                  {"intermediate_size", c.ffn},
                                                  {"hidden_size", c.hidden}};
  for (const auto& [key, n] : rows) {
    if (n > max_dim) bad_config(cat('\'', key, "' = ", n, " is above ", max_dim));
    if (n > max_elements / c.hidden)
      bad_config(cat('\'', key, "' = ", n, " x hidden_size ", c.hidden, " is too many elements for one weight matrix"));
  }
}

HYBRID_DECL void detail::hf::expect_string(const nlohmann::json& j, const char* key, const char* want,
                                           const char* why) {
  auto it = j.find(key);
  if (it == j.end()) return;
  if (!it->is_string() || it->get_ref<const std::string&>() != want)
    bad_config(cat('\'', key, "' = ", it->dump(), " is not supported: ", why));
}

HYBRID_DECL std::string detail::hf::slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::system_error(errno ? errno : ENOENT, std::generic_category(), cat("cannot open '", p, '\''));
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

HYBRID_DECL nlohmann::json detail::hf::read_json(const std::filesystem::path& p, std::string_view what) {
  try {
    return nlohmann::json::parse(slurp(p));
  } catch (const nlohmann::json::exception& e) {
    throw checkpoint_error(cat(what, '\'', p, "' is not valid JSON: ", e.what()));
  }
}

HYBRID_DECL void detail::hf::write_json(const std::filesystem::path& p, const nlohmann::json& j) {
  const std::string text = j.dump(2) + "\n";
  write_file_atomically(p, [&](atomic_file_writer& w) { w.write(text); });
}

HYBRID_DECL std::filesystem::path detail::hf::in_dir(const std::filesystem::path& p, const char* file) {
  std::error_code ec;
  return std::filesystem::is_directory(p, ec) ? p / file : p;
}

HYBRID_DECL enc::bert_config bert_config_from_json(const nlohmann::json& j) {
  using detail::hf::bad_config;
  if (!j.is_object()) bad_config(detail::cat("expected a JSON object, got ", j.type_name()));
  detail::hf::expect_string(j, "model_type", "bert", "hybrid reads BERT (model_type \"bert\") checkpoints only");
  detail::hf::expect_string(j, "hidden_act", "gelu", "hybrid's BERT uses the exact erf GELU (\"gelu\") only");
  detail::hf::expect_string(j, "position_embedding_type", "absolute", "only absolute position embeddings exist here");
  for (const char* key : {"is_decoder", "add_cross_attention"})
    if (auto it = j.find(key); it != j.end() && *it != false)
      bad_config(detail::cat('\'', key, "' = ", it->dump(), " is not supported"));
  if (auto it = j.find("architectures"); it != j.end() && !it->is_null()) {
    if (!it->is_array()) bad_config(detail::cat("'architectures' = ", it->dump(), " is not an array of strings"));
    for (const auto& a : *it)
      if (!a.is_string()) bad_config(detail::cat("'architectures' = ", it->dump(), " is not an array of strings"));
  }
  enc::bert_config c;
  detail::hf::get_positive(j, "vocab_size", c.vocab);
  detail::hf::get_positive(j, "hidden_size", c.hidden);
  detail::hf::get_positive(j, "num_hidden_layers", c.layers);
  detail::hf::get_positive(j, "num_attention_heads", c.heads);
  detail::hf::get_positive(j, "intermediate_size", c.ffn);
  detail::hf::get_positive(j, "max_position_embeddings", c.max_positions);
  detail::hf::get_positive(j, "type_vocab_size", c.type_vocab);
  detail::hf::get_number(j, "layer_norm_eps", c.layer_norm_eps, 0.0, 1.0);
  detail::hf::get_number(j, "hidden_dropout_prob", c.dropout, 0.0, 1.0);
  detail::hf::get_number(j, "attention_probs_dropout_prob", c.attention_dropout, 0.0, 1.0);
  if (auto it = j.find("add_pooling_layer"); it != j.end()) {
    if (!it->is_boolean()) bad_config(detail::cat("'add_pooling_layer' = ", it->dump(), " is not a boolean"));
    c.pooler = it->get<bool>();
  }
  if (c.hidden % c.heads != 0)
    bad_config(detail::cat("hidden_size ", c.hidden, " is not a multiple of num_attention_heads ", c.heads));
  detail::hf::check_buildable(c);
  return c;
}

HYBRID_DECL enc::bert_config read_bert_config(const std::filesystem::path& file_or_dir) {
  const std::filesystem::path p = detail::hf::in_dir(file_or_dir, "config.json");
  const nlohmann::json j = detail::hf::read_json(p, "BERT config ");
  try {
    return bert_config_from_json(j);
  } catch (const checkpoint_error& e) {
    throw checkpoint_error(detail::cat(e.what(), " (in '", p, "')"));
  }
}

HYBRID_DECL nlohmann::json bert_config_to_json(const enc::bert_config& c, const std::string& architecture) {
  nlohmann::json j = {{"architectures", {architecture}},
                      {"attention_probs_dropout_prob", c.attention_dropout},
                      {"hidden_act", "gelu"},
                      {"hidden_dropout_prob", c.dropout},
                      {"hidden_size", c.hidden},
                      {"initializer_range", 0.02},
                      {"intermediate_size", c.ffn},
                      {"layer_norm_eps", c.layer_norm_eps},
                      {"max_position_embeddings", c.max_positions},
                      {"model_type", "bert"},
                      {"num_attention_heads", c.heads},
                      {"num_hidden_layers", c.layers},
                      {"pad_token_id", 0},
                      {"position_embedding_type", "absolute"},
                      {"torch_dtype", "float32"},
                      {"type_vocab_size", c.type_vocab},
                      {"use_cache", true},
                      {"vocab_size", c.vocab}};
  if (!c.pooler) j["add_pooling_layer"] = false;
  return j;
}

HYBRID_DECL void write_bert_config(const enc::bert_config& c, const std::filesystem::path& file,
                                   const std::string& architecture) {
  detail::hf::write_json(file, bert_config_to_json(c, architecture));
}

HYBRID_DECL std::string hf_bert_parameter_name(const std::string& name) {
  if (name == "embeddings.position_ids" || name == "embeddings.token_type_ids") return "";
  if (name.ends_with(".gamma")) return detail::cat(std::string_view(name).substr(0, name.size() - 6), ".weight");
  if (name.ends_with(".beta")) return detail::cat(std::string_view(name).substr(0, name.size() - 5), ".bias");
  return name;
}

#endif  // HYBRID_DEFINE

}  // namespace hybrid::io
