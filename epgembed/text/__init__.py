"""Text: one normalizer for every form of a title, the guide's feature tokens, the tokenizer."""
