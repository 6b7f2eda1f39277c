// pipeline::text_classifier: a Hugging Face BertForSequenceClassification directory (config.json,
// model.safetensors, vocab.txt) in, label + score per string out; save_text_classifier writes that directory.
#pragma once
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/enc/bert.hpp"
#include "hybrid/io/hf_bert.hpp"
#include "hybrid/io/wordpiece.hpp"
#include "hybrid/layers/linear.hpp"

namespace hybrid::pipeline {

// BertForSequenceClassification: BERT, dropout on the pooled output, a linear classifier; parameters named
// "bert.*" and "classifier.*" as transformers names them.
template <class T = float>
struct sequence_classifier {
  using value_type = T;
  enc::bert_model<T> bert;
  layers::linear<T> classifier;

  sequence_classifier(const enc::bert_config& c, index_t num_labels) : bert(c), classifier(c.hidden, num_labels) {
    std::mt19937 rng(43);
    classifier.init_bert(rng);
    assign_names(*this);
  }
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    bert.visit(join_name(prefix, "bert"), f);
    classifier.visit(join_name(prefix, "classifier"), f);
  }
  template <class F>
  void visit_modules(const std::string& prefix, F&& f) {
    f(join_name(prefix, "bert"), bert);
    f(join_name(prefix, "classifier"), classifier);
  }
  // Logits [B, num_labels].
  var<T> operator()(const enc::text_input& in, dropout_rng& rng, bool training = false) const {
    const var<T> pooled = bert(in, rng, training).pooled;
    return classifier(dropout(pooled, bert.config().dropout, rng, training), rng, training);
  }
};

// transformers' problem_type: softmax over the labels, or an independent sigmoid per label.
enum class problem_type { single_label, multi_label };

inline const char* problem_type_name(problem_type p) {
  return p == problem_type::multi_label ? "multi_label_classification" : "single_label_classification";
}

struct classification {
  std::string label;           // the best label
  index_t index = 0;           // its id
  double score = 0;            // its probability (softmax, or its own sigmoid for multi-label)
  std::vector<double> scores;  // every label's probability, by id
};

// The tokenizer of a model directory: DIR/vocab.txt, lower-casing as DIR/tokenizer_config.json's
// do_lower_case says (default true, as BertTokenizer).
inline io::wordpiece_tokenizer load_tokenizer(const std::filesystem::path& dir) {
  io::wordpiece_options o;
  const auto cfg = dir / "tokenizer_config.json";
  std::error_code ec;
  if (std::filesystem::exists(cfg, ec)) {
    const nlohmann::json j = io::detail::hf::read_json(cfg);
    if (auto it = j.find("do_lower_case"); j.is_object() && it != j.end()) {
      if (!it->is_boolean()) throw io::checkpoint_error("'" + cfg.string() + "': do_lower_case is not a boolean");
      o.lower_case = it->get<bool>();
    }
    if (auto it = j.find("strip_accents"); j.is_object() && it != j.end() && !it->is_null()) {
      if (!it->is_boolean()) throw io::checkpoint_error("'" + cfg.string() + "': strip_accents is not a boolean");
      o.strip_accents = it->get<bool>();
    }
  }
  return io::wordpiece_tokenizer::from_file(dir / "vocab.txt", o);
}

// Labels and problem type from config.json: id2label (keys "0".."n-1"), else num_labels (default 2, at most
// 2^20) as "LABEL_i".
struct label_config {
  std::vector<std::string> labels;
  problem_type problem = problem_type::single_label;
};

