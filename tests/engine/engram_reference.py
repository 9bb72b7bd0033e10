#!/usr/bin/env python3
"""An independent implementation of Engram's addressing, written from the text of
docs/GGUF.md §4.4 and docs/MODEL.md §10.1 (not from strata's C++), for strata's tests.

  engram_reference.py hash IN.json         row ids for the sequences in IN.json
  engram_reference.py v41-constants        DeepSeek-V4.1-Flash's primes and multipliers

IN.json: {"token_map": [...], "pad_id": P, "primes": [...], "multipliers": [...],
          "layers": L, "max_ngram": N, "heads": K,
          "sequences": [{"tokens": [...], "mask": [...] or null}, ...]}
Output (stdout, JSON): {"rows": [[row ids of the sequence, [token][layer][col] flat], ...]}
Needs numpy (Debian: python3-numpy) for v41-constants only.
"""
import json
import sys

MASK64 = (1 << 64) - 1


def hash_sequence(cfg, tokens, mask):
    token_map, pad = cfg["token_map"], cfg["pad_id"]
    layers, ngram, heads = cfg["layers"], cfg["max_ngram"], cfg["heads"]
    cols = (ngram - 1) * heads
    dead = None
    tail = [dead] * (ngram - 1)  # newest first
    out = []
    for i, t in enumerate(tokens):
        cur = dead if (mask is not None and not mask[i]) else token_map[t]
        window = [cur] + tail
        ids, blocked = [], False
        for v in window:
            blocked = blocked or v is dead
            ids.append(pad if blocked else v)
        for layer in range(layers):
            mult = cfg["multipliers"][layer * ngram:(layer + 1) * ngram]
            primes = cfg["primes"][layer * cols:(layer + 1) * cols]
            h = (ids[0] * mult[0]) & MASK64
            offset = 0
            for j in range(1, ngram):
                h ^= (ids[j] * mult[j]) & MASK64
                for head in range(heads):
                    p = primes[(j - 1) * heads + head]
                    out.append(h % p + offset)
                    offset += p
        tail = [cur] + tail[:-1]
    return out


def primes_after(base, count_per_order, orders, layers, limit):
    # A sieve (strata's C++ uses trial division): every prime in (base - 1, limit).
    sieve = bytearray([1]) * (limit + 1)
    sieve[0:2] = b"\x00\x00"
    for d in range(2, int(limit ** 0.5) + 1):
        if sieve[d]:
            sieve[d * d::d] = bytearray(len(range(d * d, limit + 1, d)))
    used, out = set(), []
    for _ in range(layers):
        for _ in range(orders):
            start = base - 1
            for _ in range(count_per_order):
                p = start + 1
                while not sieve[p] or p in used:
                    p += 1
                used.add(p)
                out.append(p)
                start = p
    return out


def v41_constants():
    import numpy as np
    layer_ids, vocab = [1, 14], 99092
    primes = primes_after(16000000, 8, 3, len(layer_ids), 16100000)
    bound = (np.iinfo(np.int64).max // vocab) // 2
    mult = []
    for layer in layer_ids:
        r = np.random.default_rng(10007 * layer).integers(0, bound, 4, dtype=np.int64)
        mult += [int(x) * 2 + 1 for x in r]
    rows = [sum(primes[i * 24:(i + 1) * 24]) for i in range(len(layer_ids))]
    return {"primes": primes, "multipliers": mult, "rows": rows}


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "hash":
        with open(sys.argv[2]) as f:
            cfg = json.load(f)
        rows = [hash_sequence(cfg, s["tokens"], s.get("mask")) for s in cfg["sequences"]]
        json.dump({"rows": rows}, sys.stdout)
    elif len(sys.argv) == 2 and sys.argv[1] == "v41-constants":
        json.dump(v41_constants(), sys.stdout)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
