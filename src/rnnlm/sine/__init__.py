"""A wing: the concise chapter's last exercise, d2l.ai §9.1's autoregressive series with the
book's recurrent cores (`experiment=sine`). Imports the book only."""

from rnnlm.sine.model import PredictionsFigure, SineRNN
from rnnlm.sine.series import SineSeries

__all__ = ["PredictionsFigure", "SineRNN", "SineSeries"]