inline label_config label_config_from_json(const nlohmann::json& j) {
  constexpr std::int64_t max_labels = std::int64_t{1} << 20;
  auto bad = [](const std::string& what) { return io::checkpoint_error("classifier config.json: " + what); };
  label_config out;
  std::int64_t n = -1;
  if (auto it = j.find("num_labels"); it != j.end()) {
    if (!it->is_number_integer() || it->get<std::int64_t>() <= 0)
      throw bad("'num_labels' = " + it->dump() + " is not a positive integer");
    n = it->get<std::int64_t>();
    // Without id2label every label gets a generated name: bound the loop below (a 28-byte file asked for 10^11).
    if (n > max_labels) throw bad("'num_labels' = " + it->dump() + " is above " + std::to_string(max_labels));
  }
  if (auto it = j.find("id2label"); it != j.end() && !it->is_null()) {
    if (!it->is_object() || it->empty()) throw bad("'id2label' is not a non-empty object");
    out.labels.resize(it->size());
    std::vector<bool> seen(it->size());
    for (const auto& [key, value] : it->items()) {
      std::size_t id = 0, used = 0;
      try {
        id = std::stoul(key, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != key.size() || key.empty() || !std::isdigit(static_cast<unsigned char>(key[0])) || id >= seen.size() ||
          seen[id])
        throw bad("'id2label' key '" + key + "' is not one of the ids 0.." + std::to_string(seen.size() - 1));
      if (!value.is_string()) throw bad("'id2label' value " + value.dump() + " is not a string");
      seen[id] = true;
      out.labels[id] = value.get<std::string>();
    }
    if (n >= 0 && static_cast<std::size_t>(n) != out.labels.size())
      throw bad("'num_labels' = " + std::to_string(n) + " but 'id2label' has " + std::to_string(out.labels.size()) +
                " labels");
  } else {
    for (std::int64_t i = 0; i < (n < 0 ? 2 : n); ++i) out.labels.push_back("LABEL_" + std::to_string(i));
  }
  if (auto it = j.find("problem_type"); it != j.end() && !it->is_null()) {
    if (*it == "multi_label_classification")
      out.problem = problem_type::multi_label;
    else if (*it != "single_label_classification")
      throw bad("'problem_type' = " + it->dump() +
                " is not supported (single_label_classification or multi_label_classification)");
  } else if (out.labels.size() == 1) {
    out.problem = problem_type::multi_label;  // the transformers pipeline's rule: one label -> sigmoid
  }
  return out;
}

namespace detail {
// The head alone, named "classifier.*" as in the checkpoint.
template <class T>
struct classifier_view {
  using value_type = T;
  layers::linear<T>& head;
  template <class F>
  void visit(const std::string& prefix, F&& f) {
    head.visit(join_name(prefix, "classifier"), f);
  }
};
}  // namespace detail

struct text_classifier_options {
  std::size_t batch_size = 32;  // texts per forward pass
  std::size_t max_length = 0;   // tokens per text, truncated beyond; 0: the model's max_position_embeddings
};

template <class T = float>
class text_classifier {
 public:
  text_classifier(sequence_classifier<T> model, io::wordpiece_tokenizer tokenizer, label_config labels,
                  text_classifier_options o = {})
      : model_(std::move(model)), tok_(std::move(tokenizer)), labels_(std::move(labels)), opt_(o) {
    if (static_cast<index_t>(labels_.labels.size()) != model_.classifier.out_features())
      throw std::invalid_argument("text_classifier: " + std::to_string(labels_.labels.size()) +
                                  " labels for a classifier with " + std::to_string(model_.classifier.out_features()) +
                                  " outputs");
    if (static_cast<index_t>(tok_.vocab_size()) > model_.bert.config().vocab)
      throw io::checkpoint_error("text_classifier: the vocabulary has " + std::to_string(tok_.vocab_size()) +
                                 " tokens but the model's embedding table " +
                                 std::to_string(model_.bert.config().vocab));
    if (opt_.batch_size == 0) opt_.batch_size = 1;
  }

  // Loads DIR/config.json, DIR/model.safetensors (BertForSequenceClassification: bert.* and classifier.*),
  // DIR/vocab.txt. Missing files: std::system_error / std::runtime_error; bad contents: io::checkpoint_error,
  // io::format_error, shape_error naming the tensor.
  static text_classifier load(const std::filesystem::path& dir, text_classifier_options o = {}) {
    const auto cfg_path = dir / "config.json";
    const nlohmann::json j = io::detail::hf::read_json(cfg_path);
    enc::bert_config c = io::bert_config_from_json(j);
    label_config labels = label_config_from_json(j);
    const auto r = io::safetensors_reader::open(dir / "model.safetensors");
    c.pooler = r.find("bert.pooler.dense.weight") || r.find("pooler.dense.weight");
    sequence_classifier<T> m(c, static_cast<index_t>(labels.labels.size()));
    io::load_hf_bert(m.bert, r);
    detail::classifier_view<T> head{m.classifier};
    io::load_parameters(
        head, r,
        {.strip_prefix = "",
         .add_prefix = "",
         .rename = [](const std::string& n) { return n.starts_with("classifier.") ? n : std::string(); },
         .strict = true,
         .unexpected = io::unexpected_tensors::ignore});
    return text_classifier(std::move(m), load_tokenizer(dir), std::move(labels), o);
  }

  const std::vector<std::string>& labels() const { return labels_.labels; }
  problem_type problem() const { return labels_.problem; }
  sequence_classifier<T>& model() { return model_; }
  const io::wordpiece_tokenizer& tokenizer() const { return tok_; }

  // Logits [texts, labels], computed in batches of batch_size (padded to the longest text of the batch).
  template <io::text_range R>
  std::vector<std::vector<double>> logits(const R& texts) const {
    std::vector<std::string_view> all;
    for (auto&& t : texts) all.emplace_back(t);
    const std::size_t max_len =
        opt_.max_length ? opt_.max_length : static_cast<std::size_t>(model_.bert.config().max_positions);
    const io::encode_options eo{.max_length = max_len,
                                .truncation = io::truncation_strategy::longest_first,
                                .padding = io::padding_strategy::longest,
                                .add_special_tokens = true};
    std::vector<std::vector<double>> out;
    for (std::size_t b = 0; b < all.size(); b += opt_.batch_size) {
      const auto batch = std::span(all).subspan(b, std::min(opt_.batch_size, all.size() - b));
      const auto enc = tok_.encode_batch(batch, eo);
      const auto B = static_cast<index_t>(enc.size()), L = static_cast<index_t>(enc.front().size());
      enc::text_input in{tensor<std::int32_t>({B, L}), tensor<std::int32_t>({B, L}), tensor<float>({B, L})};
      for (index_t i = 0; i < B; ++i)
        for (index_t t = 0; t < L; ++t) {
          const auto& e = enc[static_cast<std::size_t>(i)];
          in.ids[i * L + t] = e.input_ids[static_cast<std::size_t>(t)];
          in.token_types[i * L + t] = e.token_type_ids[static_cast<std::size_t>(t)];
          in.attention_mask[i * L + t] = static_cast<float>(e.attention_mask[static_cast<std::size_t>(t)]);
        }
      no_grad ng;
      tape_scope scope;
      dropout_rng rng{};
      const var<T> y = model_(in, rng, false);
      const index_t K = y.dim(1);
      for (index_t i = 0; i < B; ++i) {
        auto& row = out.emplace_back(static_cast<std::size_t>(K));
        for (index_t k = 0; k < K; ++k) row[static_cast<std::size_t>(k)] = static_cast<double>(y[i * K + k]);
      }
    }
    return out;
  }

  template <io::text_range R>
  std::vector<classification> operator()(const R& texts) const {
    std::vector<classification> out;
    for (auto& z : logits(texts)) {
      classification c;
      c.scores = std::move(z);
      if (labels_.problem == problem_type::multi_label) {
        for (double& v : c.scores) v = 1 / (1 + std::exp(-v));
      } else {
        const double top = *std::max_element(c.scores.begin(), c.scores.end());
        double sum = 0;
        for (double& v : c.scores) sum += v = std::exp(v - top);
        for (double& v : c.scores) v /= sum;
      }
      c.index = std::max_element(c.scores.begin(), c.scores.end()) - c.scores.begin();
      c.label = labels_.labels[static_cast<std::size_t>(c.index)];
      c.score = c.scores[static_cast<std::size_t>(c.index)];
      out.push_back(std::move(c));
    }
    return out;
  }
  std::vector<classification> operator()(std::initializer_list<std::string_view> texts) const {
    return (*this)(std::span(texts.begin(), texts.size()));
  }
  classification operator()(std::string_view text) const { return (*this)({text}).front(); }

 private:
  sequence_classifier<T> model_;
  io::wordpiece_tokenizer tok_;
  label_config labels_;
  text_classifier_options opt_;
};

struct save_text_classifier_options {
  problem_type problem = problem_type::single_label;
  bool lower_case = true;  // tokenizer_config.json's do_lower_case
};

// Writes DIR/config.json (BertForSequenceClassification with id2label, label2id, num_labels, problem_type),
// DIR/model.safetensors (bert.* + classifier.*), DIR/vocab.txt (a copy of `vocab`) and DIR/tokenizer_config.json,
// creating DIR: what text_classifier::load and transformers' from_pretrained read. A model carrying LoRA adapters
// must be merged and unloaded first (layers::unload_lora).
template <class T>
void save_text_classifier(const std::filesystem::path& dir, enc::bert_model<T>& bert, layers::linear<T>& head,
                          const std::vector<std::string>& labels, const std::filesystem::path& vocab,
                          const save_text_classifier_options& o = {}) {
  if (head.in_features() != bert.width() || head.out_features() != static_cast<index_t>(labels.size()))
    throw shape_error("save_text_classifier", "classifier weight", head.weight().shape(), "[labels, hidden]",
                      hybrid::shape{static_cast<index_t>(labels.size()), bert.width()},
                      "the head must map the hidden size to one output per label");
  if (layers::count_lora(bert) + layers::count_lora(head) > 0)
    throw std::logic_error(
        "save_text_classifier: the model carries LoRA adapters; merge them first (layers::unload_lora)");
  std::filesystem::create_directories(dir);
  nlohmann::json j = io::bert_config_to_json(bert.config(), "BertForSequenceClassification");
  nlohmann::json id2label = nlohmann::json::object(), label2id = nlohmann::json::object();
  for (std::size_t i = 0; i < labels.size(); ++i) {
    id2label[std::to_string(i)] = labels[i];
    label2id[labels[i]] = i;
  }
  if (label2id.size() != labels.size()) throw std::invalid_argument("save_text_classifier: labels are not unique");
  j["id2label"] = id2label;
  j["label2id"] = label2id;
  j["num_labels"] = labels.size();
  j["problem_type"] = problem_type_name(o.problem);
  j["classifier_dropout"] = nullptr;

  io::f32_tensors t;
  t.add_parameters(bert, "bert");
  t.add_parameters(head, "classifier");
  io::save_safetensors(dir / "model.safetensors", t.tensors(), {{"format", "pt"}});
  io::detail::hf::write_json(dir / "config.json", j);
  io::detail::hf::write_json(dir / "tokenizer_config.json",
                             {{"do_lower_case", o.lower_case},
                              {"model_max_length", bert.config().max_positions},
                              {"tokenizer_class", "BertTokenizer"}});
  io::wordpiece_tokenizer::from_file(vocab);  // a vocabulary BERT's tokenizer can use, before it is copied
  std::error_code ec;
  if (!std::filesystem::equivalent(vocab, dir / "vocab.txt", ec))
    std::filesystem::copy_file(vocab, dir / "vocab.txt", std::filesystem::copy_options::overwrite_existing);
}

}  // namespace hybrid::pipeline
