"""Run by torchrun in test_distributed (one launch, two checks): the CLI's one-line error on every rank for an
uneven batch, then two ranks all-reducing gradients until rank 1 dies at step 2."""

import os
import sys

import torch

from ingp import distributed

distributed.init_from_env()
torch.set_num_threads(1)
rank = distributed.world().rank
image, out = sys.argv[1:3]
status = distributed.main(["image", "fit", image, "--out", out, "--steps", "1", "--batch-size", "1001", "--quiet"])
print(f"rank {rank}: cli status {status}", file=sys.stderr, flush=True)
p = torch.nn.Parameter(torch.ones(1000))
for step in range(1000):
    if rank == 1 and step == 2:
        print("rank 1 crashes at step 2", file=sys.stderr, flush=True)
        os._exit(3)
    (p * (rank + 1)).sum().backward()
    distributed.reduce_gradients([p])
    p.grad = None
distributed.shutdown()
