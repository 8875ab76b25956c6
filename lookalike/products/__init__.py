"""Product search: catalog -> embeddings -> Annoy index + category head -> search."""
