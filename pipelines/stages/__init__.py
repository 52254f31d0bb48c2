"""DVC stage entry points: `python -m pipelines.stages.<stage>`. Each is thin: params in, library calls, outs."""
