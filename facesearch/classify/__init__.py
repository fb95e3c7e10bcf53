"""Identity classifiers trained on top of the gallery, and reranking with them.

* :mod:`.base`: the shared scikit-learn-like API (``fit``, ``predict``, ``predict_proba``,
  ``score``, ``classes_``) and ``save``/``load`` with a metadata JSON that records the
  identities and the gallery generation and model the classifier was trained on.
* :mod:`.mlp`: a small Keras network on FaceNet embeddings (trained on a gallery's own faces).
* :mod:`.images`: networks on face crops / whole photos (InceptionV3, MobileNetV2 + InceptionV3
  ensemble, two-headed "boxnet").
* :mod:`.rerank`: reorders a matcher's candidates with a classifier's probabilities, keeping
  the matcher's open-set "unknown" decision.
* :mod:`.report`: training curves, classification report, confusion matrix, summaries.
* :mod:`.dataset`: crop a folder tree, export/import a gallery, stratified splits, augmentation.
* :mod:`.bench`: closed-set accuracy and weighted P/R/F1 of classifiers alone and as rerankers.

Nothing here imports TensorFlow until a model is built or loaded, so the CLI stays quick.
"""
