"""The building side (torch, numba): ingest, training, index build, and the pipeline that runs them."""
