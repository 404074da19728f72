"""Motion: face analysis, the weight-free animator and the FOMM networks. Torch stays inside this package."""

