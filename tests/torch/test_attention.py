#!/usr/bin/python3
"""Differential test of easytorch's attention layers against PyTorch 1.13
(the cases are in nn_attention.py; the helpers are test_nn.py's).

Usage: /usr/bin/python3 test_attention.py PATH/TO/nn_runner

Prints one PASS/FAIL line per comparison and "N passed, M failed"; exits 1
on any failure."""
import os
import sys
import tempfile

import torch

import nn_attention
import test_nn as T


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    T.RUNNER = os.path.abspath(sys.argv[1])
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="et_attention_") as d:
        T.TMP = d
        nn_attention.run(T)
    r = T.results
    w = r["worst"]
    print(f"{r['passed']} passed, {r['failed']} failed; largest error at the suite tolerance "
          f"(rtol {T.RTOL}, atol {T.ATOL}): {w[0]:.3g} of the allowed |diff| (abs diff {w[1]:.3g})")
    return 1 if r["failed"] or not r["passed"] else 0  # no comparison ran: a failure


if __name__ == "__main__":
    sys.exit(main())
