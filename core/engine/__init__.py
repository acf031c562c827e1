"""Explaining: the compiled pass over a model, its result cache, and the pool of engines the app shares.

- :mod:`.passes` — :class:`Engine`: one compiled forward + backward pass gives the probabilities and the
  activations and gradients of every explainable layer (:class:`PassResult`); :mod:`.guided` registers guided
  backpropagation's gated gradients, :mod:`.one_layer` is a live view's pass to one layer.
- :mod:`.cache` — :class:`ResultCache`: pass results by (exact pixel hash, class), bounded in count and bytes.
- :mod:`.pool` — :class:`EnginePool`: engines kept within a memory budget, shared by every session.
"""
from .cache import ResultCache
from .passes import Engine, PassResult
from .pool import EnginePool

__all__ = ["Engine", "EnginePool", "PassResult", "ResultCache"]
