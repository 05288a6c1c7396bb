"""``ingp export onnx``: runs whose networks are plain functions of coordinates (NeLF, image, SDF) as ONNX graphs.

``grid`` is the multiresolution grid written with gathers and integer arithmetic only (ONNX ops every runtime has),
``graphs`` wraps each run kind as a module of one input tensor, ``export`` writes and checks the file.
"""
