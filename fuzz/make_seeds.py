#!/usr/bin/env python3
"""Writes the seed corpora fuzz/corpus/<target>/ and keeps them small (a few valid and edge-case inputs each).

Standard library only; the bytes follow each format's specification directly, not the code under test.
The safetensors seeds are the test fixtures (tests/io/fixtures/safetensors) plus edge cases built here.
Run from anywhere: python3 fuzz/make_seeds.py   (it rewrites fuzz/corpus/ from scratch)
"""
import json
import os
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode("utf-8"))


# ---- safetensors ----------------------------------------------------------------------------------------
def safetensors(tensors, metadata=None, pad=True):
    header, offset, buf = {}, 0, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        buf += raw
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + buf


def seeds_safetensors():
    fixtures = os.path.join(ROOT, "tests", "io", "fixtures", "safetensors")
    for f in sorted(os.listdir(fixtures)):
        if f.endswith(".safetensors"):
            with open(os.path.join(fixtures, f), "rb") as src:
                put("safetensors", f, src.read())
    put("safetensors", "empty_header", safetensors([]))
    put("safetensors", "metadata_only", safetensors([], {"format": "pt"}))
    put("safetensors", "scalar_and_empty", safetensors(
        [("s", "F64", [], struct.pack("<d", 2.5)), ("e", "F32", [0, 3], b"")], {"k": "v"}, pad=False))
    put("safetensors", "half_types", safetensors(
        [("h", "F16", [2], struct.pack("<2H", 0x3c00, 0x7c00)), ("b", "BF16", [2], struct.pack("<2H", 0x3f80, 0xff80)),
         ("f8", "F8_E4M3", [2], b"\x7f\x38"), ("g8", "F8_E5M2", [1], b"\x3c"), ("t", "BOOL", [2], b"\x00\x01")]))
    put("safetensors", "ints", safetensors(
        [("i", "I64", [2], struct.pack("<2q", -1, 2**62)), ("u", "U64", [1], struct.pack("<Q", 2**64 - 1)),
         ("j", "I32", [1, 1], struct.pack("<i", -7)), ("w", "U16", [1], b"\xff\xff"), ("k", "I8", [1], b"\x80")]))


# ---- config.json ----------------------------------------------------------------------------------------
def seeds_config():
    base = {"architectures": ["BertForMaskedLM"], "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu",
            "hidden_dropout_prob": 0.1, "hidden_size": 768, "initializer_range": 0.02, "intermediate_size": 3072,
            "layer_norm_eps": 1e-12, "max_position_embeddings": 512, "model_type": "bert", "num_attention_heads": 12,
            "num_hidden_layers": 12, "pad_token_id": 0, "position_embedding_type": "absolute",
            "transformers_version": "4.6.0.dev0", "type_vocab_size": 2, "use_cache": True, "vocab_size": 30522}
    put("config", "bert_base_uncased.json", json.dumps(base, indent=2) + "\n")
    tiny = {"hidden_size": 8, "num_attention_heads": 2, "num_hidden_layers": 1, "intermediate_size": 16,
            "vocab_size": 64, "max_position_embeddings": 12, "add_pooling_layer": False}
    put("config", "tiny.json", json.dumps(tiny))
    clf = dict(tiny, architectures=["BertForSequenceClassification"], id2label={"0": "neg", "1": "pos"},
               label2id={"neg": 0, "pos": 1}, num_labels=2, problem_type="single_label_classification",
               classifier_dropout=None)
    put("config", "classifier.json", json.dumps(clf, indent=1))
    put("config", "empty.json", "{}")
    put("config", "edge.json", '{"hidden_size": 10, "num_attention_heads": 3, "layer_norm_eps": 1.0, '
                               '"vocab_size": 18446744073709551615, "is_decoder": 0, "num_labels": 1}')


# ---- vocab.txt + text (vocab_fuzz) and text alone (wordpiece_fuzz) ----------------------------------------
TEXTS = ["hello world", "Hello, World!", "unaffable", "H\u00e9llo W\u00f6rld, caf\u00e9 na\u00efve",
         "\u4e2d\u6587\u5b57 and \u65e5\u672c\u8a9e", "I can't believe it's not butter...",
         "emoji \U0001f600 test \U0001f680! \u2764\ufe0f", "control\x00chars\x07 and\ttabs\nnew\x0blines\r\n\x7f\x85end",
         "[CLS] hello [SEP] world [MASK] [cls] hello[MASK]world [UNK][PAD]",
         "\u0130stanbul \u039f\u0394\u039f\u03a3 stra\u00dfe \u01c5emal",
         "non\xa0breaking\u2003em\u3000ideographic\u2028line", "zero\u200bwidth soft\xadhyphen bom\ufeffmark",
         "\uff21\uff22\uff23 \uff11\uff12\uff13 \ufb01ne \u216b \u2460", "\U00020000\U0002a700 U+20000 \u4e3d \uf900"]


