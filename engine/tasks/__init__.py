"""Region tasks over a loaded Engine: audio2audio, interpolate, inpaint, outpaint, loop (one module each)."""
