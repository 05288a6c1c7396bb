"""Models in the browser: ``export`` (run folder -> ``model.json`` + ``model.bin``), ``reference`` (a NumPy
evaluator that reads only those two files), ``server`` (``ingp view``: the static viewer and one export on
127.0.0.1) and ``static/`` (the WebGL2 viewer, plain ES modules)."""
