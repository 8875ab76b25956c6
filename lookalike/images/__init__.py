"""Where every photo enters (decoding, odd modes, bad files) and where embeddings are cached by content."""