def seeds_text():
    for i, t in enumerate(TEXTS):
        put("wordpiece", "text%02d" % i, bytes([(i * 37) % 256]) + t.encode("utf-8"))
    put("wordpiece", "invalid_utf8", b"\x05ab\xc3(\xe2\x82 \xf0\x9f\x98 \xed\xa0\x80 \xff\xfe end")
    put("wordpiece", "long_word", b"\x0f" + b"a" * 120 + b" " + b"unaffable" * 12)
    vocab = "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nun\n##aff\n##able\nhello\nworld\n,\n!\ncaf\u00e9\n##s\n"
    put("vocab", "basic", vocab.encode() + b"\xff" + b"\x02Hello, world! unaffable caf\u00e9s")
    put("vocab", "crlf_no_specials", b"a\r\n##b\r\nab\r\n" + b"\xff" + b"\x01abab ba")
    put("vocab", "empty_lines", b"\n\n[UNK]\n\n##\n#\n" + b"\xff" + b"\x07# ## ### a#")
    put("vocab", "unicode", "\u4e2d\n\u6587\n##\u00e9\ne\n\u0301\n".encode() + b"\xff" +
        "\x03\u4e2d\u6587 e\u0301 \u00e9\u00e9".encode())
    put("vocab", "no_text", b"[UNK]\n[CLS]\n[SEP]\n[PAD]\n")


# ---- IDX --------------------------------------------------------------------------------------------------
def idx(code, dims, payload):
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims) + payload


def seeds_idx():
    put("idx", "labels_u8", idx(0x08, [6], bytes([9, 0, 0, 3, 0, 2])))
    put("idx", "images_u8", idx(0x08, [2, 3, 3], bytes(range(18))))
    put("idx", "i8", idx(0x09, [2, 2], b"\x80\x7f\x00\xff"))
    put("idx", "i16", idx(0x0B, [3], struct.pack(">3h", -32768, 1, 32767)))
    put("idx", "i32", idx(0x0C, [1, 2], struct.pack(">2i", -1, 2**31 - 1)))
    put("idx", "f32", idx(0x0D, [2], struct.pack(">2f", 1.5, float("inf"))))
    put("idx", "f64", idx(0x0E, [1, 1, 1], struct.pack(">d", -0.0)))
    put("idx", "zero_dim", idx(0x08, [0, 4294967295], b""))
    mnist = os.path.join(ROOT, "data", "fashion-mnist", "t10k-images-idx3-ubyte")
    if os.path.exists(mnist):  # one real 28x28 image, with the header rewritten for a count of 1
        with open(mnist, "rb") as f:
            f.seek(16)
            put("idx", "fashion_mnist_image", idx(0x08, [1, 28, 28], f.read(784)))


# ---- PNG --------------------------------------------------------------------------------------------------
def chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xffffffff)


def png(width, height, depth, colour, rows, extra=b"", interlace=0):
    ihdr = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, interlace)
    raw = b"".join(b"\x00" + r for r in rows)  # filter type 0 (None) on every row
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw)) +
            chunk(b"IEND", b""))


def seeds_png():
    put("png", "gray8_3x2.png", png(3, 2, 8, 0, [b"\x00\x80\xff", b"\x10\x20\x30"]))
    put("png", "gray1_9x1.png", png(9, 1, 1, 0, [b"\xaa\x80"]))
    put("png", "gray16_2x1.png", png(2, 1, 16, 0, [b"\x12\x34\xff\xff"]))
    put("png", "rgb8_2x2.png", png(2, 2, 8, 2, [b"\xff\x00\x00\x00\xff\x00", b"\x00\x00\xff\xff\xff\xff"]))
    put("png", "rgba8_2x1.png", png(2, 1, 8, 6, [b"\xff\x00\x00\x80\x00\x00\x00\x00"]))
    put("png", "ga8_2x1.png", png(2, 1, 8, 4, [b"\x40\xff\xc0\x00"]))
    put("png", "rgba16_1x1.png", png(1, 1, 16, 6, [b"\x00\x01\x02\x03\x04\x05\x06\x07"]))
    plte = chunk(b"PLTE", b"\xff\x00\x00\x00\xff\x00\x00\x00\xff") + chunk(b"tRNS", b"\x00\x80")
    put("png", "palette_trns_4x1.png", png(4, 1, 2, 3, [b"\x1b"], extra=plte))
    put("png", "gray8_5x5.png", png(5, 5, 8, 0, [bytes([i * 10 + j for j in range(5)]) for i in range(5)]))
    # Adam7 of a 1x1 image: only pass 1 has a pixel, so its data is one plain row.
    put("png", "adam7_1x1.png", png(1, 1, 8, 0, [b"\x7f"], interlace=1))
    put("png", "gamma_srgb.png", png(1, 1, 8, 2, [b"\x01\x02\x03"],
                                     extra=chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"sRGB", b"\x00")))
    emoji = os.path.join(ROOT, "data", "emoji", "png")
    if os.path.isdir(emoji):  # real files of the emoji set (RGBA, 72x72): the smallest, and a typical one
        files = sorted((os.path.getsize(os.path.join(emoji, f)), f) for f in os.listdir(emoji) if f.endswith(".png"))
        for f in [files[0][1], "2705.png"]:
            if os.path.exists(os.path.join(emoji, f)):
                shutil.copy(os.path.join(emoji, f), os.path.join(CORPUS, "png", "emoji_" + f))


