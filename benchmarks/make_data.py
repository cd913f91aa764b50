"""Write a long-record instruction set for GPU throughput runs (generic loader format).

Each record's answer is built from the shipped Japanese fixture texts until it holds about
``--chars`` characters, so every sequence fills ``train.max_length`` (no padding waste, no
packing needed). Deterministic for a given seed. Usage:

    python benchmarks/make_data.py --out .bench/long.jsonl --records 2000 --chars 6000
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from jsweep.models.tiny import corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--chars", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    texts = [t for t in corpus() if len(t) > 20]
    rng = random.Random(args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for i in range(args.records):
            answer = []
            while sum(map(len, answer)) < args.chars:
                answer.append(rng.choice(texts))
            f.write(
                json.dumps(
                    {"id": f"long-{i:05d}", "question": rng.choice(texts)[:200], "answer": "".join(answer)},
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(f"wrote {args.records} records to {args.out}")


if __name__ == "__main__":
    main()
