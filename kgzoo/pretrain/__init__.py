"""Cached pre-computations handed to ``Recommender.attach`` as ``extras`` (DESIGN.md, "Graphs"):
:mod:`.kg_vectors` (entity vectors of a KG embedding model). Computed by :func:`kgzoo.api.attach`,
never by a model."""
