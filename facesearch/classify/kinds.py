"""Which class a saved classifier is: the registry of classifier kinds.

    >>> clf = load_classifier("~/celebs/models/mlp")     # an MLPClassifier, from classifier.json
    >>> classifier_class("inception")                     # InceptionClassifier

The kind is the ``kind`` field of a saved classifier's ``classifier.json`` and the folder name
under ``<home>/models/``. This module sits above :mod:`.base` and the classes it lists, so the
base class never needs to know its subclasses.
"""
from __future__ import annotations

import os

from facesearch.classify.base import Classifier, ClassifierError
from facesearch.classify.image_models import IMAGE_MODELS
from facesearch.classify.mlp import MLPClassifier

#: Every classifier kind and its class.
CLASSIFIERS: dict[str, type[Classifier]] = {MLPClassifier.kind: MLPClassifier, **IMAGE_MODELS}


def classifier_class(kind: str) -> type[Classifier]:
    """The :class:`~.base.Classifier` subclass registered as ``kind``; :class:`ClassifierError` if none."""
    try:
        return CLASSIFIERS[kind]
    except KeyError:
        raise ClassifierError(f"unknown classifier kind {kind!r}; choose {', '.join(CLASSIFIERS)}") from None


def load_classifier(folder: str | os.PathLike) -> Classifier:
    """The classifier saved in ``folder``, of whatever kind its ``classifier.json`` names."""
    return classifier_class(Classifier.read_metadata(folder)["kind"]).load(folder)
