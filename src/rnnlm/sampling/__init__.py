"""A wing: text beyond the book's `predict` (d2l.ai §9.5 exercises 4 and 4.1): sampling at a
temperature or the book's exponent alpha, within the top k or top p, many continuations as one
batch, a long one streamed as it is made. Imports the book only.

sampler   `Sampler`: the book's argmax, or a draw from softmax(logits / temperature)
generate  `generate`, `generate_tokens`: a model's continuations of a prefix; `print_stream`
samples   `TextSamples`: greedy and sampled text in TensorBoard's TEXT tab while training
"""

from rnnlm.sampling.generate import generate, generate_tokens, print_stream
from rnnlm.sampling.sampler import Sampler

__all__ = ["Sampler", "generate", "generate_tokens", "print_stream"]
