// Must NOT compile: a tagging head reads the sequence of a modality the model does not have.
// expect-error: static.assert[a-z]* failed.*a head reads a modality the model does not have
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/tagging.hpp>
#include <hybrid/model.hpp>

constexpr hybrid::enc::bert_config a{.vocab = 10, .hidden = 32, .layers = 1, .heads = 2, .ffn = 8};
using net = hybrid::model<hybrid::encoders<hybrid::modality<"text", hybrid::enc::bert<a>>>, hybrid::fuse::concat,
                          hybrid::heads<hybrid::head::tagging<"ner", 5, "title">>>;
int main() {
  net m;
  return 0;
}
