"""Neural radiance caching (Müller et al. 2021): a CPU path tracer whose indirect light a hash-grid cache learns
while it renders.

    scene.py     triangle-mesh scenes built with trimesh (cornell, glossy), materials, pinhole camera
    tracer.py    the numba path tracer (NEE, Russian roulette, path-spread termination, training-path records)
    cache.py     the cache: ingp NetworkWithInputEncoding (Composite: HashGrid + SH + Identity), RelativeL2, Adam+EMA
    render.py    the per-frame loop (trace -> query -> compose -> train) and cached converged references
    commands.py  ``ingp nrc render``: frames, MP4, metrics.json in a run folder
    cli.py       argument parsing
"""
