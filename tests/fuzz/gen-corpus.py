#!/usr/bin/env python3
"""Write the seed corpus of the fuzz_api target: deterministic byte strings that
the driver (tests/model/ops.c) decodes into call sequences.  Each seed starts
with a configuration selector (byte 0 % 8: 0-2 no limit, 3-5 commit limit,
6-7 address-space limit; byte 1 varies the limit and percentages) followed by
pseudo-random operation bytes, so every configuration and every operation
kind appears in the corpus.

    tests/fuzz/gen-corpus.py [OUTPUT_DIR]   (default: the corpus/ directory next to this file)
"""
import os
import random
import sys

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")
os.makedirs(out, exist_ok=True)
rng = random.Random(0x4D454D)
n = 0
for config in range(8):
    for length in (48, 160, 400, 900, 1600):
        data = bytes([config, rng.randrange(256)]) + bytes(rng.randrange(256) for _ in range(length))
        with open(os.path.join(out, "seed-c%d-%04d" % (config, length)), "wb") as f:
            f.write(data)
        n += 1
# Operation-focused seeds: every step starts with the same operation selector,
# so each family (alloc 0-13, free 14-19, protect 20-23, query 24-27, write 28-32,
# access 33-34, load 35, register 36, external 37-38) is exercised densely.
for op in (0, 14, 20, 24, 28, 36, 37):
    body = bytearray()
    for _ in range(60):
        body.append(op + rng.randrange(3))
        body.extend(rng.randrange(256) for _ in range(15))
    with open(os.path.join(out, "seed-op%02d" % op), "wb") as f:
        f.write(bytes([3 + op % 3, rng.randrange(256)]) + bytes(body))
    n += 1
print("%d seeds in %s" % (n, out))
