"""Identity classifiers trained on top of the gallery, and reranking with them.

* :mod:`.base`: the shared scikit-learn-like API (``fit``, ``predict``, ``predict_proba``,
  ``score``, ``classes_``) and ``save``/``load`` with a metadata JSON that records the
  identities and the gallery generation and model the classifier was trained on.
* :mod:`.mlp`: a small Keras network on FaceNet embeddings (trained on a gallery's own faces).
* :mod:`.image_models`: networks on face crops / whole photos (InceptionV3, MobileNetV2 +
  InceptionV3 ensemble, two-headed "boxnet").
* :mod:`.kinds`: the registry of classifier kinds; ``load_classifier`` loads a saved one of any kind.
* :mod:`.train`: train a classifier on a gallery or a dataset folder, save it, write its reports.
* :mod:`.rerank`: reorders a matcher's candidates with a classifier's probabilities, keeping
  the matcher's open-set "unknown" decision.
* :mod:`.report`: training curves, classification report, confusion matrix, summaries.
* :mod:`.crops`: face crops of a folder-per-identity tree.
* :mod:`.splits`: stratified, seeded train / val / test splits.
* :mod:`.augment`: training-time augmentation and its preview.

Exporting a gallery and importing average embeddings are the gallery's
(:meth:`facesearch.gallery.Gallery.export`, :meth:`~facesearch.gallery.Gallery.import_averages`);
the classifiers' benchmark is :mod:`facesearch.bench.classifiers`.

Nothing here imports TensorFlow until a model is built or loaded, so the CLI stays quick.
"""
