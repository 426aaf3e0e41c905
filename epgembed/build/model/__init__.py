"""Training: leave-one-out sampling, the training step (torch ops and numba kernels), the loop."""
