"""Neural radiance fields from posed photos (``ingp nerf fit|eval|render|mesh``).

    data.py       transforms loaders (NeRF-synthetic, instant-ngp, nerfstudio) -> Scene; hold-out splits
    rays.py       pixels -> rays (pinhole, OpenCV and fisheye distortion)
    model.py      default (instant-ngp base.json) config; density + colour MLPs; truncated exp; appearance codes
    contraction.py  mip-NeRF 360 scene contraction for the hash grid's input (unbounded captures)
    error_map.py  error-map importance sampling of training pixels
    options.py    the real-capture quality flags of ``fit`` (parsing only)
    occupancy.py  cascaded 128^3 occupancy grid: decayed max of density, threshold, camera visibility
    march.py      closed-form step distances, packed occupied samples
    render.py     segment-vectorised volume compositing; chunked no-grad rendering of rays
    fit.py        the training step (adaptive ray count, random backgrounds) and ``fit`` into a run folder
    evaluate.py   PSNR / SSIM on held-out views, white background
    commands.py   ``eval`` / ``render`` (frames, depth, orbit video) / ``mesh`` on a run folder
    cli.py        argument parsing only
"""
