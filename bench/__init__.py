"""hvconf's benchmark suite: side-by-side measurements as ratios. Run `python bench/run.py`."""