# ---- WAV --------------------------------------------------------------------------------------------------
def riff(chunks):
    body = b"WAVE" + b"".join(k + struct.pack("<I", len(v)) + v + (b"\x00" if len(v) % 2 else b"") for k, v in chunks)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def fmt(tag, channels, rate, bits, ext=None):
    align = channels * bits // 8
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
    if ext is not None:  # WAVE_FORMAT_EXTENSIBLE: cbSize 22, valid bits, channel mask, sub-format GUID
        body += struct.pack("<HHI", 22, bits, 3) + struct.pack("<H", ext) + \
            b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    return (b"fmt ", body)


def seeds_wav():
    put("wav", "pcm8_mono.wav", riff([fmt(1, 1, 8000, 8), (b"data", bytes([0, 128, 255, 64]))]))
    put("wav", "pcm16_stereo.wav", riff([fmt(1, 2, 16000, 16), (b"data", struct.pack("<4h", -32768, 32767, 0, 1))]))
    put("wav", "pcm24.wav", riff([fmt(1, 1, 44100, 24), (b"data", b"\x00\x00\x80\xff\xff\x7f")]))
    put("wav", "pcm32.wav", riff([fmt(1, 1, 48000, 32), (b"data", struct.pack("<2i", -2**31, 2**31 - 1))]))
    put("wav", "float32.wav", riff([fmt(3, 1, 22050, 32), (b"data", struct.pack("<3f", 0.5, -1.5, 1e-30))]))
    put("wav", "float64.wav", riff([fmt(3, 2, 8000, 64), (b"data", struct.pack("<2d", 0.25, -0.25))]))
    put("wav", "extensible16.wav", riff([fmt(0xFFFE, 2, 16000, 16, ext=1), (b"data", struct.pack("<2h", 100, -100))]))
    put("wav", "list_and_odd.wav", riff([(b"LIST", b"INFOISFT\x03\x00\x00\x00ab\x00"), fmt(1, 1, 8000, 8),
                                          (b"data", b"\x01\x02\x03")]))
    put("wav", "trailing_id3.wav", riff([fmt(1, 1, 1, 16), (b"data", b"\x00\x40")]) + b"ID3\x03\x00")


# ---- the hybrid tool's command lines (NUL-separated arguments; files of the fuzz sandbox) -------------------
def seeds_cli():
    lines = {
        "inspect": ["inspect", "t.safetensors"],
        "inspect_json": ["inspect", "--json", "t.safetensors"],
        "inspect_missing": ["inspect", "nope.safetensors"],
        "tokenize": ["tokenize", "--vocab", "v.txt", "hello world, the playing"],
        "tokenize_opts": ["tokenize", "--vocab=v.txt", "--cased", "--max-length", "5", "--", "-Hello!", "x"],
        "embed": ["embed", "--model", "m", "hello"],
        "embed_ids": ["embed", "--model", "m", "--ids", "2,8,3", "--ids=2,3", "--all-tokens"],
        "classify": ["classify", "--model", "c", "--all-scores", "--batch-size", "2", "hi", "there", "you"],
        "help": ["--help"],
        "command_help": ["tokenize", "-h"],
        "unknown": ["frobnicate", "--x"],
    }
    for name, args in lines.items():
        put("cli", name, b"\x00".join(a.encode() for a in args))


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    seeds_safetensors()
    seeds_config()
    seeds_text()
    seeds_idx()
    seeds_png()
    seeds_wav()
    seeds_cli()
    for t in sorted(os.listdir(CORPUS)):
        d = os.path.join(CORPUS, t)
        n = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
        print("%-12s %3d files %7d bytes" % (t, len(os.listdir(d)), n))
