"""Sentinel values of the secrets qaexp reads from the environment (W&B and Hugging Face tokens): a test sets
them and then searches every file and log a run, report, export or server writes for them."""

SECRETS = {"WANDB_API_KEY": "sentinel0wandb0key0123456789abcdef0123456",
           "HF_TOKEN": "hf_sentinel_HF_TOKEN_value",
           "HUGGING_FACE_HUB_TOKEN": "hf_sentinel_HUB_TOKEN_value"}
