"""The reports' experiments: category heads (grid, fine-tuning, install) and the triplet embedding."""
