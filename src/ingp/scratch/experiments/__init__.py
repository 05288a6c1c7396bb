"""``ingp experiment NAME``: the seeds' toy experiments, reproduced and extended. One module per experiment, each
with ``run(out: Output, image_path, quick) -> results dict``."""

EXPERIMENTS = {
    "budgets": "budgets",
    "activations": "activations",
    "losses": "losses",
    "embeddings": "embeddings",
    "grid-vs-embeddings": "grid_vs_embeddings",
}
