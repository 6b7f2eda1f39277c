#!/usr/bin/env python3
"""PyTorch's side of the whole-model benchmarks (bench/model_bench.cpp is hybrid's), same shapes, same work.

  bert_train      BERT-mini (vocab 30522, hidden 256, 4 layers, 4 heads, ffn 1024, dropout 0.1) + a 2-class
                  head on the pooled output, cross-entropy, backward, AdamW step; batch 16, seq 128.
  bert_infer_b1   the same encoder, torch.inference_mode, eval mode, batch 1, seq 128.
  bert_infer_b16  the same at batch 16.
  multimodal      2-layer text BERT (same width, seq 32) + CNN on 32x32x3 + gated fusion (GMU) + a 10-class
                  and a regression head, summed losses, backward, AdamW; batch 32.

BERT is written in plain torch.nn, as Hugging Face's BertModel computes it: word + position + token-type
embeddings and LayerNorm (eps 1e-12), post-LN layers with erf GELU, additive -10000 padding mask, tanh pooler.

Every (case, threads) runs in its own process, so its peak RSS is that configuration's, with the thread
settings in the environment before torch loads (OpenBLAS reads them once):
  /usr/bin/python3 bench/torch_models.py [--cases a,b] [--threads 1,2] [--warmup 2] [--reps 7]
prints one `RESULT ...` line per configuration (the format model_bench --report reads).
1 thread is judged by the main thread's CPU time (torch.set_num_threads(1), OMP and OpenBLAS at 1: all work
runs on the calling thread, backward included); more threads by wall time.
"""
import argparse
import math
import os
import resource
import subprocess
import sys
import time

CASES = ["bert_train", "bert_infer_b1", "bert_infer_b16", "multimodal"]


def backward_and_step(loss, opt, lap):
    """The end of a training step, each phase timed: forward done (lap 0), backward (lap 1), the AdamW step (lap 2)."""
    value = loss.item()
    lap(0)
    loss.backward()
    lap(1)
    opt.step()
    lap(2)
    return value


