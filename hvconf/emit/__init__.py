"""Emitters: device tree (DTS/DTB), plan and launcher outputs built from the validated IR."""
