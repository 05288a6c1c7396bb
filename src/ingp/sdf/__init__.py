"""Signed distance functions learned from triangle meshes (``ingp sdf fit|mesh|render|eval``).

    mesh.py         read + validate a mesh, the transform into the unit cube and back
    groundtruth.py  signed distance and inside/outside from the mesh (libigl AABB + fast winding number),
                    with brute-force references
    sampler.py      training batches: fresh surface points + a precomputed pool of near / uniform points
    model.py        the default (instant-ngp SDF) config, model construction, chunked evaluation
    fit.py          ``fit``: training into a run folder, then evaluation and outputs
    extract.py      marching cubes in the mesh's own units
    render.py       orbit camera, sphere tracing (and a dense-sampling reference), normal shading
    evaluate.py     IoU of inside sets, Chamfer distance, normal consistency
    commands.py     ``mesh`` / ``render`` / ``eval`` on a run folder
    cli.py          argument parsing only
"""
