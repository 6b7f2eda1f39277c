// The `hybrid` command-line tool: inspect safetensors files, tokenize with a BERT vocabulary, embed and
// classify text with a model directory. One JSON line per result; errors go to stderr with exit 2 (usage) or 1.
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "hybrid/io/hf_bert.hpp"
#include "hybrid/io/safetensors.hpp"
#include "hybrid/io/wordpiece.hpp"
#include "hybrid/pipeline/text_classifier.hpp"

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace hybrid;

// Bad command lines (exit 2); everything else that goes wrong is an error (exit 1).
struct usage_error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct arguments {
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;
  std::vector<std::string> positional;

  bool has(const std::string& flag) const { return flags.contains(flag); }
  const std::string* value(const std::string& option) const {
    auto it = values.find(option);
    return it == values.end() ? nullptr : &it->second.back();
  }
  const std::string& required(const std::string& option) const {
    if (const std::string* v = value(option)) return *v;
    throw usage_error("missing required option " + option);
  }
};

struct command {
  const char* name;
  const char* summary;
  const char* help;
  std::vector<std::string> value_options, flag_options;
  int (*run)(const arguments&);
};

// Options may come anywhere ("--opt value" or "--opt=value"); "--" ends them, so texts may start with "-".
arguments parse(const command& c, std::span<char* const> args) {
  arguments out;
  bool options = true;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string a = args[i];
    if (options && a == "--") {
      options = false;
      continue;
    }
    if (!options || a.size() < 2 || a[0] != '-') {
      out.positional.push_back(a);
      continue;
    }
    std::string name = a, value;
    bool inline_value = false;
    if (const auto eq = a.find('='); a.starts_with("--") && eq != std::string::npos)
      name = a.substr(0, eq), value = a.substr(eq + 1), inline_value = true;
    auto known = [&](const std::vector<std::string>& list) {
      return std::find(list.begin(), list.end(), name) != list.end();
    };
    if (name == "--help" || name == "-h") {
      out.flags.insert("--help");
    } else if (known(c.value_options)) {
      if (!inline_value) {
        if (i + 1 >= args.size()) throw usage_error("option " + name + " needs a value");
        value = args[++i];
      }
      out.values[name].push_back(value);
    } else if (known(c.flag_options)) {
      if (inline_value) throw usage_error("option " + name + " takes no value");
      out.flags.insert(name);
    } else {
      throw usage_error("unknown option '" + a + "'");
    }
  }
  return out;
}

template <class I>
I parse_integer(std::string_view s, const std::string& what) {
  I v{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || s.empty())
    throw usage_error(what + ": '" + std::string(s) + "' is not an integer");
  return v;
}

// The double nearest to the float's shortest decimal form, so JSON shows 0.1 rather than 0.10000000149011612.
double tidy(float f) {
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, f);
  double d = 0;
  std::from_chars(buf, r.ptr, d);
  return d;
}

json floats(std::span<const float> v) {
  json a = json::array();
  for (float f : v) a.push_back(tidy(f));
  return a;
}

void emit(const json& j) { std::cout << j.dump(-1, ' ', false, json::error_handler_t::replace) << '\n'; }

std::vector<std::string> texts_of(const arguments& a) {
  if (a.positional.empty()) throw usage_error("no TEXT given");
  return a.positional;
}

// ---- inspect ----------------------------------------------------------------------------------------------

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

int run_inspect(const arguments& a) {
  if (a.positional.size() != 1) throw usage_error("inspect takes exactly one FILE");
  const auto r = io::safetensors_reader::open(a.positional[0]);
  std::uint64_t total = 0;
  for (const auto& t : r.tensors()) total += t.numel();
  if (a.has("--json")) {
    json tensors = json::array();
    for (const auto& t : r.tensors())
      tensors.push_back(
          {{"name", t.name}, {"dtype", io::dtype_name(t.type)}, {"shape", t.shape}, {"parameters", t.numel()}});
    emit({{"file", a.positional[0]},
          {"metadata", r.metadata()},
          {"tensors", tensors},
          {"tensor_count", r.tensors().size()},
          {"parameter_count", total}});
    return 0;
  }
  std::size_t width = 4;
  for (const auto& t : r.tensors()) width = std::max(width, t.name.size());
  for (const auto& [k, v] : r.metadata())
    std::cout << "# " << k << ": " << (v.size() > 100 ? v.substr(0, 97) + "..." : v) << '\n';
  std::cout << std::left << std::setw(static_cast<int>(width)) << "name"
            << "  dtype  shape\n";
  for (const auto& t : r.tensors())
    std::cout << std::setw(static_cast<int>(width)) << t.name << "  " << std::setw(5) << io::dtype_name(t.type) << "  "
              << shape_text(t.shape) << '\n';
  std::cout << r.tensors().size() << " tensors, " << total << " parameters\n";
  return 0;
}

