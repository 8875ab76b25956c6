"""Vector search shared by the product and face paths: exact neighbours, Annoy tuning and the stores."""
