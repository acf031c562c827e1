"""``--model NAME|FILE``: a zoo name or a trained model's file, as a model, a spec or an engine (the CLI and
the dataset evaluation's workers share these)."""
from __future__ import annotations

from pathlib import Path


def is_model_file(arg: str) -> bool:
    """Whether ``--model`` names a file (a trained ``.keras`` model) rather than a zoo model."""
    from .. import models

    return arg not in models.REGISTRY and (arg.endswith(".keras") or Path(arg).is_file() or "/" in arg)


def model_source(arg: str):
    """The zoo name, or the :class:`~core.models.TrainedModel` read (safely) from the file ``arg``.

    Raises:
        UnknownModel, ModelFileError: one sentence each.
    """
    from .. import models

    if is_model_file(arg):
        return models.load_file(arg)
    models.get_spec(arg)  # UnknownModel with the valid names
    return arg


def _source(arg):
    """``arg`` as :func:`model_source` gives it; a source already read is used as it is (a file is read once)."""
    return model_source(arg) if isinstance(arg, str) and is_model_file(arg) else arg


def spec_for(arg):
    """The :class:`~core.models.ModelSpec` of ``--model NAME|FILE`` (a file is read and checked), or of what
    :func:`model_source` returned."""
    from .. import models

    source = _source(arg)
    return models.get_spec(source) if isinstance(source, str) else source.spec


def keras_model_for(arg):
    """A private Keras model (BatchNorm unfolded, ordinary variables) for ``--model NAME|FILE`` or a source."""
    from .. import models

    source = _source(arg)
    return models.load_model(source) if isinstance(source, str) else source.keras_model()


def engine_for(arg):
    """The engine for ``--model NAME|FILE`` or a source (a trained file is served exactly as the app serves it).

    Raises:
        UnknownModel, ModelFileError, WeightsUnavailable: one sentence each (all ValueError or RuntimeError).
    """
    from .. import models
    from .passes import Engine

    source = _source(arg)
    if isinstance(source, str):
        return Engine(models.get_spec(source), *models.load_inference(source))
    return Engine(source.spec, source.keras_model())
