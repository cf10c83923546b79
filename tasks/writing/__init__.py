"""Writing, on the workers: one block through its own fork, whole chunks past Zarr's per-chunk work, the Prefect
task around it, and the fan-out that hands each block's fork back as it finishes."""
