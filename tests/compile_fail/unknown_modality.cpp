// Must NOT compile: asks for an encoder by a name the model does not have.
// expect-error: static.assert[a-z]* failed.*model::encoder<name>: no modality with this name
#include <hybrid/enc/bert.hpp>
#include <hybrid/fuse/concat.hpp>
#include <hybrid/head/classify.hpp>
#include <hybrid/model.hpp>

constexpr hybrid::enc::bert_config a{.vocab = 10, .hidden = 32, .layers = 1, .heads = 2, .ffn = 8};
using net = hybrid::model<hybrid::encoders<hybrid::modality<"text", hybrid::enc::bert<a>>>, hybrid::fuse::concat,
                          hybrid::heads<hybrid::head::classify<"topic", 3>>>;
int main() {
  net m;
  auto& e = m.encoder<"image">();
  (void)e;
  return 0;
}
