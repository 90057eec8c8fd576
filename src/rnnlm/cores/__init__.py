"""A wing: cores beyond the book's two, with the book's interface (`forward(inputs, state)`).
Imports the book only.

gated    `GRU` and `LSTM` (d2l.ai §10.1-10.2) through torch's modules, and `RNN`: each with
         `weight_drop`, DropConnect on the hidden-to-hidden weights (AWD-LSTM)
"""

from rnnlm.cores.gated import GRU, LSTM, RNN

__all__ = ["GRU", "LSTM", "RNN"]
