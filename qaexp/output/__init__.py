"""Output: result files written atomically, the model card and the upload to the Hugging Face Hub."""