// ---- tokenize ---------------------------------------------------------------------------------------------

json encoding_json(const io::encoding& e) {
  return {{"tokens", e.tokens},
          {"input_ids", e.input_ids},
          {"token_type_ids", e.token_type_ids},
          {"attention_mask", e.attention_mask}};
}

io::encode_options truncate_to(std::size_t max_length) {
  return {.max_length = max_length,
          .truncation = io::truncation_strategy::longest_first,
          .padding = io::padding_strategy::none,
          .add_special_tokens = true};
}

int run_tokenize(const arguments& a) {
  const auto texts = texts_of(a);
  io::wordpiece_options o;
  o.lower_case = !a.has("--cased");
  const auto tok = io::wordpiece_tokenizer::from_file(a.required("--vocab"), o);
  io::encode_options eo;
  if (const std::string* n = a.value("--max-length")) eo = truncate_to(parse_integer<std::size_t>(*n, "--max-length"));
  for (const auto& t : texts) emit(encoding_json(tok.encode(t, std::nullopt, eo)));
  return 0;
}

// ---- embed ------------------------------------------------------------------------------------------------

std::vector<std::int32_t> parse_ids(const std::string& list) {
  std::vector<std::int32_t> ids;
  std::size_t start = 0;
  while (true) {
    const auto comma = list.find(',', start);
    ids.push_back(parse_integer<std::int32_t>(std::string_view(list).substr(start, comma - start), "--ids"));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return ids;
}

int run_embed(const arguments& a) {
  const fs::path dir = a.required("--model");
  const auto* id_lists = a.values.contains("--ids") ? &a.values.at("--ids") : nullptr;
  if (id_lists && !a.positional.empty()) throw usage_error("give either TEXT... or --ids, not both");
  if (!id_lists && a.positional.empty()) throw usage_error("no TEXT (or --ids) given");
  std::vector<io::encoding> inputs;
  if (id_lists) {
    for (const auto& l : *id_lists) {
      io::encoding e;
      e.input_ids = parse_ids(l);
      inputs.push_back(std::move(e));
    }
  }
  const auto model = io::load_hf_bert_model<float>(dir);
  if (!id_lists) {
    const auto tok = pipeline::load_tokenizer(dir);
    for (const auto& t : a.positional)
      inputs.push_back(
          tok.encode(t, std::nullopt, truncate_to(static_cast<std::size_t>(model.config().max_positions))));
  }
  const index_t H = model.width();
  for (const auto& e : inputs) {
    // One sequence per pass: no padding, so a text's vectors do not depend on the other texts.
    const auto L = static_cast<index_t>(e.input_ids.size());
    enc::text_input in{tensor<std::int32_t>::from({1, L}, e.input_ids), {}, {}};
    no_grad ng;
    tape_scope scope;
    dropout_rng rng{};
    const auto out = model(in, rng, false);
    const std::span<const float> seq = out.sequence.values();
    json j = {{"input_ids", e.input_ids}};
    if (!e.tokens.empty()) j["tokens"] = e.tokens;
    j["cls"] = floats(seq.subspan(0, static_cast<std::size_t>(H)));
    j["pooled"] = floats(out.pooled.values());
    if (a.has("--all-tokens")) {
      json rows = json::array();
      for (index_t t = 0; t < L; ++t)
        rows.push_back(floats(seq.subspan(static_cast<std::size_t>(t * H), static_cast<std::size_t>(H))));
      j["last_hidden_state"] = std::move(rows);
    }
    emit(j);
  }
  return 0;
}

// ---- classify ---------------------------------------------------------------------------------------------

int run_classify(const arguments& a) {
  const auto texts = texts_of(a);
  pipeline::text_classifier_options o;
  if (const std::string* n = a.value("--batch-size")) {
    o.batch_size = parse_integer<std::size_t>(*n, "--batch-size");
    if (o.batch_size == 0) throw usage_error("--batch-size must be positive");
  }
  const auto clf = pipeline::text_classifier<float>::load(a.required("--model"), o);
  for (const auto& r : clf(texts)) {
    json j = {{"label", r.label}, {"score", r.score}};
    if (a.has("--all-scores")) {
      json s = json::object();
      for (std::size_t i = 0; i < r.scores.size(); ++i) s[clf.labels()[i]] = r.scores[i];
      j["scores"] = std::move(s);
    }
    emit(j);
  }
  return 0;
}

// ---- the commands -----------------------------------------------------------------------------------------

const std::vector<command>& commands() {
  static const std::vector<command> all = {
      {"inspect",
       "list the tensors of a safetensors file",
       "usage: hybrid inspect [--json] FILE.safetensors\n"
       "  Prints each tensor's name, dtype and shape, the file's metadata and the parameter count.\n"
       "  --json  one JSON object instead of the table\n",
       {},
       {"--json"},
       run_inspect},
      {"tokenize",
       "BERT WordPiece tokenization, one JSON line per text",
       "usage: hybrid tokenize --vocab vocab.txt [--cased] [--max-length N] TEXT...\n"
       "  Prints {tokens, input_ids, token_type_ids, attention_mask} for each TEXT ([CLS] TEXT [SEP]).\n"
       "  --cased         keep case and accents (for cased vocabularies)\n"
       "  --max-length N  truncate to N tokens, [CLS] and [SEP] included\n",
       {"--vocab", "--max-length"},
       {"--cased"},
       run_tokenize},
      {"embed",
       "BERT hidden states of texts, one JSON line per text",
       "usage: hybrid embed --model DIR [--all-tokens] TEXT...\n"
       "       hybrid embed --model DIR [--all-tokens] --ids 101,2023,102 [--ids ...]\n"
       "  DIR holds config.json, model.safetensors (BertModel or BertFor*) and vocab.txt.\n"
       "  Prints {input_ids, tokens, cls, pooled}: cls is the last hidden state of [CLS], pooled the pooler output.\n"
       "  --all-tokens  add last_hidden_state, every token's hidden state\n"
       "  --ids LIST    feed comma-separated token ids directly (repeatable; no vocab.txt needed)\n",
       {"--model", "--ids"},
       {"--all-tokens"},
       run_embed},
      {"classify",
       "label and score of texts, one JSON line per text",
       "usage: hybrid classify --model DIR [--all-scores] [--batch-size N] TEXT...\n"
       "  DIR is a BertForSequenceClassification directory (config.json with id2label, model.safetensors, vocab.txt).\n"
       "  Prints {label, score}: softmax probability, or the label's sigmoid for multi-label models.\n"
       "  --all-scores    add scores, every label's probability\n"
       "  --batch-size N  texts per forward pass (default 32)\n",
       {"--model", "--batch-size"},
       {"--all-scores"},
       run_classify},
  };
  return all;
}

void print_usage(std::ostream& os) {
  os << "usage: hybrid COMMAND [OPTIONS] ARGS...\n\ncommands:\n";
  for (const auto& c : commands()) os << "  " << std::left << std::setw(10) << c.name << c.summary << '\n';
  os << "\n'hybrid COMMAND --help' describes a command. Exit status: 0 ok, 1 error, 2 bad usage.\n";
}

int run(int argc, char** argv, std::string& context) {
  if (argc < 2) {
    print_usage(std::cerr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(std::cout);
    return 0;
  }
  for (const auto& c : commands())
    if (name == c.name) {
      context = std::string("hybrid ") + c.name;
      const arguments a = parse(c, std::span<char* const>(argv + 2, static_cast<std::size_t>(argc - 2)));
      if (a.has("--help")) {
        std::cout << c.help;
        return 0;
      }
      return c.run(a);
    }
  throw usage_error("unknown command '" + name + "'");
}

}  // namespace

int main(int argc, char** argv) {
  std::string context = "hybrid";
  int status = 1;
  try {
    status = run(argc, argv, context);
  } catch (const usage_error& e) {
    std::cerr << context << ": " << e.what() << "\nTry '" << context << " --help'.\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << context << ": error: " << e.what() << '\n';
    return 1;
  } catch (...) {
    std::cerr << context << ": error: unknown exception\n";
    return 1;
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << context << ": error: cannot write the output\n";
    return 1;
  }
  return status;
}
