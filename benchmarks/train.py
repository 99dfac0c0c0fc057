"""Training speed of the neural predictors: one epoch of each model on a 5,000-gene set.

    python benchmarks/train.py                      # 5,000 genes, 2,000 perturbations, CPU
    python benchmarks/train.py --device cuda        # the same on a GPU

The simulator makes the data once (1,000 single knockouts of its regulators and 1,000 double
knockouts; 80 % train, 20 % validation) and saves it to a temporary directory.  Each model
then runs in a fresh process, so its peak resident memory is its own: the process loads the
data and the corrupted KB, builds the model from its shipped preset, trains one epoch over the
training conditions (after a warm-up fit on one batch, which keeps torch's one-off lazy
imports out of the figure) and predicts every condition once.  The table goes to stdout and
is appended, with the command and the machine, to ``benchmarks/results/train.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _record import add_record_options, markdown_table, peak_rss_gib, record_run

HEADER = [
    "model",
    "genes",
    "edges",
    "train conditions",
    "parameters",
    "device",
    "torch threads",
    "load avg",
    "seed",
    "s / epoch",
    "predict s (all conditions)",
    "RSS before epoch GiB",
    "peak RSS GiB",
]


def main() -> None:
    args = parse_args()
    if args.child:
        print(json.dumps(run_one(args)))
        return
    with tempfile.TemporaryDirectory(prefix="aligned-train-bench-") as tmp:
        started = time.perf_counter()
        make_data(args, Path(tmp))
        print(f"data simulated in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        rows = [measure_in_child(args, model, Path(tmp)) for model in args.models]
    table = [[row[key] for key in ROW_KEYS] for row in rows]
    text = markdown_table(HEADER, table)
    print(text)
    record_run("train", text, args)


ROW_KEYS = [
    "model",
    "genes",
    "edges",
    "train_conditions",
    "parameters",
    "device",
    "threads",
    "load",
    "seed",
    "epoch_s",
    "predict_s",
    "rss_before_gib",
    "peak_rss_gib",
]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--genes", type=int, default=5000)
    parser.add_argument("--perturbations", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--models", nargs="+", default=["mlp", "gnn"], choices=["mlp", "gnn"])
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    add_record_options(parser)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    return parser.parse_args()


def make_data(args: argparse.Namespace, out: Path) -> None:
    """Simulate singles of every regulator plus doubles up to ``--perturbations`` conditions."""
    from aligned.data import simulate

    regulators = round(0.2 * args.genes)  # the simulator's default regulator fraction
    doubles = max(0, args.perturbations - regulators)
    fractions = (0.8, 0.2, 0.0)
    sim = simulate(n_genes=args.genes, doubles=doubles, seed=args.seed, fractions=fractions)
    sim.data.save(out / "data")
    sim.kb_corrupted.write(out / "kb.tsv")


def measure_in_child(args: argparse.Namespace, model: str, data: Path) -> dict:
    command = [sys.executable, __file__, "--child", "--data", str(data), "--models", model]
    command += ["--seed", str(args.seed), "--device", args.device]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_one(args: argparse.Namespace) -> dict:
    """Load data and KB, build the preset's model, time one epoch and one prediction pass."""
    import dataclasses

    import torch

    from aligned.data import PerturbationData
    from aligned.knowledge_base import KnowledgeBase
    from aligned.predictor import make_predictor

    if args.threads:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]  # other work on the machine slows every figure below
    data = PerturbationData.load(Path(args.data) / "data")
    kb = KnowledgeBase.read(Path(args.data) / "kb.tsv")
    train = data.train
    (model,) = args.models
    predictor = make_predictor(model, data.genes, kb=kb, device=args.device, seed=args.seed)
    predictor.quiet = True
    predictor.training = dataclasses.replace(predictor.training, epochs=1)
    predictor.fit(train.subset(range(predictor.training.batch_size)))
    before = peak_rss_gib()
    started = time.perf_counter()
    predictor.fit(train)
    synchronise(predictor.device)
    epoch = time.perf_counter() - started
    started = time.perf_counter()
    predictor.predict_proba(data)
    synchronise(predictor.device)
    predict = time.perf_counter() - started
    device = predictor.device
    return {
        "model": model,
        "genes": len(data.genes),
        "edges": len(kb),
        "train_conditions": len(train),
        "parameters": sum(p.numel() for p in predictor.network.parameters()),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "load": f"{load:.1f}",
        "seed": args.seed,
        "epoch_s": f"{epoch:.2f}",
        "predict_s": f"{predict:.2f}",
        "rss_before_gib": f"{before:.2f}",
        "peak_rss_gib": f"{peak_rss_gib():.2f}",
    }


def synchronise(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


if __name__ == "__main__":
    main()