def child(case, threads, warmup, reps, foreach, variant):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(2024)

    class Embeddings(nn.Module):
        def __init__(s, vocab, hidden, max_pos=512, types=2, p=0.1):
            super().__init__()
            s.word = nn.Embedding(vocab, hidden)
            s.position = nn.Embedding(max_pos, hidden)
            s.token_type = nn.Embedding(types, hidden)
            s.norm = nn.LayerNorm(hidden, eps=1e-12)
            s.drop = nn.Dropout(p)

        def forward(s, ids):
            B, T = ids.shape
            pos = torch.arange(T, device=ids.device).unsqueeze(0).expand(B, T)
            types = torch.zeros_like(ids)
            return s.drop(s.norm(s.word(ids) + s.position(pos) + s.token_type(types)))

    class Layer(nn.Module):
        def __init__(s, hidden, heads, ffn, p=0.1):
            super().__init__()
            s.heads, s.d = heads, hidden // heads
            s.query, s.key, s.value = nn.Linear(hidden, hidden), nn.Linear(hidden, hidden), nn.Linear(hidden, hidden)
            s.out = nn.Linear(hidden, hidden)
            s.norm1 = nn.LayerNorm(hidden, eps=1e-12)
            s.fc1, s.fc2 = nn.Linear(hidden, ffn), nn.Linear(ffn, hidden)
            s.norm2 = nn.LayerNorm(hidden, eps=1e-12)
            s.drop = nn.Dropout(p)
            s.attn_drop = nn.Dropout(p)

        def forward(s, x, mask):
            B, T, H = x.shape
            split = lambda t: t.view(B, T, s.heads, s.d).transpose(1, 2)
            q, k, v = split(s.query(x)), split(s.key(x)), split(s.value(x))
            scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(s.d) + mask
            probs = s.attn_drop(torch.softmax(scores, dim=-1))
            ctx = torch.matmul(probs, v).transpose(1, 2).reshape(B, T, H)
            h = s.norm1(s.drop(s.out(ctx)) + x)
            return s.norm2(s.drop(s.fc2(F.gelu(s.fc1(h)))) + h)

    class Bert(nn.Module):
        def __init__(s, vocab=30522, hidden=256, layers=4, heads=4, ffn=1024, p=0.1):
            super().__init__()
            s.embeddings = Embeddings(vocab, hidden, p=p)
            s.layers = nn.ModuleList([Layer(hidden, heads, ffn, p) for _ in range(layers)])
            s.pooler = nn.Linear(hidden, hidden)

        def forward(s, ids, attention_mask):
            mask = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
            x = s.embeddings(ids)
            for layer in s.layers:
                x = layer(x, mask)
            return x, torch.tanh(s.pooler(x[:, 0]))

    class FastBert(nn.Module):
        """The same encoder on nn.TransformerEncoder: in inference its layers take PyTorch's fused fast path
        (torch._transformer_encoder_layer_fwd, "BetterTransformer"), the fastest PyTorch 1.13 has on the CPU."""

        def __init__(s, vocab=30522, hidden=256, layers=4, heads=4, ffn=1024, p=0.1):
            super().__init__()
            s.embeddings = Embeddings(vocab, hidden, p=p)
            layer = nn.TransformerEncoderLayer(hidden, heads, ffn, dropout=p, activation="gelu", layer_norm_eps=1e-12,
                                               batch_first=True, norm_first=False)
            s.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            s.pooler = nn.Linear(hidden, hidden)

        def forward(s, ids, attention_mask):
            x = s.encoder(s.embeddings(ids), src_key_padding_mask=attention_mask == 0)
            return x, torch.tanh(s.pooler(x[:, 0]))

    class SequenceClassifier(nn.Module):  # BertForSequenceClassification
        def __init__(s, labels=2, p=0.1):
            super().__init__()
            s.bert = Bert()
            s.drop = nn.Dropout(p)
            s.classifier = nn.Linear(256, labels)

        def forward(s, ids, mask):
            return s.classifier(s.drop(s.bert(ids, mask)[1]))

    class ConvImage(nn.Module):  # hybrid's enc::conv_image: [conv3x3-relu-conv3x3-relu-maxpool2] x 2, GAP, linear
        def __init__(s, channels=3, base=32, blocks=2, width=256):
            super().__init__()
            convs, c = [], channels
            for b in range(blocks):
                out = base << b
                convs += [nn.Conv2d(c, out, 3, padding=1), nn.ReLU(), nn.Conv2d(out, out, 3, padding=1), nn.ReLU(),
                          nn.MaxPool2d(2)]
                c = out
            s.convs = nn.Sequential(*convs)
            s.proj = nn.Linear(c, width)

        def forward(s, x):
            return s.proj(s.convs(x).mean(dim=(2, 3)))

    class Multimodal(nn.Module):
        def __init__(s, width=256):
            super().__init__()
            s.text = Bert(layers=2)
            s.image = ConvImage(width=width)
            s.proj = nn.ModuleList([nn.Linear(width, width), nn.Linear(width, width)])  # GMU: tanh(W_m x_m)
            s.gate = nn.Linear(2 * width, 2 * width)  # row f * 2 + m: modality m's gate for feature f
            s.cls = nn.Linear(width, 10)
            s.reg = nn.Linear(width, 1)

        def forward(s, ids, mask, images):
            xs = [s.text(ids, mask)[1], s.image(images)]
            hs = torch.stack([torch.tanh(p(x)) for p, x in zip(s.proj, xs)], dim=2)  # [B, W, 2]
            z = torch.softmax(s.gate(torch.cat(xs, dim=-1)).view(-1, hs.shape[1], 2), dim=-1)
            fused = (z * hs).sum(-1)
            return s.cls(fused), s.reg(fused)

    g = torch.Generator().manual_seed(2024)
    vocab = 30522
    if case == "bert_train":
        net = SequenceClassifier()
        ids = torch.randint(0, vocab, (16, 128), generator=g)
        mask = torch.ones(16, 128)
        y = torch.randint(0, 2, (16,), generator=g)
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01, foreach=foreach)
        net.train()

        def step(lap):
            opt.zero_grad(set_to_none=True)
            return backward_and_step(F.cross_entropy(net(ids, mask), y), opt, lap)
    elif case in ("bert_infer_b1", "bert_infer_b16"):
        B = 1 if case == "bert_infer_b1" else 16
        net = FastBert() if variant == "fastpath" else Bert()
        net.eval()
        if variant == "mkldnn":
            # oneDNN's prepacked weights for every nn.Linear (MkldnnLinear): PyTorch's counterpart of hybrid's
            # gemm::prepacked_weights in inference.
            import torch.utils.mkldnn
            net = torch.utils.mkldnn.to_mkldnn(net)
        ids = torch.randint(0, vocab, (B, 128), generator=g)
        mask = torch.ones(B, 128)

        def step(lap):
            with torch.inference_mode():
                seq, pooled = net(ids, mask)
                value = float(seq[0, 0, 0]) + float(pooled[0, 0])
            lap(0)
            return value
    elif case == "multimodal":
        net = Multimodal()
        ids = torch.randint(0, vocab, (32, 32), generator=g)
        mask = torch.ones(32, 32)
        images = torch.rand(32, 3, 32, 32, generator=g)
        y = torch.randint(0, 10, (32,), generator=g)
        target = torch.rand(32, 1, generator=g) * 2 - 1
        opt = torch.optim.AdamW(net.parameters(), lr=1e-4, weight_decay=0.01, foreach=foreach)
        net.train()

        def step(lap):
            opt.zero_grad(set_to_none=True)
            logits, pred = net(ids, mask, images)
            return backward_and_step(F.cross_entropy(logits, y) + F.mse_loss(pred, target), opt, lap)
    else:
        raise SystemExit(f"unknown case {case}")

    # Phases (forward, backward, optimizer) by the clock that judges the row: thread CPU on 1 thread, else wall.
    clock = time.thread_time if threads == 1 else time.perf_counter
    laps = [0.0, 0.0, 0.0]
    mark = [0.0]

    def lap(k):
        now = clock()
        laps[k] = (now - mark[0]) * 1e3
        mark[0] = now

    for _ in range(warmup):
        step(lap)
    wall, cpu, proc, phases = [], [], [], [[], [], []]
    check = 0.0
    for _ in range(reps):
        t0, c0, p0 = time.perf_counter(), time.thread_time(), time.process_time()
        mark[0] = clock()
        check = step(lap)
        wall.append((time.perf_counter() - t0) * 1e3)
        cpu.append((time.thread_time() - c0) * 1e3)
        proc.append((time.process_time() - p0) * 1e3)
        for k in range(3):
            phases[k].append(laps[k])
    med = lambda v: sorted(v)[len(v) // 2] if len(v) % 2 else 0.5 * (sorted(v)[len(v) // 2 - 1] + sorted(v)[len(v) // 2])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    impl = "torch" if variant == "plain" else f"torch-{variant}"
    print(f"RESULT case={case} impl={impl} threads={threads} reps={reps} wall_med={med(wall):.3f} "
          f"wall_min={min(wall):.3f} cpu_med={med(cpu):.3f} cpu_min={min(cpu):.3f} proc_cpu_med={med(proc):.3f} "
          f"rss_mib={rss:.1f} fwd_med={med(phases[0]):.3f} bwd_med={med(phases[1]):.3f} opt_med={med(phases[2]):.3f} "
          f"check={check:.6g} torch={torch.__version__} foreach={int(bool(foreach))}", flush=True)
    print(f"{impl} {case} {threads}T: wall {med(wall):.2f} ({min(wall):.2f}) ms, thread CPU {med(cpu):.2f} "
          f"({min(cpu):.2f}) ms, process CPU {med(proc):.2f} ms, peak RSS {rss:.0f} MiB; phases forward "
          f"{med(phases[0]):.2f}, backward {med(phases[1]):.2f}, optimizer {med(phases[2]):.2f} ms", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--no-fastpath", action="store_true",
                    help="inference: skip the nn.TransformerEncoder (fused fast path) variant")
    ap.add_argument("--no-default-malloc", action="store_true",
                    help="skip the 1-thread row with glibc's default malloc settings")
    ap.add_argument("--no-mkldnn", action="store_true",
                    help="inference: skip the oneDNN variant (torch.utils.mkldnn.to_mkldnn: prepacked Linear weights)")
    ap.add_argument("--openblas-avx512", action="store_true",
                    help="also rows with OPENBLAS_CORETYPE=SkylakeX (OpenBLAS's AVX-512 kernels)")
    ap.add_argument("--only", default="",
                    help="run just this variant (plain, fastpath, mkldnn, default-malloc, openblas-avx512)")
    ap.add_argument("--foreach", type=int, default=1, help="AdamW's foreach implementation (1) or the loop (0)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        child(a.case, int(a.threads), a.warmup, a.reps, bool(a.foreach), a.variant)
        return
    status = 0
    runs = []
    for case in a.cases.split(","):
        if a.only:
            runs += [(case, t, a.only) for t in a.threads.split(",")]
            continue
        variants = ["plain"] + (["fastpath"] if case.startswith("bert_infer") and not a.no_fastpath else []) + \
            (["mkldnn"] if case.startswith("bert_infer") and not a.no_mkldnn else [])
        runs += [(case, t, v) for v in variants for t in a.threads.split(",")]
        if not a.no_default_malloc and "1" in a.threads.split(","):
            runs.append((case, "1", "default-malloc"))
        if a.openblas_avx512:
            runs += [(case, t, "openblas-avx512") for t in a.threads.split(",")]
    for case, t, variant in runs:
        env = dict(os.environ)
        # OpenBLAS (matmuls) and OpenMP (the rest) both at the thread count; OpenMP threads sleep when idle
        # (with the default spin-waiting 2 threads are slower than 1 on this machine: shared/MACHINE.md).
        env.update(OMP_NUM_THREADS=t, OPENBLAS_NUM_THREADS=t, MKL_NUM_THREADS=t)
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if variant == "openblas-avx512":
            # Debian's OpenBLAS 0.3.21 runs its AVX2 (Haswell) kernels on Zen 4/5; told the core type, its AVX-512
            # ones (about 1.8x faster matmuls here). PyTorch at its best on an AVX-512 CPU.
            env["OPENBLAS_CORETYPE"] = "SkylakeX"
        if variant != "default-malloc":
            # glibc returns freed blocks above 128 KiB (mmap) and the heap's top to the kernel at once, so every
            # step PyTorch's new gradients and AdamW's temporaries (the 30522 x 256 embedding: 31 MiB each)
            # page-fault in again: ~10x the optimizer's time. Keeping freed memory (what jemalloc or tcmalloc
            # would do) is PyTorch at its best on this machine; the "default-malloc" row shows the difference.
            env.update(MALLOC_MMAP_THRESHOLD_="33554432", MALLOC_TRIM_THRESHOLD_="4294967296",
                       MALLOC_TOP_PAD_="268435456")
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", "--case", case, "--threads", t,
                            "--warmup", str(a.warmup), "--reps", str(a.reps), "--foreach", str(a.foreach),
                            "--variant", variant], env=env)
        if r.returncode != 0:
            impl = "torch" if variant == "plain" else f"torch-{variant}"
            print(f"RESULT case={case} impl={impl} threads={t} error=exit{r.returncode}", flush=True)
            status = 1
    sys.exit(status)


if __name__ == "__main__":
    main()
