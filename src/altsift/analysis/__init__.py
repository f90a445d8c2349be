"""Analysis of a scored pool: k-means clusters (Parrot Table-style stats) and the synthetic-text probe."""
