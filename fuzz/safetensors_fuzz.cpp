// libFuzzer target: safetensors_reader::from_bytes on arbitrary bytes, then every tensor read as float (and
// as int64, which may refuse values), and the parsed file written back and re-read: it must survive unchanged.
#include <hybrid/io/safetensors.hpp>

#include <cstring>
#include <exception>
#include <vector>

#include "fuzz_common.hpp"

using namespace hybrid::io;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::vector<tensor_to_write> back;
  std::uint64_t covered = 0;
  try {
    const safetensors_reader r = safetensors_reader::from_bytes(fuzz::bytes(data, size), "fuzz");
    for (const tensor_info& t : r.tensors()) {
      FUZZ_CHECK(r.find(t.name) == &t);
      FUZZ_CHECK(t.nbytes() == t.numel() * dtype_size(t.type));
      covered += t.nbytes();
      const std::vector<float> f = r.read<float>(t.name);  // floating destinations take every stored value
      FUZZ_CHECK(f.size() == t.numel());
      try {
        (void)r.read<std::int64_t>(t.name);
      } catch (const std::range_error&) {  // documented: a value int64 cannot hold exactly
      }
      back.push_back({t.name, t.shape, raw_tensor_data{t.type, r.raw(t)}});
    }
    FUZZ_CHECK(covered == r.data_size());  // the tensors tile the buffer exactly
    // Round trip: what the reader accepted, the writer writes and the reader reads back identically.
    const std::vector<std::byte> again = serialize_safetensors(back, r.metadata());
    const safetensors_reader r2 = safetensors_reader::from_bytes(again, "fuzz round trip");
    FUZZ_CHECK(r2.tensors().size() == r.tensors().size());
    FUZZ_CHECK(r2.metadata() == r.metadata());
    for (const tensor_info& t : r.tensors()) {
      const tensor_info& u = r2.at(t.name);
      FUZZ_CHECK(u.type == t.type && u.shape == t.shape && u.nbytes() == t.nbytes());
      FUZZ_CHECK(t.nbytes() == 0 || std::memcmp(r.raw(t).data(), r2.raw(u).data(), t.nbytes()) == 0);
    }
  } catch (const std::exception&) {
  }
  return 0;
}
