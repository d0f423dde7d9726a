"""Tensor helpers shared by the data layer and the models (DESIGN.md, "Layout"): CSR
building and row slicing (:mod:`.csr`), negative sampling against known pairs
(:mod:`.sampling`) and the per-relation grouped matmul (:mod:`.grouped`). Imports only torch."""
