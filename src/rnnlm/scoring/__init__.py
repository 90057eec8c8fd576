"""A wing: scoring beyond the book's static perplexity, through Lightning's loops: dynamic
evaluation (`dynamic`), a PPM model (`ppm`) mixed in (`mixture`), ensembles (`ensemble`);
eval.py chooses them (`run`), a run's `dynamic_test` callback too. Imports the book only."""
