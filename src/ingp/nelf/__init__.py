"""Neural light fields distilled from a NeRF (``ingp nerf distill``): a student that maps a ray straight to a colour
in one network evaluation, trained on pixels the teacher NeRF renders from cameras around its training cameras
plus the real training pixels.

Modules: ``rays`` (ray -> student inputs: the two-sphere 4-D coordinates, points along the chord), ``model`` (the
students: a hash-grid light field and an R2L-style residual MLP), ``pseudo`` (teacher-rendered rays, cached on
disk), ``distill`` (the training and the run folder), ``commands`` (loading a run, rendering views).
"""
