"""Rules about money and activations as plain async functions (no Telegram in here)."""
