"""A wing: the run machinery around the book. One-line errors and the checks Hydra runs before
a task (`cli`), run folders and files written whole (`files`), resuming (`resume`), sweep
reports (`sweep`), TensorBoard's views (`board`). Imports the book and the `text` modules."""
